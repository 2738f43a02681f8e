"""A whole top-up, card in to success screen, under micropython: the terminal
(firmware/app.py on the unix board's bus and card slot, littlefs on a
counting block device: host_tests/mp/bench_topup.py) against the meter
simulator at 2400 baud and the card simulator paced at 9600 baud.

Figures, measured side by side in one run, against their targets:
  - card in -> "screen: success", against the wire floor: every byte's time
    on each line (bus bytes x 11 bits / 2400, card bytes x 12 etu / 9600,
    counted by the drivers: RS485.tx_bytes/rx_bytes, CardReader.bytes_on_wire)
    plus the meter simulator's reply delay per reply. Target: ratio <= 1.2,
    total < 3 s. The poller is off: a poll in progress would hold the bus.
  - the same with 8 and with 256 meter records (target: no growth);
  - boot (mount, records, journal scan) and recovery (settling the open
    entries against the meters) with a full journal, and a top-up after it;
  - the smallest -X heapsize with which a whole top-up still succeeds
    (binary search; target <= 96 KB);
  - flash program/erase operations per top-up (target <= 8).

  python tools/bench_topup.py [--quick] [--topups N] [--records N,N] [--fill N]
                              [--no-heap]
--quick: small sizes, for the smoke test (host_tests/test_bench_topup.py).
Exit 1 when a target is missed (the table says which), 2 when a top-up fails.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import hostpath

import journal
from card_sim_ctl import SimProcess, free_port, make_card
from meter_sim_ctl import MeterSim
from mp_runner import MICROPYTHON, MP_PATH, MPY_CROSS

ROOT = hostpath.ROOT
HARNESS = os.path.join(ROOT, "host_tests", "mp", "bench_topup.py")
BUS_BAUD = 2400
CARD_BAUD = 9600
REPLY_DELAY_MS = 20
KEYS = {"terminal_id": "000000000099", "mk_m": "0123456789abcdeffedcba9876543210",
        "mk_c": "fedcba98765432100123456789abcdef"}  # the security profile's test keys
METER = "000000000001"
CUSTOMER = "100000000001"
AMOUNT = 5000
# meters on the simulator: 1 takes the cards; 2 and 3 have a top-up left
# open in the full journal (2: it never landed, 3: it did)
SIM_METERS = [{"address": METER, "customer": CUSTOMER, "balance": 11234, "count": 1},
              {"address": "000000000002", "customer": "100000000002", "balance": 500,
               "count": 5},
              {"address": "000000000003", "customer": "100000000003", "balance": 900,
               "count": 7}]
OPEN_ENTRIES = [["000000000002", 6, journal.PENDING], ["000000000003", 7, journal.UNCONFIRMED]] \
    + [["%012d" % (200 + i), 3, journal.CREDITED] for i in range(8)]  # awaiting write-back

TARGET_RATIO = 1.2
TARGET_TOTAL_MS = 3000
TARGET_GROWTH = 1.1  # "no growth": within the run-to-run noise
TARGET_HEAP_KB = 96
TARGET_OPS = 8


class Harness:
    """host_tests/mp/bench_topup.py in a micropython process: its lines, read
    in a thread, waited for by condition (never by sleeping)."""

    def __init__(self, cfg, heap="512k", mp_path=MP_PATH):
        self.proc = subprocess.Popen(
            [MICROPYTHON, "-X", "heapsize=" + heap, HARNESS], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, MICROPYPATH=mp_path))
        self.proc.stdin.write(json.dumps(cfg) + "\n")
        self.proc.stdin.close()
        self.lines = []
        self.done = False
        self._cv = threading.Condition()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._cv:
                self.lines.append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self.done = True
            self._cv.notify_all()

    def wait(self, pred, timeout, nth=1):
        """The nth line pred accepts, or None once the process ended or
        timeout passed."""
        end = time.monotonic() + timeout
        with self._cv:
            while True:
                hits = [x for x in self.lines if pred(x)]
                if len(hits) >= nth:
                    return hits[nth - 1]
                left = end - time.monotonic()
                if self.done or left <= 0:
                    return None
                self._cv.wait(left)

    def result(self, timeout):
        """The final JSON line, or None (the process failed: see .text())."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._t.join(10)
        if self.proc.returncode == 0 and self.lines and self.lines[-1].startswith("{"):
            return json.loads(self.lines[-1])
        return None

    def text(self):
        return "\n".join(self.lines[-15:])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run(sim, records, topups, heap="512k", fill=0, timeout=120, mp_path=MP_PATH,
        card_timeout_ms=30000, extra=None):
    """Boot the terminal, serve `topups` cards for METER -> (result, error).
    extra: more of the harness's configuration (tools/bench_report.py)."""
    slot = free_port()
    tmp = tempfile.mkdtemp(prefix="bench_topup_")
    cfg = {"image": os.path.join(tmp, "flash.img"), "bus": sim.bus, "baud": BUS_BAUD,
           "slot": "tcp:127.0.0.1:%d" % slot, "keys": KEYS,
           "records": records, "topups": topups, "fill": fill, "timeout_ms": card_timeout_ms,
           "open_meters": OPEN_ENTRIES if fill else []}
    cfg.update(extra or {})
    h = Harness(cfg, heap, mp_path)
    card = None
    stats = []
    try:
        for n in range(topups):
            if h.wait(lambda x: x.startswith("READY %d" % n), timeout) is None:
                break
            if card is None:
                card = SimProcess(slot, "--mk-c", KEYS["mk_c"], "--baud", str(CARD_BAUD))
            count = sim.meter(METER)["count"] + 1
            sim.control("reset_stats")
            c = make_card(amount=AMOUNT, count=count, meter=METER, customer=CUSTOMER,
                          mk=bytes.fromhex(KEYS["mk_c"]))
            card.cmd(cmd="swap", card=c.to_json())
            shown = h.wait(lambda x: x.startswith("L ") and (" card: shown" in x
                                                             or " card: error" in x),
                           timeout, n + 1)
            stats.append(sim.stats())
            card.cmd(cmd="pull")
            if shown is None:
                break
        got = h.result(timeout)
    finally:
        h.kill()
        if card is not None:
            card.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if got is None:
        return None, h.text()
    for rec, st in zip(got["topups"], stats):
        rec["sim"] = st
    return got, None


