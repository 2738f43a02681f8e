"""One simulated DL/T 645-2007 prepaid meter: its state (the JSON the
control interface and --meters files use) and its answers to one request."""
# A meter's clock is local wall-clock time with no time zone, as DL/T 645
# carries it: the datetimes here are naive on purpose (hence the DTZ noqa).
import datetime as dt
import time

import meter_sim_codec as codec
import meter_sim_esam as esam

DEFAULT_MASTER_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
BROADCAST = "999999999999"
WILDCARD = "AAAAAAAAAAAA"

# ERR byte of abnormal replies
ERR_OTHER = 0x01
ERR_NO_DATA = 0x02
ERR_PASSWORD = 0x04

_DI_DATE = 0x04000101
_DI_TIME = 0x04000102


class StateError(ValueError):
    """A meter state field with a bad name, type or value."""


def _int(name, v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise StateError("%s must be an integer in %d..%d, not %r" % (name, lo, hi, v))
    return v


def _digits(name, v, n):
    if not isinstance(v, str) or len(v) != n or not v.isdigit():
        raise StateError("%s must be %d decimal digits, not %r" % (name, n, v))
    return v


def _hex(name, v, n):
    try:
        ok = isinstance(v, str) and len(v) == n and bytes.fromhex(v) is not None
    except ValueError:
        ok = False
    if not ok:
        raise StateError("%s must be %d hex characters" % (name, n))
    return v.lower()


def _bool(name, v):
    if not isinstance(v, bool):
        raise StateError("%s must be true or false, not %r" % (name, v))
    return v


def _clock(v):
    if not isinstance(v, (list, tuple)) or len(v) != 6 \
            or any(isinstance(x, bool) or not isinstance(x, int) for x in v):
        raise StateError("clock must be [YY, MM, DD, hh, mm, ss] integers")
    try:
        if not 0 <= v[0] <= 99:
            raise ValueError
        return dt.datetime(2000 + v[0], *v[1:])  # noqa: DTZ001 (meter wall clock)
    except ValueError:
        raise StateError("clock is not a valid date and time: %r" % (v,)) from None


def _address(v):
    _digits("address", v, 12)
    if v == BROADCAST:
        raise StateError("address 999999999999 is the broadcast address")
    return v


def _minutes(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise StateError("session_minutes must be a positive number, not %r" % (v,))
    return v


_CHECKS = {
    "address": _address,
    "meter_number": lambda v: _digits("meter_number", v, 12),
    "customer": lambda v: _digits("customer", v, 12),
    "balance": lambda v: _int("balance", v, -0x80000000, 0x7FFFFFFF),
    "count": lambda v: _int("count", v, 0, 0xFFFFFFFF),
    "energy": lambda v: _int("energy", v, 0, 99999999),
    "relay_open": lambda v: _bool("relay_open", v),
    "opened": lambda v: _bool("opened", v),
    "hoarding_limit": lambda v: _int("hoarding_limit", v, 0, 0x7FFFFFFF),
    "password": lambda v: _digits("password", v, 6),
    "reply_delay_ms": lambda v: None if v is None else _int("reply_delay_ms", v, 0, 60000),
    "max_data": lambda v: _int("max_data", v, 1, 250),
    "key": lambda v: None if v is None else _hex("key", v, 32),
    "esam_serial": lambda v: None if v is None else _hex("esam_serial", v, 16),
    "session_minutes": _minutes,
    "clock": _clock,
    "failures": lambda v: _int("failures", v, 0, 1000000),
}
FIELDS = tuple(_CHECKS)


def _bcd_amount(fen):
    return codec.to_bcd(min(max(fen, 0), 99999999), 4)


class Meter:
    def __init__(self, state, master_key=DEFAULT_MASTER_KEY):
        if not isinstance(state, dict) or "address" not in state:
            raise StateError("a meter needs at least an address")
        self.master_key = master_key
        a = _address(state["address"])
        self.address = a
        self.meter_number = a
        self.customer = "1" + a[1:]
        self.balance = 10000
        self.count = 1
        self.energy = 0
        self.relay_open = False
        self.opened = True
        self.hoarding_limit = 99999999
        self.password = "000000"
        self.reply_delay_ms = None
        self.max_data = 200
        self.session_minutes = 5
        self.failures = 0
        self._key = None
        self._serial = None
        self._set_clock(dt.datetime.now().replace(microsecond=0))  # noqa: DTZ005 (local time)
        self._fail_day = self.clock().date()
        self.esam = esam.Esam(self)
        self.pending = {}      # DI -> value being sent in follow-up parts
        self.update(state)

    # -- state ------------------------------------------------------------
    def update(self, fields):
        """Validate every field first, then apply: a bad set changes nothing."""
        if not isinstance(fields, dict):
            raise StateError("meter state must be an object")
        checked = {}
        for name, value in fields.items():
            if name not in _CHECKS:
                raise StateError("unknown meter field %r" % (name,))
            checked[name] = _CHECKS[name](value)
        if "address" in checked and checked["address"] != self.address:
            raise StateError("address cannot be set; use replace")
        for name, value in checked.items():
            if name == "clock":
                self._set_clock(value)
            elif name == "key":
                self._key = None if value is None else bytes.fromhex(value)
            elif name == "esam_serial":
                self._serial = None if value is None else bytes.fromhex(value)
            else:
                setattr(self, name, value)
        if "failures" in checked or "clock" in checked:
            self._fail_day = self.clock().date()    # the count is for this day
        if self._key is None:
            self._key = esam.kdf(self.master_key, esam.dispersion(self.meter_number_raw()))

    def state(self):
        c = self.clock()
        return {
            "address": self.address, "meter_number": self.meter_number,
            "customer": self.customer, "balance": self.balance, "count": self.count,
            "energy": self.energy, "relay_open": self.relay_open, "opened": self.opened,
            "hoarding_limit": self.hoarding_limit, "password": self.password,
            "reply_delay_ms": self.reply_delay_ms, "max_data": self.max_data,
            "key": self.key.hex(), "esam_serial": self.esam_serial_raw().hex(),
            "session_minutes": self.session_minutes,
            "clock": [c.year - 2000, c.month, c.day, c.hour, c.minute, c.second],
            "failures": self.failures,
        }

    @property
    def key(self):
        return self._key

    def replace(self, new_address, key=None):
        """The meter is swapped for a new one (new ESAM, preset credit)."""
        new_address = _address(new_address)
        key = None if key is None else bytes.fromhex(_hex("key", key, 32))
        self.address = self.meter_number = new_address
        self.count, self.balance, self.opened = 0, 5000, False
        self.customer, self.relay_open, self.failures = "000000000000", False, 0
        self._serial = None
        self._key = key or esam.kdf(self.master_key, esam.dispersion(self.meter_number_raw()))
        self.esam.end_session()
        self.pending = {}

    def meter_number_raw(self):
        return codec.digits_to_bcd(self.meter_number, 6)

    def customer_raw(self):
        return codec.digits_to_bcd(self.customer, 6)

    def esam_serial_raw(self):
        # default: "5e5a" then the address digits, unique per meter
        return self._serial or bytes.fromhex("5e5a" + self.address)

    # -- clock (runs from when it was last set) ----------------------------
    def _set_clock(self, when):
        self._clock_base = when
        self._clock_at = time.monotonic()

    def clock(self):
        now = self._clock_base + dt.timedelta(seconds=time.monotonic() - self._clock_at)
        return now.replace(microsecond=0)

    def roll_day(self):
        """Failure counting is per day of the meter's own clock."""
        today = self.clock().date()
        if today != self._fail_day:
            self._fail_day = today
            self.failures = 0

    def new_day(self):
        self.failures = 0
        self._fail_day = self.clock().date()

    def set_clock_parts(self, date=None, hms=None):
        c = self.clock()
        if date is not None:
            c = c.replace(year=2000 + date[0], month=date[1], day=date[2])
        if hms is not None:
            c = c.replace(hour=hms[0], minute=hms[1], second=hms[2])
        self._set_clock(c)

    # -- requests ---------------------------------------------------------
    def item(self, di):
        """Value bytes of a readable item, or None."""
        if di == 0x00000000:
            return codec.to_bcd(self.energy, 4)
        if di == 0x0001FF00:
            quarter, rest = divmod(self.energy, 4)
            parts = [self.energy, quarter + rest, quarter, quarter, quarter]
            return b"".join(codec.to_bcd(p, 4) for p in parts)
        if di == 0x00900200:
            return _bcd_amount(self.balance)
        if di == 0x00900201:
            return _bcd_amount(-self.balance)
        if di == 0x03330201:
            return codec.to_bcd(self.count % 10000, 2)
        if di == 0x04000402:
            return self.meter_number_raw()
        if di == 0x0400040E:
            return self.customer_raw()
        if di == 0x04000503:
            word = (0x10 if self.relay_open else 0) | (0 if self.opened else 0x4000)
            return word.to_bytes(2, "little")
        c = self.clock()
        if di == _DI_DATE:
            week = (c.weekday() + 1) % 7          # 0 = Sunday
            return codec.digits_to_bcd(
                "%02d%02d%02d%02d" % (c.year % 100, c.month, c.day, week), 4)
        if di == _DI_TIME:
            return codec.digits_to_bcd("%02d%02d%02d" % (c.hour, c.minute, c.second), 3)
        return None

    def handle(self, func, data):
        """-> (control, reply data) or None for no reply."""
        if func == 0x11:
            return self._read(data)
        if func == 0x12:
            return self._read_more(data)
        if func == 0x14:
            return self._write(data)
        if func == 0x03:
            if len(data) < 8:
                self.esam.end_session()          # any SERR reply ends a session
                return 0xC3, esam.SERR_OTHER.to_bytes(2, "little")
            try:
                return 0x83, data[:4] + self.esam.handle(data[:4], data[8:])
            except esam.SecurityError as e:
                return 0xC3, e.serr.to_bytes(2, "little")
        if func == 0x08:
            return None                          # time is only set by broadcast
        return 0xC0 | func, bytes([ERR_OTHER])   # a function this meter lacks

    def _read(self, data):
        if len(data) < 4:
            return 0xD1, bytes([ERR_OTHER])
        di = data[:4]
        value = self.item(int.from_bytes(di, "little"))
        if value is None:
            return 0xD1, bytes([ERR_NO_DATA])
        if len(value) <= self.max_data:
            return 0x91, di + value
        self.pending[di] = value
        return 0xB1, di + value[:self.max_data]

    def _read_more(self, data):
        if len(data) != 5:
            return 0xD2, bytes([ERR_OTHER])
        di, seq = data[:4], data[4]
        value = self.pending.get(di)
        part = value[seq * self.max_data:(seq + 1) * self.max_data] if value and seq else b""
        if not part:
            return 0xD2, bytes([ERR_NO_DATA])
        last = (seq + 1) * self.max_data >= len(value)
        return (0x92 if last else 0xB2), di + part + bytes([seq])

    def _write(self, data):
        if len(data) < 12:
            return 0xD4, bytes([ERR_OTHER])
        if data[4] != 0x02 or data[5:8] != codec.digits_to_bcd(self.password, 3):
            return 0xD4, bytes([ERR_PASSWORD])
        di, value = int.from_bytes(data[:4], "little"), data[12:]
        try:
            if di == _DI_DATE and len(value) == 4:
                ww, dd, mm, yy = (codec.from_bcd(value[i:i + 1]) for i in range(4))
                if ww > 6:
                    raise ValueError
                self.set_clock_parts(date=(yy, mm, dd))
            elif di == _DI_TIME and len(value) == 3:
                ss, mi, hh = (codec.from_bcd(value[i:i + 1]) for i in range(3))
                self.set_clock_parts(hms=(hh, mi, ss))
            elif di in (_DI_DATE, _DI_TIME):
                return 0xD4, bytes([ERR_OTHER])
            else:
                return 0xD4, bytes([ERR_NO_DATA])
        except ValueError:             # FrameError (not BCD) or a bad date
            return 0xD4, bytes([ERR_OTHER])
        return 0x94, b""

    def broadcast_time(self, data):
        """0x08 ssmmhhDDMMYY; False (and nothing changed) if malformed."""
        if len(data) != 6:
            return False
        try:
            ss, mi, hh, dd, mo, yy = (codec.from_bcd(data[i:i + 1]) for i in range(6))
            when = dt.datetime(2000 + yy, mo, dd, hh, mi, ss)  # noqa: DTZ001 (meter wall clock)
        except ValueError:
            return False
        self._set_clock(when)
        return True
