"""The journal: a write-ahead record of every top-up, so nothing is lost or
credited twice across a power cut, a pulled card or a silent meter.

A ring of SLOTS small files, /jrn/<slot>, one top-up each, rewritten as it
moves on: littlefs replaces a file whole when it is closed (the old or the
new, never a mix), and a CRC catches anything else. Each step carries its
own sequence number and time:

  intent   written before the top-up frame goes out (durably, or no sale)
  result   what the MAC-checked read-back showed: credited, already there,
           not credited, or unconfirmed (sent, no read-back since)
  done     the card's return file written (write-back), or the card has
           moved on (it shows a later purchase) and never will need it

An entry is *unsettled* while its result is pending or unconfirmed: before
anything new is sold to that meter, it is settled against the meter's
MAC-checked count. It *awaits write-back* once settled until the card's
return file says so, or the card shows a later purchase. An unsettled slot
is never reused; at most MAX_AWAITING wait for their card, and when every
slot is open the oldest of those gives way.

Size: SLOTS = 300 slots of 97 bytes keep the last 300 top-ups, six days at
50 a day, on the terminal (the head-end keeps the history). littlefs keeps
a file this small inline in its directory's metadata, whose blocks it fills
only half before splitting: measured, 100 slots take 25 blocks of 4 KB, so
300 take about 75 (300 KB) beside the records' 54 (256 meters).

Wear: a top-up with a known card costs 4 program/erase operations (intent
2, result 1, done 1; `make bench`); once the ring is full, 3.2 on average,
with an erase about once in 8 top-ups when littlefs compacts a metadata
block (while the ring first fills, creating files, 8.3 and one erase a
top-up). Ten years at 50 top-ups a day is 50 x 365 x 10 = 182,500
top-ups: about 600,000 programs and 24,000 erases, which littlefs's wear
levelling spreads over the partition (256 blocks on the unix board's 1 MB:
about 95 erases a block; a hot metadata pair is relocated every 100 erases
by littlefs's block_cycles), far inside NOR flash's 100,000 erase cycles
per block.
"""
import binascii
import os
import struct
from array import array

from micropython import const

import bcd
import version

SLOTS = const(300)
MAX_AWAITING = const(16)  # entries kept for a card's write-back; then the oldest closes

# results
PENDING = const(0)  # intent only: the top-up frame may have gone out
CREDITED = const(1)
ALREADY = const(2)  # the meter held this count before we sent anything
NOT_CREDITED = const(3)  # settled: the meter's count never reached the card's
UNCONFIRMED = const(4)  # sent; no MAC-checked read-back since
RESULT_NAMES = ("pending", "credited", "already", "not credited", "unconfirmed")

_FMT = "<2sBB6s8s6s6s8sIIiIiIB" + "I6s" * 3 + "I"
_MAGIC = b"TJ"
_SIZE = struct.calcsize(_FMT)


class JournalFull(OSError):
    """No slot may be reused: every one holds an unsettled entry."""


