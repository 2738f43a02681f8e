"""From the terminal's journal to the head-end's row: how long a top-up's
record takes to be stored at the head-end, end to end through the real
parts (the unix board's terminal.py under micropython, the meter and card
simulators, Debian's mosquitto, the head-end on SQLite).

The clock starts when the terminal logs "card: shown" (written right after
the journal's "done" step for the top-up) and stops at the head-end's
`received` time of that step's row: both are this machine's clock.

  python tools/bench_report_latency.py [--topups N]
Exit 2 when a top-up or its report does not arrive.
"""
import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import hostpath  # noqa: F401

import building  # noqa: E402
import building_fleet  # noqa: E402
import procs  # noqa: E402
from card_sim_ctl import free_port  # noqa: E402
from mp_runner import MICROPYTHON  # noqa: E402

METER = {"address": "000000000001", "customer": "100000000001"}


def done_row(db, count, deadline):
    """(received, seq) of the top-up's "done" record for purchase `count`."""
    while time.time() < deadline:
        try:
            with sqlite3.connect(db) as c:
                row = c.execute("SELECT received, seq FROM reports WHERE kind = 'topup' "
                                "AND step = 'done' AND count = ?", (count,)).fetchone()
        except sqlite3.OperationalError:  # the head-end has not made its tables yet
            row = None
        if row:
            return row
        time.sleep(0.005)
    return None


class Live:
    """The unix terminal with a card slot, reporting to a broker and the
    head-end (building_fleet), on one meter; `insert(count)` sells a
    purchase card and inserts it, returning when the terminal shows the
    outcome (the journal's "done" is on flash by then)."""

    def __init__(self, state):
        self.state = state
        meters = os.path.join(state, "meters.json")
        with open(meters, "w") as f:
            json.dump([dict(METER, meter_number=METER["address"], balance=10000, count=1)], f)
        self.sim, info = building.start_simulator(meters, 2400)
        self.fleet = building_fleet.Fleet(state, os.path.join(state, "headend.log"))
        self.slot = "127.0.0.1:%d" % free_port()
        self.term = subprocess.Popen(
            [MICROPYTHON, building.TERMINAL, "--bus", info["bus"], "--meters", meters,
             "--baud", "2400", "--state", state, "--keystore",
             building.dev_keystore(os.path.join(state, "keystore.bin")), "--card-slot",
             "tcp:" + self.slot, "--display", "none", "--auto-ok", "--mqtt", self.fleet.mqtt],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.log = []
        self._until("card slot: listening")

    def _until(self, text):
        for line in self.term.stdout:
            self.log.append(line.rstrip("\n"))
            if text in line:
                return True
        return False

    def insert(self, count):
        cmd = building.card_command("purchase", METER, count, self.slot)
        self.fleet.sold(cmd[cmd.index("--serial") + 1], METER["customer"], METER["address"],
                        count, building.AMOUNT)
        card = subprocess.Popen(cmd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shown = self._until("card: shown") and time.time()
        card.terminate()
        card.wait()
        self._until("card: removed")
        return shown

    def close(self):
        procs.stop(self.term)
        self.fleet.stop()
        procs.stop(self.sim)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--topups", type=int, default=8)
    a = p.parse_args(argv)
    state = tempfile.mkdtemp(prefix="bench-latency-")
    live = Live(state)
    lat = []
    try:
        for n in range(a.topups):
            count = 2 + n
            t0 = live.insert(count)
            row = done_row(live.fleet.db, count, time.time() + 30) if t0 else None
            if row is None:
                print("bench_report_latency: purchase %d never reached the head-end" % count)
                return 2
            lat.append((row[0] - t0) * 1000)
    finally:
        live.close()
        shutil.rmtree(state, ignore_errors=True)
    print("journal 'done' step -> row at the head-end (SQLite), %d top-ups:" % len(lat))
    print("  median %.0f ms, max %.0f ms" % (statistics.median(lat), max(lat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
