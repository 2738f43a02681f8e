"""Everything journalled that is not a top-up: refusals, technicians'
actions, alarms, boots. Each is a report BODY (reports.py) written once
into a ring of small files, /evt/<slot> (crc32 4 | BODY), under the
terminal's next sequence number: the journal's counter (journal.next_seq),
one for both, never reused.

A slot whose record the broker has not acknowledged (journal.acked) is
never reused, nor the one holding the terminal's newest record (the
counter restarts from the newest on flash). When every slot waits, add()
raises EventsFull: the event is logged and not reported.

Size: SLOTS = 200 records (config "event_slots"), a week offline at 28
events a day (refusals, alarms, boots) beside the journal's 300 top-ups
(six days at 50 a day). Measured: 200 refusals of 210 bytes take 72 blocks
of 4 KB (littlefs keeps files this small inline, its metadata blocks half
full); with the journal's ~75 and the records' 54 (256 meters), 201 of the
unix board's 256. Each event costs 1-2 program operations.
"""
import binascii
import os
import struct
from array import array

from micropython import const

import reports
import version

SLOTS = const(200)
_MAX = const(600)  # a body is never longer; a larger file is not ours


class EventsFull(OSError):
    """Every slot holds a record the broker has not acknowledged."""


class Events:
    def __init__(self, root, journal, slots=SLOTS):
        self.dir = root + "/evt"
        self.journal = journal
        self.slots = slots
        self.seqs = array("I", [0] * slots)
        self._next_slot = 0
        try:
            os.mkdir(self.dir)
        except OSError:
            pass
        newest = 0
        for slot in range(slots):
            body = self.body(slot)
            if body is None:
                continue
            seq = _seq(body)
            self.seqs[slot] = seq
            if seq >= journal.next_seq:
                journal.next_seq = seq + 1
            if seq > newest:
                newest, self._next_slot = seq, (slot + 1) % slots

    def _path(self, slot):
        return "%s/%04d" % (self.dir, slot)

    def body(self, slot):
        """The BODY in a slot, None if empty or torn."""
        try:
            with open(self._path(slot), "rb") as f:
                b = f.read(_MAX + 5)
        except OSError:
            return None
        if len(b) < 6 or len(b) > _MAX + 4 or \
                struct.unpack("<I", b[:4])[0] != binascii.crc32(b[4:]) & 0xFFFFFFFF:
            return None
        return b[4:]

    def add(self, kind, fields):
        """Journal an event: fields is [(key, value), ...] after the common
        ones. -> its sequence number. EventsFull, OSError (flash)."""
        j = self.journal
        body = reports.encode(reports.head(j.terminal, j.next_seq, j._now(), kind,
                                           version.VERSION) + fields)
        seq = j.next_seq
        self._store(body, seq)
        j.next_seq += 1  # only once it is on flash
        if j.written is not None:
            j.written()
        return seq

    def keep(self, seq, body):
        """Store a body under a number it already has (a journal step about
        to be rewritten before it was reported)."""
        self._store(body, seq)

    def _store(self, body, seq):
        slot = self._free()
        with open(self._path(slot), "wb") as f:
            f.write(struct.pack("<I", binascii.crc32(body) & 0xFFFFFFFF))
            f.write(body)
        self.seqs[slot] = seq
        self._next_slot = (slot + 1) % self.slots

    def _free(self):
        j = self.journal
        for i in range(self.slots):
            slot = (self._next_slot + i) % self.slots
            s = self.seqs[slot]
            if s == 0 or (s != j.next_seq - 1 and (j.acked is None or s <= j.acked)):
                return slot
        raise EventsFull("every event slot holds an unreported record")


def _seq(body):
    # BODY starts {"t":"<12 digits>","seq":N,
    i = body.find(b'"seq":')
    k = body.find(b",", i)
    try:
        return int(body[i + 6:k])
    except ValueError:
        return 0
