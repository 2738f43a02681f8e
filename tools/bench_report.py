"""Reporting's cost to a top-up, side by side in one run: the same top-ups
(tools/bench_topup.py's harness: the real app, the meter simulator at 2400
baud, the card simulator at 9600) with reporting off, then on to a live
mosquitto (a head-end stand-in subscribed, checking every MAC), then on to
a broker that accepts and never answers (a black hole).

Figures: card in -> success screen (median), its ratio on/off (target:
no measurable slowdown, <= 1.05), heap after boot and after a top-up
(source; the board freezes the modules, so the .mpy bytecode is not heap
there), flash operations per top-up (the cursor's lazy save included).

  python tools/bench_report.py [--topups N]
Exit 1 when a target is missed, 2 when a top-up fails.
"""
import argparse
import socket
import statistics
import sys
import threading

import hostpath  # noqa: F401

import bench_topup as bt
from broker_ctl import MK_R, HeadEnd
from headend_rig import Mosquitto
from meter_sim_ctl import MeterSim

TARGET_RATIO = 1.05


def blackhole():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    held = []

    def accept():
        while True:
            try:
                held.append(s.accept()[0])
            except OSError:
                return
    threading.Thread(target=accept, daemon=True).start()
    return s


def measure(sim, topups, extra):
    got, err = bt.run(sim, 8, topups, extra=extra)
    if got is None:
        raise SystemExit("bench_report: the terminal failed:\n%s" % err)
    runs = [bt.figures(r) for r in got["topups"]]
    if len(runs) < topups or not all(f["ok"] for f in runs):
        raise SystemExit("bench_report: a top-up failed (%s)" % extra.get("mqtt"))
    later = runs[1:] or runs
    return {"ms": statistics.median(f["ms"] for f in later),
            "heap_app": got["heap_app"] // 1024,
            "heap_used": max(r["heap_used"] for r in got["topups"]) // 1024,
            "ops": max(f["ops"] for f in later)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--topups", type=int, default=5, help="cards per case (median of all "
                   "but the first)")
    a = p.parse_args(argv)
    keys = dict(bt.KEYS, mk_r=MK_R.hex())
    rows = []
    with MeterSim(meters=bt.SIM_METERS, baud=bt.BUS_BAUD, reply_delay_ms=bt.REPLY_DELAY_MS) \
            as sim, Mosquitto() as broker:
        he = HeadEnd(broker.port)
        hole = blackhole()
        try:
            off = measure(sim, a.topups, {"keys": keys})
            on = measure(sim, a.topups, {"keys": keys, "mqtt": {
                "host": "127.0.0.1", "port": broker.port}})
            he.wait(lambda h: len([g for g in h.journal() if g[3]["kind"] == "topup"])
                    >= 3 * a.topups, 60)
            good = all(g[2] for g in he.got)
            silent = measure(sim, a.topups, {"keys": keys, "mqtt": {
                "host": "127.0.0.1", "port": hole.getsockname()[1]}})
        finally:
            he.close()
            hole.close()
    for name, r in (("off", off), ("on, mosquitto", on), ("on, black-hole broker", silent)):
        ratio = r["ms"] / off["ms"]
        rows.append((name, r, ratio))
    print("reporting and a top-up (8 records, %d top-ups a case, median of the later ones)"
          % a.topups)
    print("%-24s %10s %8s %16s %16s %8s" % ("reporting", "top-up ms", "ratio",
                                            "heap after boot", "heap after top-up", "ops"))
    for name, r, ratio in rows:
        print("%-24s %10.0f %8.3f %13d KB %13d KB %8d" % (name, r["ms"], ratio, r["heap_app"],
                                                         r["heap_used"], r["ops"]))
    print("head-end: %d journal reports received, every MAC %s" % (
        len(he.journal()), "good" if good else "NOT good"))
    missed = [name for name, _, ratio in rows if ratio > TARGET_RATIO]
    if not good:
        missed.append("MACs")
    if missed:
        print("missed (ratio > %.2f): %s" % (TARGET_RATIO, ", ".join(missed)))
        return 1
    print("target: ratio <= %.2f: met" % TARGET_RATIO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