class Entry:
    """One top-up. Times are 6 BCD bytes, YYMMDDhhmmss as a string here."""

    def __init__(self, meter, customer, serial, amount, count):
        self.slot = None
        self.meter = meter
        self.customer = customer
        self.serial = serial  # 8 bytes
        self.amount = amount
        self.count = count
        self.terminal = "000000000000"
        self.version = version.VERSION
        self.before_balance = 0
        self.before_count = 0
        self.result = PENDING
        self.after_balance = 0
        self.after_count = 0
        self.relay_open = False
        self.unwritten = False  # closed without the write-back: the card moved on
        self.steps = [(0, "000000000000")] * 3  # (seq, time) of intent, result, done

    @property
    def seq(self):
        return self.steps[0][0]

    @property
    def settled(self):
        return self.result not in (PENDING, UNCONFIRMED)

    @property
    def written_back(self):
        return self.steps[2][0] != 0

    def pack(self):
        s = self.steps
        body = struct.pack(
            _FMT[:-1], _MAGIC, 1, self.result | (0x80 if self.relay_open else 0),
            bcd.from_digits(self.terminal), self.version.encode(), bcd.from_digits(self.meter),
            bcd.from_digits(self.customer), self.serial, self.amount, self.count,
            self.before_balance, self.before_count, self.after_balance, self.after_count,
            1 if self.unwritten else 0,
            s[0][0], bcd.from_digits(s[0][1]), s[1][0], bcd.from_digits(s[1][1]),
            s[2][0], bcd.from_digits(s[2][1]))
        return body + struct.pack("<I", binascii.crc32(body) & 0xFFFFFFFF)

    @classmethod
    def unpack(cls, b):
        if len(b) != _SIZE or binascii.crc32(b[:-4]) & 0xFFFFFFFF != struct.unpack(
                "<I", b[-4:])[0]:
            return None
        f = struct.unpack(_FMT, b)
        if f[0] != _MAGIC or f[1] != 1:
            return None
        e = cls(bcd.to_digits(f[5]), bcd.to_digits(f[6]), f[7], f[8], f[9])
        e.result = f[2] & 0x7F
        e.relay_open = bool(f[2] & 0x80)
        e.unwritten = bool(f[14] & 1)
        e.terminal = bcd.to_digits(f[3])
        e.version = f[4].rstrip(b"\x00").decode()
        e.before_balance, e.before_count, e.after_balance, e.after_count = f[10:14]
        e.steps = [(f[15], bcd.to_digits(f[16])), (f[17], bcd.to_digits(f[18])),
                   (f[19], bcd.to_digits(f[20]))]
        return e

    def __repr__(self):
        return "Entry(#%d meter %s count %d %s%s)" % (
            self.seq, self.meter, self.count, RESULT_NAMES[self.result],
            ", written back" if self.written_back else "")


