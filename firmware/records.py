"""Meter records: what the terminal knows of each meter it manages.

Two fixed-size hash tables in littlefs, so a lookup reads one entry (or a
few, probing) whatever the number of meters, and no table sits in the heap:

  /rec/NNN   CAPACITY record slots of 96 bytes, 5 a page; the slot of a
             meter number is found by open addressing from
             int(number) % CAPACITY
  /cus/NNN   CAPACITY entries of 10 bytes, 51 a page: customer number ->
             record slot (a hint: the record's own customer is checked)

Pages stay under 512 bytes, so littlefs keeps them inline in the directory's
metadata: changing a record is a commit or two (one big file would be
rewritten from the changed block to its end: 63 operations). littlefs
replaces what a write touches copy-on-write, so after a power cut a page
holds its old or its new bytes, and a CRC per record catches anything else
(a bad slot reads as empty).

A record:
  address, meter, customer    12 digits each (the bus address is usually
                              the meter number)
  category, type, prepaid,    the utility's record: only a smart meter of
  archived                    type local fee control (CPU card), prepaid,
                              archived (not inside a replacement workflow)
                              may be sold to at the terminal
  state                       active | replaced (awaiting re-registration)
                              | awaiting_opening (re-registered, its first
                              purchase is made at the meter)
  key                         derived (KDF of MK_M) | override (a sealed
                              key for another batch, in the key store)
  serial                      the customer's current card serial (hex), ""
                              until the first card is seen
  retired                     the serials it replaced (newest first, 4
                              kept): a reissued card that is not new
  version                     the firmware version that wrote the slot
The last purchase count credited here is not stored in the record: the
journal holds it (journal.last_count), so a top-up writes no record.
"""
import binascii
import os

from micropython import const

import bcd
import version

ACTIVE = "active"
REPLACED = "replaced"
AWAITING_OPENING = "awaiting_opening"
STATES = (ACTIVE, REPLACED, AWAITING_OPENING)
SMART = "smart"
LOCAL_CPU = "local_cpu"
RETIRED = const(4)  # older serials of a customer kept to refuse them
MAX_METERS = const(256)
CAPACITY = const(320)  # 256 meters at most: probes stay short
SLOT = const(96)  # bytes of a record
_CSLOT = const(10)  # bytes of a customer index entry
_REC_PAGE = const(5)  # entries a page: 480 bytes
_CUS_PAGE = const(51)  # 510 bytes
_STATE_CODES = (ACTIVE, REPLACED, AWAITING_OPENING)


class RecordError(ValueError):
    """A record that breaks the rules above (seed file, technician input)."""


def _digits12(v, what):
    if not isinstance(v, str) or len(v) != 12 or not v.isdigit():
        raise RecordError("%s must be 12 digits, got %r" % (what, v))
    return v


class Record:
    def __init__(self, meter, customer, address=None, state=ACTIVE, category=SMART,
                 type=LOCAL_CPU, prepaid=True, archived=True, key="derived", serial="",
                 retired=()):
        self.meter = _digits12(meter, "meter_number")
        self.customer = _digits12(customer, "customer")
        self.address = _digits12(address or meter, "address")
        if state not in STATES:
            raise RecordError("state must be one of %s, got %r" % (", ".join(STATES), state))
        self.state = state
        self.category = category
        self.type = type
        self.prepaid = prepaid is True
        self.archived = archived is True
        self.key = key
        self.serial = serial
        self.retired = list(retired)

    def refusal(self):
        """The screen refusing any top-up to this meter, or None."""
        if self.category != SMART or self.type != LOCAL_CPU or not self.prepaid:
            return "meter_not_prepaid"
        if not self.archived:
            return "meter_in_workflow"
        if self.state == REPLACED:
            return "meter_replaced"
        return None


