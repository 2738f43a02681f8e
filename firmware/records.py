"""Meter records: what the terminal knows of each meter it manages.

One small file per meter, /rec/<shard>/<meter number>, and a customer
index, /cus/<shard>/<customer number> holding the meter number; the shard
is the number's last two digits. A lookup opens one file in a directory of
a few entries, so it costs the same with 8 meters or 256, and no table of
meters sits in the heap.

A record (JSON, stored through storage.write_atomic):
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
  version                     the firmware version that wrote it
The last purchase count credited here is not stored in the record: the
journal holds it (journal.last_count), so a top-up writes two small
files, not three.
"""
import json
import os

import storage
import version

ACTIVE = "active"
REPLACED = "replaced"
AWAITING_OPENING = "awaiting_opening"
STATES = (ACTIVE, REPLACED, AWAITING_OPENING)
SMART = "smart"
LOCAL_CPU = "local_cpu"
RETIRED = 4  # older serials of a customer kept to refuse them
_MAX = 1024  # bytes: a record is about 300


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

    def to_dict(self):
        return {"address": self.address, "meter": self.meter, "customer": self.customer,
                "state": self.state, "category": self.category, "type": self.type,
                "prepaid": self.prepaid, "archived": self.archived, "key": self.key,
                "serial": self.serial, "retired": self.retired, "version": version.VERSION}

    @classmethod
    def from_dict(cls, d):
        try:
            return cls(d["meter"], d["customer"], d.get("address"), d.get("state", ACTIVE),
                       d.get("category", SMART), d.get("type", LOCAL_CPU),
                       d.get("prepaid", True), d.get("archived", True),
                       d.get("key", "derived"), d.get("serial", ""), d.get("retired", ()))
        except (KeyError, TypeError, AttributeError):
            raise RecordError("record lacks meter or customer")

    def refusal(self):
        """The screen refusing any top-up to this meter, or None."""
        if self.category != SMART or self.type != LOCAL_CPU or not self.prepaid:
            return "meter_not_prepaid"
        if not self.archived:
            return "meter_in_workflow"
        if self.state == REPLACED:
            return "meter_replaced"
        return None


def _shard(number):
    return number[-2:]


class Records:
    def __init__(self, root):
        self.root = root
        for d in ("/rec", "/cus"):
            _mkdir(root + d)

    def _path(self, kind, number):
        d = "%s/%s/%s" % (self.root, kind, _shard(number))
        return d, d + "/" + number

    def __contains__(self, meter):
        return self.get(meter) is not None

    def get(self, meter):
        """The record for a meter number, or None."""
        if not _is12(meter):
            return None
        try:
            data = storage.read_checked(self._path("rec", meter)[1], _MAX)
        except storage.Missing:
            return None
        return Record.from_dict(json.loads(data))

    def by_customer(self, customer):
        if not _is12(customer):
            return None
        try:
            meter = storage.read_checked(self._path("cus", customer)[1], 32)
        except storage.Missing:
            return None
        return self.get(meter.decode())

    def put(self, rec):
        """Save a record (and its customer index entry)."""
        old = self.get(rec.meter)
        d, path = self._path("rec", rec.meter)
        _mkdir(d)
        storage.write_atomic(path, json.dumps(rec.to_dict()).encode())
        if old is None or old.customer != rec.customer:
            d, cpath = self._path("cus", rec.customer)
            _mkdir(d)
            storage.write_atomic(cpath, rec.meter.encode())
            if old is not None:
                _remove(self._path("cus", old.customer)[1])

    def seed(self, entries):
        """Records from a configuration list, on first boot: an existing
        record is never overwritten. -> how many were added."""
        added = 0
        for e in entries:
            if not isinstance(e, dict):
                raise RecordError("a meter entry is an object, got %r" % (e,))
            rec = Record(e.get("meter_number") or e.get("address"), e.get("customer"),
                         e.get("address"), e.get("state", ACTIVE))
            if self.get(rec.meter) is None:
                self.put(rec)
                added += 1
        return added

    def meters(self):
        """Every meter number, shard by shard (no list of all in the heap)."""
        base = self.root + "/rec"
        for shard in sorted(_names(base)):
            for name in sorted(_names(base + "/" + shard)):
                if _is12(name):
                    yield name


def _is12(v):
    return isinstance(v, str) and len(v) == 12 and v.isdigit()


def _names(path):
    try:
        return [e[0] for e in os.ilistdir(path)]
    except AttributeError:  # CPython
        return os.listdir(path)
    except OSError:
        return []


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass  # exists


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