class Journal:
    def __init__(self, root, terminal="000000000000", clock=None, slots=SLOTS, track=False):
        self.dir = root + "/jrn"
        self.terminal = terminal
        self.clock = clock
        self.slots = slots
        self.next_seq = 1  # one counter for the journal and events.Events
        # Reporting (track, reporter.py): acked is the highest sequence number
        # the broker acknowledged, None when the terminal does not report (any
        # settled slot may then be reused); seqs[3 * slot + step] is each
        # step's number, so a slot whose steps wait is never reused.
        self.acked = None
        self.seqs = array("I", [0] * (3 * slots)) if track else None
        self.written = None  # called after each step is on flash (wakes the reporter)
        self.keep = None  # called with (entry, step) before an unreported step is rewritten
        self._next_slot = 0
        self._open = {}  # slot -> Entry: unsettled or awaiting write-back
        self._last = {}  # meter -> last count credited here
        try:
            os.mkdir(self.dir)
        except OSError:
            pass
        self._scan()

    def _path(self, slot):
        return "%s/%04d" % (self.dir, slot)

    def _read(self, slot):
        try:
            with open(self._path(slot), "rb") as f:
                return Entry.unpack(f.read(_SIZE + 1))
        except OSError:
            return None

    def _scan(self):
        """At boot: the newest sequence number, the slot after it, and every
        entry still open. A torn or foreign slot reads as empty."""
        newest = -1
        for slot in range(self.slots):
            e = self._read(slot)
            if e is None:
                continue
            e.slot = slot
            self._track(e)
            top = max(s[0] for s in e.steps)
            if top >= self.next_seq:
                self.next_seq = top + 1
            if e.seq > newest:
                newest, self._next_slot = e.seq, (slot + 1) % self.slots
            if not e.settled or (not e.written_back and e.result in (CREDITED, ALREADY)):
                self._open[slot] = e
            if e.result == CREDITED and e.count > self._last.get(e.meter, -1):
                self._last[e.meter] = e.count

    def _now(self):
        t = self.clock() if self.clock else (2000, 1, 1, 0, 0, 0)
        return "%02d%02d%02d%02d%02d%02d" % (t[0] % 100, t[1], t[2], t[3], t[4], t[5])

    def _write(self, e, step):
        e.steps[step] = (self.next_seq, self._now())
        with open(self._path(e.slot), "wb") as f:
            f.write(e.pack())
        self.next_seq += 1  # only once it is on flash
        self._track(e)
        if self.written is not None:
            self.written()

    def _track(self, e):
        if self.seqs is not None:
            for i in range(3):
                self.seqs[3 * e.slot + i] = e.steps[i][0]

    def reusable(self, slot):
        """Every step in the slot reported (or no reporting), and not the
        terminal's newest record, which keeps the counter across a cut."""
        if self.seqs is None:
            return True
        top = max(self.seqs[3 * slot], self.seqs[3 * slot + 1], self.seqs[3 * slot + 2])
        return top != self.next_seq - 1 and (self.acked is None or top <= self.acked)

    def _free_slot(self):
        for i in range(self.slots):
            slot = (self._next_slot + i) % self.slots
            if slot not in self._open and self.reusable(slot):
                return slot
        # Every slot open: one that only awaits a card's write-back gives way
        # (its meter is settled); an unsettled one never does.
        e = self._oldest_awaiting(True)
        if e is None:
            raise JournalFull("every journal slot holds an unsettled or unreported top-up")
        self._open.pop(e.slot)
        return e.slot

    def _oldest_awaiting(self, reusable=False):
        old = None
        for e in self._open.values():
            if reusable and not self.reusable(e.slot):
                continue
            if e.settled and (old is None or e.seq < old.seq):
                old = e
        return old

    def begin(self, e, before):
        """Write the intent (before the top-up frame goes out). OSError
        (flash full, EIO): nothing may be sent."""
        e.terminal = self.terminal
        e.before_balance, e.before_count = before.balance, before.count
        e.slot = self._free_slot()
        self._write(e, 0)
        self._next_slot = (e.slot + 1) % self.slots
        self._open[e.slot] = e
        return e

    def settle(self, e, result, after=None, relay_open=False):
        """Write what the MAC-checked read-back showed (or UNCONFIRMED)."""
        if e.steps[1][0] and self.keep is not None:
            self.keep(e, 1)  # an unconfirmed result, settled now: its report stays
        e.result = result
        if after is not None:
            e.after_balance, e.after_count = after.balance, after.count
        e.relay_open = relay_open
        self._write(e, 1)
        if result == CREDITED and e.count > self._last.get(e.meter, -1):
            self._last[e.meter] = e.count
        if result == NOT_CREDITED:
            self._open.pop(e.slot, None)
        elif e.settled and sum(1 for o in self._open.values() if o.settled) > MAX_AWAITING:
            self.done(self._oldest_awaiting(), written=False)  # bounded, in heap and slots

    def done(self, e, written=True):
        """The entry is closed: the card's return file is written, or (not
        written) the card has moved on and will never need it."""
        e.unwritten = not written
        self._write(e, 2)
        self._open.pop(e.slot, None)

    def supersede(self, serial, count):
        """A card showing purchase `count`: its entries for older counts that
        still await a write-back never will (the office sold the card on)."""
        for e in [o for o in self._open.values() if o.settled and o.serial == serial
                  and o.count < count]:
            self.done(e, written=False)

    def unsettled(self, meter):
        for e in self._open.values():
            if e.meter == meter and not e.settled:
                return e
        return None

    def awaiting_write_back(self, serial, count):
        for e in self._open.values():
            if e.serial == serial and e.count == count and e.settled:
                return e
        return None

    def last_count(self, meter):
        return self._last.get(meter)

    def open_entries(self):
        return list(self._open.values())

    def newest(self, n):
        """The last n entries, newest first (the keypad's history, tools)."""
        out = []
        for slot in range(self.slots):
            e = self._read(slot)
            if e is not None:
                e.slot = slot
                out.append(e)
        out.sort(key=lambda e: -e.seq)
        return out[:n]
