"""The whole terminal (firmware/app.py) under micropython for
tools/bench_topup.py: the unix board's real bus (RS-485 driver on TCP to the
meter simulator) and card slot (T=0 driver on TCP from the card simulator),
a frame-buffer display that draws every screen, littlefs on the unix
board's flash image behind a counting block device.

Reads one JSON object on stdin:
  bus, baud, slot ("tcp:HOST:PORT"), keys {terminal_id, mk_m, mk_c},
  image (the flash image file, made erased if missing),
  records (meter records seeded: 000000000001.. with customers 1000..),
  fill (journal slots written before boot: 0 or up to journal.SLOTS),
  open_meters ([[meter, count, result], ...]: open entries in the fill),
  topups (cards served before it stops)

Prints, as they happen, "L <ms> <log line>" and "READY <n>" (the slot is
empty, waiting for card n), and at the end one JSON line: per top-up the
times of its log lines from insertion, driver byte counts and flash
operations; boot and recovery times; heap in use at each stage.
"""
import asyncio
import gc
import json
import sys
import time

from null_display import NullDisplay

gc.collect()
_HEAP0 = gc.mem_alloc()

import app  # noqa: E402
import board as unix_board  # noqa: E402 - boards/unix/board.py: the real bus and slot
import card_slot  # noqa: E402
import flash  # noqa: E402
import journal  # noqa: E402
import records  # noqa: E402
import recovery  # noqa: E402
import sm4  # noqa: E402
import storage  # noqa: E402
from keystore import KeyStore, report_key  # noqa: E402

gc.collect()
HEAP_CODE = gc.mem_alloc() - _HEAP0
ROOT = "/flash"


def ms():
    return time.ticks_ms()



class Slot(card_slot.CardSlot):
    """The unix board's slot, noting when a card goes in."""

    def __init__(self, spec, on_insert, **kw):
        super().__init__(spec, **kw)
        self._on_insert = on_insert
        self.reader = None

    async def _conn(self, r, w):
        if not self.busy:
            self._on_insert()
        await super()._conn(r, w)

    async def wait_card(self):
        self.reader = await super().wait_card()
        return self.reader


class Board:
    def __init__(self, cfg, bdev):
        self.cfg = cfg
        self.bdev = bdev
        self.rs485 = None
        self.slot = None
        self.lines = []  # (ms, text, card bytes, bus bytes, flash ops) since the card went in
        self.events = asyncio.Event()
        self.t_in = None
        self.at_in = None  # counters when the card went in
        self.flash_calls = []  # (what, ops, erases, ms) of each write since

    def bus(self, config):
        self.rs485 = unix_board.bus({"bus": self.cfg["bus"], "baud": self.cfg["baud"]})
        return self.rs485

    def card_slot(self, config):
        self.slot = Slot(self.cfg["slot"], self._inserted, log=lambda s: self.report("log", s))
        return self.slot

    def _inserted(self):
        self.t_in = ms()
        self.lines = []
        self.at_in = (self.rs485.tx_bytes, self.rs485.rx_bytes, self.bdev.ops, self.bdev.erases)
        self.flash_calls = []

    def display(self, config):
        return NullDisplay()

    def keys(self, config):
        return None

    def storage(self, config):
        return ROOT

    def clock(self):
        return time.localtime()

    def report(self, kind, text):
        t = ms()
        if self.t_in is not None:  # with the counters at that moment
            r = self.slot.reader
            self.lines.append((time.ticks_diff(t, self.t_in), text,
                               r.bytes_on_wire if r is not None else 0,
                               self.rs485.tx_bytes + self.rs485.rx_bytes - self.at_in[0]
                               - self.at_in[1], self.bdev.ops - self.at_in[2]))
        print("L %d %s" % (t, text))
        self.events.set()

    def close(self):
        pass


def fill_journal(n, open_meters, clock):
    """n slots of closed top-ups (credited, written back), then the open
    ones given, as the firmware writes them (Entry.pack), one write each."""
    j = journal.Journal(ROOT, "000000000099", clock)
    now = j._now()
    seq = 1
    for slot in range(n):
        k = slot - (n - len(open_meters))
        if k >= 0:
            meter, count, result = open_meters[k]
        else:
            meter, count, result = "%012d" % (100 + slot % 50), 1 + slot // 50, journal.CREDITED
        e = journal.Entry(meter, "1" + meter[1:], b"\x88" * 8, 100, count)
        e.result = result
        e.steps = [(seq, now), (seq + 1 if result else 0, now),
                   (seq + 2 if k < 0 else 0, now)]
        seq += 3
        with open(j._path(slot), "wb") as f:
            f.write(e.pack())


def count_flash_ops(b):
    """Each journal and records write notes the program/erase operations it
    cost (the profile of a top-up's flash wear)."""
    def wrap(cls, name):
        orig = getattr(cls, name)

        def counted(self, *args, **kw):
            ops, erases, t = b.bdev.ops, b.bdev.erases, ms()
            try:
                return orig(self, *args, **kw)
            finally:
                b.flash_calls.append((cls.__name__ + "." + name, b.bdev.ops - ops,
                                      b.bdev.erases - erases, time.ticks_diff(ms(), t)))
        setattr(cls, name, counted)

    for cls, name in ((journal.Journal, "begin"), (journal.Journal, "settle"),
                      (journal.Journal, "done"), (records.Records, "put")):
        wrap(cls, name)


