"""`make bench`: run every tools/bench_*.py in turn, in one run, so figures
and ratios are measured side by side on the same machine."""
import glob
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    failed = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tools", "bench_*.py"))):
        name = os.path.basename(path)[6:-3]
        print("== %s" % name, flush=True)
        if subprocess.call([sys.executable, path], cwd=ROOT):
            failed.append(name)
        print(flush=True)
    if failed:
        print("bench: failed: %s" % ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
