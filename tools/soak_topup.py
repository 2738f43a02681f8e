#!/usr/bin/env python3
"""Soak the top-up flow (issue 10): many purchases over a building of
simulated meters, with random card pulls, a lying or silent bus and power
cuts, the real flow under micropython (host_tests/topup_ctl.py). At the end
every card is re-inserted until settled and, per meter, the sum of the
purchases sold must equal the sum credited, to the fen.

    python tools/soak_topup.py [--purchases 10000] [--meters 32] [--shards 4] [--seed 1]

--shards runs that many terminals side by side (each with its share of the
meters, its own bus and simulator): the purchases are split between them.
Prints one line per shard and a total; exit 1 on any failure.
"""
import argparse
import concurrent.futures
import json
import random
import sys
import tempfile
import time

import hostpath  # noqa: F401

from topup_ctl import Rig, World, build_mpy, meter_state  # noqa: E402

# fault weights per session: mostly clean, as in a building
WRITE_BACK_PULLS = 0.8  # share of pulls aimed at the write-back (bytes 100..160)
WEIGHTS = (("none", 80), ("pull", 6), ("mitm", 7), ("silent", 1), ("cut", 5), ("reboot", 1))


def pick_fault(rnd):
    kinds, weights = zip(*WEIGHTS)
    fault = rnd.choices(kinds, weights)[0]
    if fault == "pull":  # mostly in the write-back: a pull in the read costs 3 s
        arg = rnd.randint(100, 160) if rnd.random() < WRITE_BACK_PULLS else rnd.randint(0, 99)
    elif fault == "mitm":
        arg = rnd.randint(0, 47)
    elif fault == "silent":
        arg = rnd.randint(0, 6)
    elif fault == "cut":
        arg = rnd.randint(0, 8)
    else:
        arg = 0
    return fault, arg


def soak(purchases, meters, seed, mpy, progress=None, blocks=256, heap="384k"):
    """One terminal, `meters` meters (addresses first..), `purchases` sold.
    -> dict of figures; raises AssertionError if the invariant breaks."""
    rnd = random.Random(seed)
    states = [meter_state(a) for a in meters]
    t0 = time.monotonic()
    with Rig(states, mpy=mpy, mitm=True, blocks=blocks, heap=heap) as rig:
        rig.boot()
        w = World(rig, rnd)
        while w.stats["sold"] < purchases:
            fault, arg = pick_fault(rnd)
            w.step(rnd.choice(meters), fault, arg)
            if progress and w.stats["sessions"] % 250 == 0:
                progress(dict(w.stats))
        now = w.heal()
        sold = {m: sum(p.amount for p in rig.sold[m]) for m in meters}
        credited = {m: now[m]["balance"] - rig.initial[m][0] for m in meters}
        assert sold == credited, (sold, credited)
        out = dict(w.stats)
        out["fen_sold"] = sum(sold.values())
        out["fen_credited"] = sum(credited.values())
        st = rig.term.cmd("status")
        out["heap_peak"] = st["heap_peak"]
        out["journal_open"] = st["open_n"]  # entries whose card never came back
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--purchases", type=int, default=10000)
    p.add_argument("--meters", type=int, default=32)
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--heap", default="384k",
                   help="the terminal's heap (micropython -X heapsize); a soak boots many "
                        "times in one process, which fragments a heap a board starts afresh")
    p.add_argument("--blocks", type=int, default=256,
                   help="4 KB flash blocks (256: the unix board's 1 MB, which the journal's "
                        "ring is sized for; it wraps many times in a soak)")
    a = p.parse_args(argv)
    addresses = ["%012d" % i for i in range(1, a.meters + 1)]
    shards = [addresses[i::a.shards] for i in range(a.shards)]
    share = [a.purchases // a.shards + (i < a.purchases % a.shards) for i in range(a.shards)]
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        mpy = build_mpy(tmp)
        with concurrent.futures.ThreadPoolExecutor(a.shards) as ex:
            futs = [ex.submit(soak, share[i], shards[i], a.seed * 1000 + i, mpy,
                              lambda s, i=i: print("shard %d: %s" % (i, json.dumps(s)),
                                                   flush=True), a.blocks, a.heap)
                    for i in range(a.shards)]
            results, failed = [], False
            for i, f in enumerate(futs):
                try:
                    results.append(f.result())
                    print("shard %d done: %s" % (i, json.dumps(results[-1])), flush=True)
                except AssertionError as e:
                    failed = True
                    print("shard %d FAILED: %s" % (i, e), flush=True)
    if failed:
        return 1
    total = {k: sum(r[k] for r in results) for k in results[0] if k != "heap_peak"}
    total["seconds"] = round(time.monotonic() - t0, 1)
    print("soak: %s" % json.dumps(total))
    print("soak: %d purchases over %d meters: sold %d fen, credited %d fen, exactly once"
          % (total["sold"], a.meters, total["fen_sold"], total["fen_credited"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
