"""`make run`: a simulated building (a meter simulator on a TCP bus) and the
terminal on the unix board under MicroPython, wired together.

  python tools/building.py [--meters FILE] [terminal options...]

Anything not understood here is passed to boards/unix/terminal.py (--once, ...).
Ctrl-C stops both.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")


def start_simulator(meters, baud):
    sim = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tools", "meter_sim.py"), "--tcp", "127.0.0.1:0",
         "--meters", meters, "--baud", str(baud)],
        stdout=subprocess.PIPE, text=True)
    line = sim.stdout.readline()
    if not line:
        sim.kill()
        raise SystemExit("building: the meter simulator did not start")
    return sim, json.loads(line)


def main(argv):
    meters = os.path.join(ROOT, "boards", "unix", "building.json")
    if "--meters" in argv:
        i = argv.index("--meters")
        meters = argv[i + 1]
        del argv[i:i + 2]
    baud = 2400
    sim, info = start_simulator(meters, baud)
    print("building: %d meters on %s (simulator control on %s)"
          % (len(json.load(open(meters))), info["bus"], info["control"]), flush=True)
    try:
        return subprocess.call([MICROPYTHON, os.path.join(ROOT, "boards", "unix", "terminal.py"),
                                "--bus", info["bus"], "--meters", meters,
                                "--baud", str(baud)] + argv)
    except KeyboardInterrupt:
        return 0
    finally:
        sim.terminate()
        sim.wait(5)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