def pack(rec):
    flags = ((1 if rec.prepaid else 0) | (2 if rec.archived else 0)
             | (4 if rec.category == SMART else 0) | (8 if rec.type == LOCAL_CPU else 0)
             | (16 if rec.key == "override" else 0))
    b = bytearray(SLOT)
    b[0] = 1
    b[1] = _STATE_CODES.index(rec.state)
    b[2] = flags
    b[3] = len(rec.retired)
    b[4:10] = bcd.from_digits(rec.meter)
    b[10:16] = bcd.from_digits(rec.customer)
    b[16:22] = bcd.from_digits(rec.address)
    if rec.serial:
        b[22:30] = bytes.fromhex(rec.serial)
    for i, r in enumerate(rec.retired):
        b[30 + 8 * i:38 + 8 * i] = bytes.fromhex(r)
    v = version.VERSION.encode()[:8]
    b[62:62 + len(v)] = v
    b[92:96] = (binascii.crc32(b[0:92]) & 0xFFFFFFFF).to_bytes(4, "little")
    return b


def unpack(b):
    """A slot's bytes -> Record, or None (empty, torn or foreign)."""
    if len(b) != SLOT or b[0] != 1:
        return None
    if binascii.crc32(b[0:92]) & 0xFFFFFFFF != int.from_bytes(b[92:96], "little"):
        return None
    try:
        f = b[2]
        serial = b[22:30]
        return Record(bcd.to_digits(b[4:10]), bcd.to_digits(b[10:16]),
                      bcd.to_digits(b[16:22]), _STATE_CODES[b[1]],
                      SMART if f & 4 else "other", LOCAL_CPU if f & 8 else "other",
                      bool(f & 1), bool(f & 2), "override" if f & 16 else "derived",
                      serial.hex() if any(serial) else "",
                      [b[30 + 8 * i:38 + 8 * i].hex() for i in range(min(b[3], RETIRED))])
    except (ValueError, IndexError, RecordError):
        return None


