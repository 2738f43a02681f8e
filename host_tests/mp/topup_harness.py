"""The real top-up flow under micropython, on a test board, driven by
pytest (host_tests/topup_ctl.py) through JSON lines: commands on stdin,
events on stdout.

The board: the bus is drivers/rs485.RS485 over boards/unix/uart.UART to a
meter simulator (or a man in the middle), the card slot is
boards/unix/card_slot.CardSlot (tools/card_sim.T0Sim connects to it), the
flash is littlefs on drivers/flash.PowerCutBlockDev over a RAMBlockDev,
mounted with storage.mount, so a power cut can hit any program or erase
operation. A framebuf display makes the app log "screen: NAME"; no keys
(config auto_ok); a fixed clock; a KeyStore with the profile's test keys.

A power cut (mode "cpu") is the moment the block device goes dead: the bus
and the card go dead in the same instant (nothing more reaches a meter or
the card), then every task of the terminal is cancelled and its sockets
closed. "boot" brings the power back: the flash keeps what it holds, a new
App is built on it (journal scan, recovery.settle_all), as at a restart.
Mode "flash": the flash dies but the terminal runs on (writes raise
OSError), to see what the flow does with a flash that fails under it.

First stdin line, the setup: {"bus": "tcp:H:P", "baud", "gap_ms", "slot":
port, "seed": [...], "poll": [...], "interval", "blocks", "mode", "torn",
"image": a host file for snapshots, "terminal_id", "mk_m", "mk_c", "k_t",
"mk_r" (a reporting key: the terminal reports), "mqtt" (config["mqtt"]),
"low_balance"}.

Technician mode (issue 11): "keypad": true gives the board a key queue
(command key {keys}); "keystore_path": the key store on the flash (saved
there on first boot, loaded at every boot); "inbox": the key package
folder (a host path). Command tech_state {customer, meter}: the
customer's record, the key store's overrides and K_m of `meter` as stored.

Commands (one reply event {"ev": "reply", "cmd": ...} each):
  boot {cut_after, torn}   power on: a new App on the flash as it is
  arm {after} / disarm     the power goes after that many more operations
  halt                     stop the terminal cleanly (no cut)
  status                   ops, dead, up, journal open entries, heap
  snapshot / restore       the flash to / from the image file (halted)
  fill / unfill            fill littlefs until ENOSPC (a junk file) / remove it
  quit
Events: log {line}, power_cut {ops}, down, settled, slot_free, reply.
"""
import asyncio
import gc
import os
import json
import sys

from null_display import NullDisplay
import vfs

import app
import flash
import recovery
import storage
from card_slot import CardSlot
from keystore import KeyStore, report_key
from rs485 import RS485
from uart import UART, Pin

ROOT = "/flash"
CLOCK = (2026, 11, 29, 20, 0, 0, 6, 333)


def emit(**ev):
    print(json.dumps(ev))



class DeadUART(UART):
    """The bus UART; `dead` is the power gone: nothing more is written."""

    dead = False

    def write(self, buf):
        if self.dead:
            raise OSError(5)
        return super().write(buf)

    def read(self, n=256):
        if self.dead:
            return None
        return super().read(n)


class Slot(CardSlot):
    """The unix card slot; says when it is free again (a card released)."""

    async def release(self, reader):
        await super().release(reader)
        if not H.off():
            emit(ev="slot_free")

    def cut(self):
        """The power is gone: the card contacts are dead this instant."""
        if self._current is not None:
            self._current[1].closed = False

    def drop(self):
        for conn in (self._current, self._waiting):
            if conn is not None:
                try:
                    conn[0].close()
                except OSError:
                    pass
        self._current = self._waiting = None
        self.busy = False
        self.close()


class CutDev(flash.PowerCutBlockDev):
    def _cut(self):
        c = super()._cut()
        if c == 1:
            H.on_cut()
        return c


class Board:
    def bus(self, config):
        return H.bus

    def card_slot(self, config):
        return H.slot

    def display(self, config):
        return H.display

    def keys(self, config):
        return H.keys

    def inbox(self, config):
        return H.setup.get("inbox")

    def storage(self, config):
        return ROOT

    def clock(self):
        return H.clock

    def report(self, kind, text):
        if kind == "log" and not H.off():
            emit(ev="log", line=text)


