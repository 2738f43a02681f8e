"""`make run`: a simulated building (a meter simulator on a TCP bus) and the
terminal on the unix board under MicroPython, wired together, with its card
slot open on 127.0.0.1:7816 and a development key store (the security
profile's test master keys, never a production key).

  python tools/building.py [--meters FILE] [terminal options...]

Anything not understood here is passed to boards/unix/terminal.py (--once, ...).
Ctrl-C stops both. Insert a simulated card from another shell with the
command this prints.
"""
import json
import os
import subprocess
import sys

import procs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
CARD_SLOT = "127.0.0.1:7816"
DEV_MK_C = "fedcba98765432100123456789abcdef"  # the profile's test vector key


def dev_keystore():
    """build/dev-keystore.bin with the profile's test keys, made once."""
    path = os.path.join(ROOT, "build", "dev-keystore.bin")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        subprocess.check_call([sys.executable, os.path.join(ROOT, "tools", "make_keystore.py"),
                               "create", "--dev", path], stdout=subprocess.DEVNULL)
    return path


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
    slot = [] if "--once" in argv else ["--card-slot", "tcp:" + CARD_SLOT,
                                         "--keystore", dev_keystore()]
    if slot:
        print("building: insert a card with\n  .venv/bin/python tools/card_sim.py t0 --connect %s"
              " --mk-c %s --serial 8800000000000001 --type purchase --meter 000000000001"
              " --customer 100000000001 --amount 10000 --count 2 --hold 5"
              % (CARD_SLOT, DEV_MK_C), flush=True)
    try:
        return subprocess.call([MICROPYTHON, os.path.join(ROOT, "boards", "unix", "terminal.py"),
                                "--bus", info["bus"], "--meters", meters,
                                "--baud", str(baud)] + slot + argv)
    except KeyboardInterrupt:
        return 0
    finally:
        procs.stop(sim)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