async def wait_line(b, prefix, timeout_ms):
    """Until a log line since the card went in starts with prefix (a str or
    a tuple of them); its time, or None."""
    end = time.ticks_add(ms(), timeout_ms)
    while True:
        for line in b.lines:
            if line[1].startswith(prefix):
                return line[0]
        left = time.ticks_diff(end, ms())
        if left <= 0:
            return None
        b.events.clear()
        try:
            await asyncio.wait_for_ms(b.events.wait(), left)
        except asyncio.TimeoutError:
            pass


async def main(cfg):
    out = {"heap_code": HEAP_CODE, "topups": []}
    # the unix board's flash (an image file: a RAM flash of 1 MB would sit in
    # the heap being measured), 4 KB blocks like a board's NOR flash
    bdev = flash.PowerCutBlockDev(flash.FileBlockDev(cfg["image"], 4096, 256))
    storage.mount(bdev, ROOT)
    b = Board(cfg, bdev)
    seed = [{"address": "%012d" % i, "meter_number": "%012d" % i, "customer": "1%011d" % i}
            for i in range(1, cfg["records"] + 1)]
    records.Records(ROOT).seed(seed)  # first boot: the timed boot below is a restart
    if cfg.get("fill"):
        t = ms()
        fill_journal(cfg["fill"], cfg.get("open_meters", []), b.clock)
        out["fill_ms"] = time.ticks_diff(ms(), t)
        import vfs
        vfs.umount(ROOT)  # the power goes: boot from what is on flash
    k = cfg["keys"]
    mk_m = bytes.fromhex(k["mk_m"])
    k_r = report_key(bytes.fromhex(k["mk_r"]), k["terminal_id"]) if k.get("mk_r") else None
    keystore = KeyStore(k["terminal_id"], mk_m, bytes.fromhex(k["mk_c"]),
                        sm4.kdf(mk_m, b"DEVTRANS"), k_r)
    config = {"meters": [], "seed": seed, "keystore": keystore, "auto_ok": True,
              "lang": "zh", "mqtt": cfg.get("mqtt")}  # mqtt + mk_r: reporting on
    gc.collect()
    heap_before = gc.mem_alloc()
    t = ms()
    if cfg.get("fill"):
        storage.mount(bdev, ROOT)
    out["mount_ms"] = time.ticks_diff(ms(), t)
    t = ms()
    a = app.App(b, config)  # records found seeded, journal scanned
    out["boot_ms"] = time.ticks_diff(ms(), t)
    out["open_at_boot"] = len(a.journal.open_entries())
    t = ms()
    journal.Journal(ROOT, a.terminal_id, b.clock)  # the scan alone, again
    out["scan_ms"] = time.ticks_diff(ms(), t)
    t = ms()
    await recovery.settle_all(a)  # what start() runs first, timed on its own
    out["recovery_ms"] = time.ticks_diff(ms(), t)
    out["open_after_recovery"] = len(a.journal.open_entries())
    out["unsettled_after_recovery"] = sum(1 for e in a.journal.open_entries() if not e.settled)
    count_flash_ops(b)
    await a.start()  # starts settle_all again: nothing is left for it
    gc.collect()
    out["heap_app"] = gc.mem_alloc() - heap_before
    for n in range(cfg["topups"]):
        gc.collect()
        print("READY %d" % n, gc.mem_free(), gc.mem_alloc())
        while b.t_in is None or not b.lines or b.slot.reader is None:
            b.events.clear()
            await b.events.wait()
        await wait_line(b, ("card: shown", "card: error"), cfg.get("timeout_ms", 20000))
        r = b.slot.reader
        at = b.at_in
        rec = {"ok": any(x[1] == "screen: success" for x in b.lines),
               "lines": b.lines,
               "bus_tx": b.rs485.tx_bytes - at[0], "bus_rx": b.rs485.rx_bytes - at[1],
               "card_bytes": r.bytes_on_wire, "apdus": r.apdus,
               "ops": bdev.ops - at[2], "erases": bdev.erases - at[3],
               "flash_calls": b.flash_calls}
        gc.collect()
        rec["heap_free"] = gc.mem_free()
        rec["heap_used"] = gc.mem_alloc() - _HEAP0
        out["topups"].append(rec)
        if not rec["ok"]:
            break
        await wait_line(b, "card: removed", 60000)
        while b.slot.busy:
            await asyncio.sleep_ms(1)
        b.t_in = None
        b.slot.reader = None
    a.stop()
    out["modules"] = sorted(k for k in sys.modules if k not in ("__main__", "board"))
    out["modules"].append("board")
    print(json.dumps(out))


asyncio.run(main(json.loads(sys.stdin.readline())))