class Harness:
    def __init__(self, setup):
        self.setup = setup
        self.mode = setup.get("mode", "cpu")
        bs, n = setup.get("block_size", 4096), setup.get("blocks", 64)
        if setup.get("flash"):  # an image file: the flash outside the app's heap
            self.ram = flash.FileBlockDev(setup["flash"], bs, n)
        else:
            self.ram = flash.RAMBlockDev(bs, n)
        self.dev = None
        self.app = None
        self.bus = self.uart = self.slot = None
        self.display = NullDisplay() if setup.get("display", True) else None
        self.cut = False
        self.up = False
        self.mounted = False
        self.peak = 0
        self.clock = tuple(setup.get("clock", CLOCK))
        self.keys = None
        if setup.get("keypad"):
            import keypad
            self.keys = keypad.KeyQueue()
        ks = setup
        self.keystore = KeyStore(ks.get("terminal_id", "000000000099"),
                                 bytes.fromhex(ks.get("mk_m", "0123456789abcdeffedcba9876543210")),
                                 bytes.fromhex(ks.get("mk_c", "fedcba98765432100123456789abcdef")),
                                 bytes.fromhex(ks.get("k_t", "00112233445566778899aabbccddeeff")),
                                 report_key(bytes.fromhex(ks["mk_r"]), ks.get("terminal_id",
                                            "000000000099")) if ks.get("mk_r") else None)

    # --- power ---------------------------------------------------------
    def off(self):
        """The CPU has no power: nothing it does is seen any more."""
        return self.cut and self.mode == "cpu"

    def on_cut(self):
        """Called from inside the block device, the instant the cut hits."""
        self.cut = True
        emit(ev="power_cut", ops=self.dev.ops)
        if self.mode == "cpu":
            if self.uart is not None:
                self.uart.dead = True
            if self.slot is not None:
                self.slot.cut()
            self.reaper = asyncio.create_task(self._reap())

    async def _reap(self):
        self._stop_app()
        await asyncio.sleep_ms(0)
        self._close_parts()
        self.up = False
        emit(ev="down")

    def _stop_app(self):
        a = self.app
        if a is not None:
            a.stop()
        self.app = None

    def _close_parts(self):
        if self.slot is not None:
            self.slot.drop()
            self.slot = None
        if self.uart is not None:
            self.uart.dead = True
            try:
                self.uart.close()
            except OSError:
                pass
            self.uart = self.bus = None

    def _unmount(self):
        if self.mounted:
            try:
                vfs.umount(ROOT)
            except OSError:
                pass
            self.mounted = False

    async def boot(self, cut_after=None, torn=None):
        if self.up:
            await self.halt()
        self._unmount()
        if self.dev is not None:
            self.dev.dead = True  # an old filesystem object never writes again
        if torn is None:
            torn = self.setup.get("torn", flash.TORN_HALF)
        self.dev = CutDev(self.ram, cut_after, torn)
        self.cut = False
        gc.collect()  # a board powers on with an empty heap
        s = self.setup
        baud = s.get("baud", 115200)
        self.uart = DeadUART(s["bus"], baud)
        char_us = 11 * 1000000 // baud
        self.bus = RS485(self.uart, de=Pin(), baudrate=baud,
                         gap_chars=max(20, s.get("gap_ms", 50) * 1000 // char_us))
        self.slot = Slot("tcp:127.0.0.1:%d" % s["slot"], log=lambda t: None)
        config = {"meters": s.get("poll") or [], "seed": s.get("seed") or [],
                  "keystore": self.keystore, "auto_ok": True, "lang": "en",
                  "keystore_path": s.get("keystore_path"),
                  "interval": s.get("interval", 5), "pulled_ms": 50,
                  "record_capacity": 40, "mqtt": s.get("mqtt"),
                  "low_balance": s.get("low_balance")}
        for k in ("journal_slots", "event_slots"):  # small rings: fill them in a test
            if s.get(k):
                config[k] = s[k]
        self.up = True
        try:
            storage.mount(self.dev, ROOT)
            self.mounted = True
            path = s.get("keystore_path")
            if path:  # a board loads its key store from flash at every boot
                try:
                    os.stat(path)
                except OSError:
                    self.keystore.save(path)  # provisioned: the first boot
                config["keystore"] = KeyStore.load(path)
            self.app = app.App(Board(), config)
            await self.app.start()
        except Exception as e:  # noqa: BLE001 - a cut during the boot, or a boot failure
            if not self.cut:
                sys.print_exception(e, sys.stderr)
                emit(ev="log", line="boot: %s %s" % (type(e).__name__, e))
                self._stop_app()
                self._close_parts()
                self.up = False
            return False
        return not self.cut

    async def halt(self):
        """A clean stop (not a cut): the flash stays powered."""
        self._stop_app()
        await asyncio.sleep_ms(0)
        self._close_parts()
        self.up = False

    # --- inspection ------------------------------------------------------
    def status(self):
        a = self.app
        j = a.journal if a is not None else None
        out = {"ops": self.dev.ops if self.dev else 0,
               "erases": self.dev.erases if self.dev else 0,
               "dead": bool(self.dev and self.dev.dead), "up": self.up, "cut": self.cut,
               "heap_peak": self.peak}
        if self.mounted and not self.off():
            try:
                v = os.statvfs(ROOT)
                out["blocks_free"], out["blocks"] = v[3], v[2]
            except OSError:
                pass
        if j is not None:
            entries = j.open_entries()
            out["open_n"] = len(entries)  # the first few only: the heap is small
            out["open"] = [{"seq": e.seq, "meter": e.meter, "count": e.count,
                            "amount": e.amount, "result": e.result,
                            "written_back": e.written_back} for e in entries[:3]]
            del entries
            out["next_seq"] = j.next_seq
        return out

    def tech_state(self, customer, meter):
        a = self.app
        rec = a.records.by_customer(customer)
        out = {"record": None if rec is None else {
            "meter": rec.meter, "state": rec.state, "key": rec.key, "address": rec.address},
            "old_record": a.records.get(meter) is not None}
        ks = KeyStore.load(self.setup["keystore_path"])
        out["overrides"] = ks.overrides()
        out["km"] = ks.meter_key(meter).hex()
        out["pending"] = [n for n in os.listdir(ROOT + "/tech") if n.startswith("pending")] \
            if "tech" in os.listdir(ROOT) else []
        out["files"] = os.listdir(ROOT)
        return out

    def journal_all(self):
        """Every journal entry on flash, one event each (the heap is small).
        -> how many."""
        a = self.app
        if a is None or a.journal is None:
            return 0
        n = 0
        for e in a.journal.newest(a.journal.slots):
            emit(ev="entry", seq=e.seq, meter=e.meter, count=e.count, amount=e.amount,
                 result=e.result, written_back=e.written_back, after_count=e.after_count,
                 after_balance=e.after_balance)
            n += 1
        return n

    def snapshot(self, path):
        self._copy(self.ram, _Image(path, "wb"))

    def restore(self, path):
        self._unmount()
        self._copy(_Image(path, "rb"), self.ram)

    def _copy(self, src, dst):
        gc.collect()
        buf = bytearray(512)
        for n in range(self.ram.count):
            for off in range(0, self.ram.block_size, len(buf)):
                src.readblocks(n, buf, off)
                dst.writeblocks(n, buf, off)
        for x in (src, dst):
            if isinstance(x, _Image):
                x.f.close()

    def fill(self):
        """littlefs full: a junk file grown in ever smaller appends, each
        committed (closed), then tiny files for the metadata, until even
        those are refused. -> (bytes written, errnos of the refusals)."""
        n, err = 0, []
        for size in (4096, 512, 64, 8):
            chunk = b"\xa5" * size
            while True:
                try:
                    with open(ROOT + "/junk", "ab") as f:
                        f.write(chunk)
                except OSError as e:
                    err.append(e.args[0])
                    break
                n += size
        for i in range(2000):
            try:
                with open("%s/jk%d" % (ROOT, i), "wb") as f:
                    f.write(b"x" * 16)
            except OSError as e:
                err.append(e.args[0])
                break
            n += 16
        return n, err

    def unfill(self):

        os.remove(ROOT + "/junk")
        for name in os.listdir(ROOT):
            if name.startswith("jk"):
                os.remove(ROOT + "/" + name)


class _Image:
    """A flash snapshot file, block by block (never whole in the heap)."""

    def __init__(self, path, mode):
        self.f = open(path, mode)
        self.bs = None

    def readblocks(self, n, buf, off=0):
        self.f.readinto(buf)

    def writeblocks(self, n, buf, off=0):
        self.f.write(buf)


H = None
_settle_all = recovery.settle_all


async def _settle_and_say(a):
    await _settle_all(a)
    if not H.off():
        emit(ev="settled")


recovery.settle_all = _settle_and_say  # instrumentation only: says when it ends


async def heap_watch():
    while True:
        used = gc.mem_alloc()
        H.peak = max(H.peak, used)
        await asyncio.sleep_ms(50)


async def main():
    global H
    H = Harness(json.loads(sys.stdin.readline()))
    emit(ev="ready")
    watch = asyncio.create_task(heap_watch())
    stdin = asyncio.StreamReader(sys.stdin)
    while True:
        line = await stdin.readline()
        if not line:
            break
        req = json.loads(line)
        cmd = req.get("cmd")
        out = {}
        try:
            if cmd == "boot":
                out["ok"] = await H.boot(req.get("cut_after"), req.get("torn"))
            elif cmd == "halt":
                await H.halt()
            elif cmd == "arm":  # the power goes after `after` more operations
                if H.dev is not None and not H.dev.dead:
                    H.dev.cut_after = H.dev.ops + req["after"]
            elif cmd == "disarm":
                if H.dev is not None:
                    H.dev.cut_after = None
            elif cmd == "status":
                out = H.status()
            elif cmd == "key":
                for k in req["keys"]:
                    H.keys.put_nowait(k)
            elif cmd == "tech_state":
                out = H.tech_state(req["customer"], req["meter"])
            elif cmd == "journal":
                out["n"] = H.journal_all()
            elif cmd == "snapshot":
                H.snapshot(req["path"])
            elif cmd == "restore":
                if H.up:
                    await H.halt()
                H.restore(req["path"])
            elif cmd == "fill":
                out["bytes"], out["errno"] = H.fill()
            elif cmd == "unfill":
                H.unfill()
            elif cmd == "gc":
                gc.collect()
                out["free"], out["alloc"] = gc.mem_free(), gc.mem_alloc()
            elif cmd == "quit":
                emit(ev="reply", cmd=cmd)
                break
            else:
                out["error"] = "unknown command %r" % cmd
        except Exception as e:  # noqa: BLE001 - the test sees it
            out["error"] = "%s: %s" % (type(e).__name__, e)
        out["ev"] = "reply"
        out["cmd"] = cmd
        print(json.dumps(out))
    if H.up:
        await H.halt()
    watch.cancel()


asyncio.run(main())