# -- figures ------------------------------------------------------------------

def _at(rec, prefix):
    for line in rec["lines"]:
        if line[1].startswith(prefix):
            return line
    return None


def figures(rec):
    """One top-up -> measured and floor times, per phase."""
    st = rec["sim"]
    card_ms = 12 * 1000.0 / CARD_BAUD
    bus_ms = 11 * 1000.0 / BUS_BAUD
    read = _at(rec, "card: purchase")
    credited = _at(rec, "meter: credited")
    success = _at(rec, "screen: success")
    f = {"rec": rec, "ok": rec["ok"] and success is not None, "ops": rec["ops"],
         "erases": rec["erases"],
         "card_bytes": rec["card_bytes"], "bus_bytes": rec["bus_tx"] + rec["bus_rx"],
         "sim_bus_bytes": st["rx_bytes"] + st["tx_bytes"], "replies": st["replies"],
         "apdus": rec["apdus"]}
    if not f["ok"]:
        return f
    f["ms"] = success[0]
    f["floor"] = (f["card_bytes"] * card_ms + f["bus_bytes"] * bus_ms
                  + st["replies"] * REPLY_DELAY_MS)
    f["ratio"] = f["ms"] / f["floor"]
    # phases: card read | meter session (confirm, settle, status, top-up,
    # read-back, end) | write-back, journal done, success screen drawn
    f["phases"] = [
        ("card read", read[0], read[2] * card_ms, read[4]),
        ("meter session", credited[0] - read[0],
         f["bus_bytes"] * bus_ms + st["replies"] * REPLY_DELAY_MS, credited[4] - read[4]),
        ("write-back + screen", success[0] - credited[0],
         (success[2] - credited[2]) * card_ms, success[4] - credited[4]),
    ]
    return f


