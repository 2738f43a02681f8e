"""Poll N meters at 2400 baud through the meter simulator: the measured time
against the wire-time floor (every byte on the wire at 11 bits a character,
plus the simulator's reply delay per exchange). Target: ratio <= 1.15 for 32.

  python tools/bench_poll.py [N] [BAUD]
"""
import json
import sys

import hostpath  # noqa: F401
from meter_sim_ctl import MeterSim
from mp_runner import run_mp_json

REPLY_DELAY_MS = 20
TARGET = 1.15


def main(n=32, baud=2400):
    with MeterSim(count=n, baud=baud, reply_delay_ms=REPLY_DELAY_MS) as sim:
        addresses = [m["address"] for m in sim.control("list")["meters"]]
        sim.control("reset_stats")
        ops = [["status", a] for a in addresses]
        out = run_mp_json("host_tests/mp/meter_ops.py", sim.bus, baud, stdin=json.dumps(ops),
                          heap="128k", timeout=600)
        stats = sim.control("stats")
    bad = [r for r in out["results"] if "error" in r]
    wire_bytes = stats["rx_bytes"] + stats["tx_bytes"]
    floor_ms = wire_bytes * 11 * 1000.0 / baud + stats["replies"] * REPLY_DELAY_MS
    ratio = out["ms"] / floor_ms
    print("poll of %d meters at %d baud (micropython, TCP bus, %d exchanges, %d errors)"
          % (n, baud, stats["replies"], len(bad)))
    print("  bytes on the wire: %d to meters, %d from meters (driver counted %d / %d)"
          % (stats["rx_bytes"], stats["tx_bytes"], out["tx"], out["rx"]))
    met = ratio <= TARGET and not bad
    print("  measured %.0f ms, wire-time floor %.0f ms, ratio %.3f (target <= %.2f: %s)"
          % (out["ms"], floor_ms, ratio, TARGET, "met" if met else "MISSED"))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main(*[int(a) for a in sys.argv[1:3]]))