class _Table:
    """`capacity` fixed-size entries in page files of `per_page` entries
    under one directory: a page is under 512 bytes, so littlefs keeps it
    inline in its directory's metadata, and changing one entry rewrites one
    small page (a commit or two), not the rest of a big file (littlefs
    rewrites a file from the block written to its end)."""

    def __init__(self, path, size, per_page, capacity):
        self.path = path
        self.size = size
        self.per_page = per_page
        self.capacity = capacity
        _mkdir(path)
        for page in range((capacity + per_page - 1) // per_page):
            _create(self._page(page), size * per_page)

    def _page(self, page):
        return "%s/%03d" % (self.path, page)

    def get(self, i):
        with open(self._page(i // self.per_page), "rb") as f:
            f.seek((i % self.per_page) * self.size)
            return f.read(self.size)

    def put(self, i, data):
        with open(self._page(i // self.per_page), "r+b") as f:
            f.seek((i % self.per_page) * self.size)
            f.write(data)

    def entries(self):
        """(index, bytes) of every entry, a page at a time."""
        for page in range((self.capacity + self.per_page - 1) // self.per_page):
            with open(self._page(page), "rb") as f:
                b = f.read()
            for k in range(self.per_page):
                i = page * self.per_page + k
                if i < self.capacity:
                    yield i, b[k * self.size:(k + 1) * self.size]


class Records:
    def __init__(self, root, capacity=CAPACITY):
        """capacity: slots of a new table (a multiple of 5; about 1.25 x the
        meters). A table already on flash keeps the capacity it was made
        with: its hash depends on it."""
        pages = len(_names(root + "/rec"))
        self.capacity = cap = pages * _REC_PAGE if pages else capacity
        if cap % _REC_PAGE or not 0 < cap <= 1000:
            raise RecordError("record capacity %d: a multiple of 5, up to 1000" % cap)
        self.max_meters = min(MAX_METERS, cap * 4 // 5)
        self._rec = _Table(root + "/rec", SLOT, _REC_PAGE, cap)
        self._cus = _Table(root + "/cus", _CSLOT, _CUS_PAGE, cap)
        self._count = None  # records in the table, counted on first need

    def _find(self, meter):
        """-> (slot of the meter or None, first free slot seen or None)."""
        cap = self.capacity
        start = int(meter) % cap
        free = None
        for i in range(cap):
            slot = (start + i) % cap
            b = self._rec.get(slot)
            if b[0] != 1:
                if free is None:
                    free = slot
                if b[0] == 0:
                    return None, free  # never used: the probe ends here
                continue
            rec = unpack(b)
            if rec is not None and rec.meter == meter:
                return slot, free
        return None, free

    def _read(self, slot):
        return unpack(self._rec.get(slot))

    def __contains__(self, meter):
        return self.get(meter) is not None

    def get(self, meter):
        """The record for a meter number, or None."""
        if not _is12(meter):
            return None
        slot, _ = self._find(meter)
        return None if slot is None else self._read(slot)

    def by_customer(self, customer):
        if not _is12(customer):
            return None
        key = bcd.from_digits(customer)
        cap = self.capacity
        start = int(customer) % cap
        for i in range(cap):
            b = self._cus.get((start + i) % cap)
            if b[0] == 0:
                return None
            if b[1:7] == key:
                rec = self._read(int.from_bytes(b[7:9], "little"))
                return rec if rec is not None and rec.customer == customer else None
        return None

    def put(self, rec):
        """Save a record (and its customer index entry). RecordError when
        the table is full; OSError when the flash fails."""
        slot, free = self._find(rec.meter)
        if slot is None:
            if free is None or self.count() >= self.max_meters:
                raise RecordError("this terminal manages at most %d meters" % self.max_meters)
            slot = free
            self._count += 1
        self._rec.put(slot, pack(rec))
        self._index(rec.customer, slot)

    def remove(self, meter):
        """Drop a meter's record (re-registered under a new meter number):
        the slot becomes a tombstone, so probes for other meters go on past
        it. True if there was one."""
        slot, _ = self._find(meter)
        if slot is None:
            return False
        self._rec.put(slot, b"\x02" + bytes(SLOT - 1))
        if self._count is not None:
            self._count -= 1
        return True

    def _index(self, customer, slot):
        key = bcd.from_digits(customer)
        cap = self.capacity
        start = int(customer) % cap
        for i in range(cap):
            at = (start + i) % cap
            b = self._cus.get(at)
            if b[0] == 0 or b[1:7] == key:
                break
        if b[0] == 1 and b[1:7] == key and int.from_bytes(b[7:9], "little") == slot:
            return  # already there: no write
        self._cus.put(at, b"\x01" + key + slot.to_bytes(2, "little") + b"\x00")

    def count(self):
        if self._count is None:
            self._count = sum(1 for _ in self.meters())
        return self._count

    def seed(self, entries, moved=None):
        """Records from a configuration list, on first boot: an existing
        record is never overwritten, and a customer who has a record (its
        meter re-registered under a new number) gets no second one; `moved`
        (a dict) then gets the entry's address -> the record's.
        -> how many were added."""
        added = 0
        for e in entries:
            if not isinstance(e, dict):
                raise RecordError("a meter entry is an object, got %r" % (e,))
            rec = Record(e.get("meter_number") or e.get("address"), e.get("customer"),
                         e.get("address"), e.get("state", ACTIVE))
            if self.get(rec.meter) is None:
                now = self.by_customer(rec.customer)
                if now is None:
                    self.put(rec)
                    added += 1
                elif moved is not None:
                    moved[rec.address] = now.address
        return added

    def meters(self):
        """Every meter number, a page at a time (no list of all in the heap)."""
        for _, b in self._rec.entries():
            rec = unpack(b)
            if rec is not None:
                yield rec.meter


def _is12(v):
    return isinstance(v, str) and len(v) == 12 and v.isdigit()


def _create(path, size):
    """A table page of `size` zero bytes, made once; one of another size is
    refused, never wiped. A page is written whole under a temporary name and
    renamed: a power cut during the first boot leaves no page, or a whole
    one (littlefs commits a new file empty before its bytes: a page made in
    place could be left at 0 bytes for good)."""
    try:
        have = os.stat(path)[6]
    except OSError:
        have = None
    if have == size:
        return
    if have:  # 0 bytes: cut while an earlier firmware made it in place
        raise RecordError("%s is %d bytes, not %d: not this firmware's records table"
                          % (path, have, size))
    tmp = path + ".new"
    with open(tmp, "wb") as f:
        f.write(bytes(size))
    os.rename(tmp, path)


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass  # there already


def _names(path):
    try:
        return [e[0] for e in os.ilistdir(path)]
    except AttributeError:  # CPython
        return os.listdir(path)
    except OSError:
        return []