def median_run(runs):
    """The median top-up of a known card (the first, a new card's, has its
    own row), or of all when there is only one."""
    ok = [f for f in runs[1:] or runs if f["ok"]]
    if not ok:
        return None
    return sorted(ok, key=lambda f: f["ms"])[len(ok) // 2]


def heap_search(sim, mp_path=MP_PATH, lo_kb=16, hi_kb=512, step_kb=4):
    """Smallest -X heapsize (KB, to step_kb) serving one whole top-up."""
    def works(kb):
        got, _ = run(sim, 8, 1, heap="%dk" % kb, timeout=90, mp_path=mp_path,
                     card_timeout_ms=15000)
        return got is not None and got["topups"] and got["topups"][0]["ok"]

    if not works(hi_kb):
        return None, []
    tried = [(hi_kb, True)]
    while hi_kb - lo_kb > step_kb:
        mid = (lo_kb + hi_kb) // 2 // step_kb * step_kb
        ok = works(mid)
        tried.append((mid, ok))
        if ok:
            hi_kb = mid
        else:
            lo_kb = mid
    return hi_kb, tried


def compile_mpy(out):
    """Every firmware, driver and unix-board module as x64 .mpy in `out`:
    no compiling on import (a board has them frozen, not even in RAM)."""
    for d in ("firmware", "drivers", "boards/unix"):
        for name in sorted(os.listdir(os.path.join(ROOT, d))):
            if name.endswith(".py") and name != "manifest.py":
                subprocess.run([MPY_CROSS, "-march=x64", "-o",
                                os.path.join(out, name[:-3] + ".mpy"),
                                os.path.join(ROOT, d, name)], check=True)
    return os.pathsep.join((".frozen", out, os.path.join(ROOT, "host_tests", "mp")))


def code_heap(modules, mp_path):
    """Heap the modules hold once imported (bytecode, module-level data)
    -> (total bytes, [(module, bytes it and what it pulled in added)]), or
    None."""
    code = ("import gc\ngc.collect()\na = b = gc.mem_alloc()\n"
            + "".join("import %s\ngc.collect()\nc = gc.mem_alloc()\nprint('%s', c - b)\nb = c\n"
                      % (m, m) for m in modules)
            + "print('total', b - a)\n")
    p = subprocess.run([MICROPYTHON, "-X", "heapsize=1024k", "-c", code], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, MICROPYPATH=mp_path),
                       check=False)
    if p.returncode != 0:
        return None
    sizes = [(x.split()[0], int(x.split()[1])) for x in p.stdout.split("\n") if x.strip()]
    return sizes[-1][1], sorted(sizes[:-1], key=lambda x: -x[1])


def mark(ok):
    return "met" if ok else "MISSED"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--topups", type=int, default=3, help="cards per size (median reported)")
    p.add_argument("--records", default="8,256", help="meter record counts to compare")
    p.add_argument("--fill", type=int, default=journal.SLOTS, help="journal slots before boot")
    p.add_argument("--no-heap", action="store_true", help="skip the heap search")
    a = p.parse_args(argv)
    sizes = [int(x) for x in a.records.split(",")]
    if a.quick:
        a.topups, sizes, a.fill, a.no_heap = 1, [4, 8], 20, True
    rows = []  # (figure, measured, target, met)
    missed = []
    profile = []
    notes = []  # printed under the table
    with MeterSim(meters=SIM_METERS, baud=BUS_BAUD, reply_delay_ms=REPLY_DELAY_MS) as sim:
        per_size = {}
        for n in sizes:
            got, err = run(sim, n, a.topups)
            if got is None:
                print("bench_topup: the terminal with %d records failed:\n%s" % (n, err))
                return 2
            runs = [figures(r) for r in got["topups"]]
            if len(runs) < a.topups or not all(f["ok"] for f in runs):
                print("bench_topup: a top-up with %d records failed:\n%s"
                      % (n, "\n".join("  %6d ms  %s" % (t[0], t[1])
                                      for r in got["topups"] for t in r["lines"])))
                return 2
            per_size[n] = (got, runs)
        for n in sizes:
            got, runs = per_size[n]
            m = median_run(runs)
            ok = m["ratio"] <= TARGET_RATIO
            rows.append(("top-up, %d records: card in -> success screen" % n,
                         "%.0f ms (floor %.0f ms)" % (m["ms"], m["floor"]),
                         "total < %d ms" % TARGET_TOTAL_MS, m["ms"] < TARGET_TOTAL_MS))
            rows.append(("  ratio to the wire floor", "%.2f" % m["ratio"],
                         "<= %.1f" % TARGET_RATIO, ok))
            first, later = runs[0], runs[1:]
            if later:
                ops = max(f["ops"] for f in later)
                rows.append(("  flash prog/erase ops, top-up (card known)",
                             "%d (%d erases)" % (ops, max(f["erases"] for f in later)),
                             "<= %d" % TARGET_OPS, ops <= TARGET_OPS))
            rows.append(("  flash prog/erase ops, a new card's first",
                         "%d (%d erases), %.0f ms" % (first["ops"], first["erases"], first["ms"]),
                         "<= %d" % TARGET_OPS, first["ops"] <= TARGET_OPS))
            profile.append((n, m, got))
        t0, t1 = (median_run(per_size[n][1])["ms"] for n in (sizes[0], sizes[-1]))
        growth = t1 / t0
        rows.append(("growth %d -> %d records" % (sizes[0], sizes[-1]), "x %.2f" % growth,
                     "<= x %.1f" % TARGET_GROWTH, growth <= TARGET_GROWTH))

        got, err = run(sim, sizes[0], 1, fill=a.fill)
        if got is None:
            print("bench_topup: boot with a full journal failed:\n%s" % err)
            return 2
        f = figures(got["topups"][0]) if got["topups"] else {"ok": False}
        rows.append(("boot, journal of %d slots (%d open)" % (a.fill, got["open_at_boot"]),
                     "%d ms (mount %d, journal scan %d)" % (got["boot_ms"], got["mount_ms"],
                                                            got["scan_ms"]), "", None))
        rows.append(("  recovery: settle 2 unsettled against the meters",
                     "%d ms, %d unsettled left" % (got["recovery_ms"],
                                                   got["unsettled_after_recovery"]),
                     "", None))
        rows.append(("  top-up after it", "%.0f ms, ratio %.2f" % (f["ms"], f["ratio"])
                     if f["ok"] else "FAILED", "as above", f["ok"]))

        if not a.no_heap:
            kb, tried = heap_search(sim)
            rows.append(("smallest -X heapsize, source (as terminal.py runs)",
                         "%s KB" % kb if kb else "none up to 512 KB",
                         "<= %d KB" % TARGET_HEAP_KB, kb is not None and kb <= TARGET_HEAP_KB))
            base = per_size[sizes[0]][0]
            rows.append(("  heap after imports / after boot / after a top-up",
                         "%d / %d / %d KB" % (base["heap_code"] // 1024,
                                              (base["heap_code"] + base["heap_app"]) // 1024,
                                              base["topups"][-1]["heap_used"] // 1024),
                         "", None))
            tmp = tempfile.mkdtemp(prefix="bench_topup_mpy_")
            try:
                mpy_path = compile_mpy(tmp)
                kb2, tried2 = heap_search(sim, mpy_path)
                code = code_heap(base["modules"], mpy_path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            rows.append(("smallest -X heapsize, precompiled .mpy",
                         "%s KB" % kb2 if kb2 else "none up to 512 KB",
                         "<= %d KB" % TARGET_HEAP_KB,
                         kb2 is not None and kb2 <= TARGET_HEAP_KB))
            if code is not None and kb2:
                rows.append(("  of which the %d modules' bytecode and data" % len(base["modules"]),
                             "%d KB: frozen on a board, ~%d KB left" % (code[0] // 1024,
                                                                       kb2 - code[0] // 1024),
                             "", None))
                notes.append("heap held by modules (.mpy; each with what it pulls in first): %s"
                             % ", ".join("%s %.1f KB" % (m, n / 1024.0) for m, n in code[1][:8]))
            for label, t in (("source", tried), (".mpy", tried2)):
                notes.append("heap search, %s (KB: served a top-up): %s" % (label, ", ".join(
                    "%d %s" % (k, "yes" if ok else "no") for k, ok in t)))

    print("top-up at %d baud on the bus, %d on the card (simulators paced), micropython"
          % (BUS_BAUD, CARD_BAUD))
    w = max(len(r[0]) for r in rows)
    print("%-*s  %-34s  %-14s  %s" % (w, "figure", "measured", "target", ""))
    for name, got_, target, ok in rows:
        print("%-*s  %-34s  %-14s  %s" % (w, name, got_, target,
                                          "" if ok is None else mark(ok)))
        if ok is False and name.strip() not in missed:
            missed.append(name.strip())
    n, m, got = profile[-1]
    print("where the time goes (%d records, median top-up; floor = bytes on its line + "
          "reply delays):" % n)
    for name, t, floor, ops in m["phases"]:
        print("  %-20s %6d ms  floor %6.0f ms  ratio %5.2f  flash ops %d"
              % (name, t, floor, t / floor if floor else 0, ops))
    print("  bytes (the drivers' counters): card %d (%d APDUs), bus %d (the simulator counted "
          "%d), %d replies" % (m["card_bytes"], m["apdus"], m["bus_bytes"], m["sim_bus_bytes"],
                               m["replies"]))
    for label, rec in (("a new card's first top-up", got["topups"][0]),
                       ("median top-up", m["rec"])):
        print("  flash writes, %s: %s" % (label, ", ".join(
            "%s %d ops (%d erases) %d ms" % tuple(c) for c in rec["flash_calls"]) or "none"))
    for line in notes:
        print("  " + line)
    if missed:
        print("missed: %s" % "; ".join(missed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
