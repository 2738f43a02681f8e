"""DL/T 645-2007 framing for the meter simulator (the meter's side).

Written independently of firmware/ on purpose: the simulator is the other
side the terminal's codec is checked against.

Frame: [FE..] 68 A0..A5 68 C L D0..D(L-1) CS 16, address BCD low byte first,
data bytes +0x33 on the wire, CS = sum(68 .. last data byte) mod 256.
"""

_HEAD = 0x68
_TAIL = 0x16
_WAKE = 0xFE
_MIN = 12          # 68 A*6 68 C L CS 16 with L = 0
GAP_S = 0.5        # a partial frame older than this is line noise


class FrameError(ValueError):
    """A byte string that is not a well-formed DL/T 645 frame."""


def to_bcd(value, nbytes):
    """Non-negative int -> nbytes of packed BCD, low byte first."""
    if not isinstance(value, int) or value < 0 or value >= 10 ** (2 * nbytes):
        raise ValueError("%r does not fit %d BCD bytes" % (value, nbytes))
    out = bytearray(nbytes)
    for i in range(nbytes):
        value, lo = divmod(value, 10)
        value, hi = divmod(value, 10)
        out[i] = (hi << 4) | lo
    return bytes(out)


def from_bcd(data):
    """Packed BCD, low byte first -> int; FrameError on a non-decimal nibble."""
    value = 0
    for b in reversed(bytes(data)):
        hi, lo = b >> 4, b & 0x0F
        if hi > 9 or lo > 9:
            raise FrameError("not BCD: %02x" % b)
        value = value * 100 + hi * 10 + lo
    return value


def addr_to_bytes(addr):
    """'000000000001' -> 01 00 00 00 00 00 (as sent). 'A' digits allowed."""
    if not isinstance(addr, str) or len(addr) != 12:
        raise ValueError("address must be 12 characters: %r" % (addr,))
    try:
        return bytes(reversed(bytes.fromhex(addr)))
    except ValueError:
        raise ValueError("address must be hex/BCD digits: %r" % (addr,)) from None


def addr_from_bytes(raw):
    return bytes(reversed(bytes(raw))).hex().upper()


def digits_to_bcd(digits, nbytes):
    """A decimal string of exactly 2*nbytes digits -> BCD low byte first."""
    if not isinstance(digits, str) or len(digits) != 2 * nbytes or not digits.isdigit():
        raise ValueError("need %d decimal digits: %r" % (2 * nbytes, digits))
    return bytes(reversed(bytes.fromhex(digits)))


def scramble(data):
    return bytes((b + 0x33) & 0xFF for b in data)


def unscramble(data):
    return bytes((b - 0x33) & 0xFF for b in data)


def encode(addr_raw, control, data=b""):
    """One frame, no wake-up bytes. addr_raw: 6 bytes as sent."""
    if len(addr_raw) != 6:
        raise ValueError("address must be 6 bytes")
    if len(data) > 255:
        raise ValueError("data too long: %d" % len(data))
    body = bytes([_HEAD]) + bytes(addr_raw) + bytes([_HEAD, control & 0xFF, len(data)])
    body += scramble(data)
    return body + bytes([sum(body) & 0xFF, _TAIL])


class Frame:
    """A received frame. data is unscrambled; raw is 68..16 as received."""

    __slots__ = ("addr", "control", "data", "raw", "t_first", "t_last", "wire")

    def __init__(self, raw, wire=None, t_first=0.0, t_last=0.0):
        self.raw = bytes(raw)
        self.wire = self.raw if wire is None else bytes(wire)  # incl. FE preamble
        self.addr = addr_from_bytes(self.raw[1:7])
        self.control = self.raw[8]
        self.data = unscramble(self.raw[10:-2])
        self.t_first = t_first
        self.t_last = t_last


def _check(raw):
    """FrameError unless raw (starting at 68) is one complete valid frame."""
    if len(raw) < _MIN:
        raise FrameError("frame too short: %d bytes" % len(raw))
    if raw[0] != _HEAD or raw[7] != _HEAD:
        raise FrameError("missing 68 start bytes")
    if len(raw) != _MIN + raw[9]:
        raise FrameError("length field %d disagrees with %d bytes" % (raw[9], len(raw)))
    if raw[-1] != _TAIL:
        raise FrameError("missing 16 end byte")
    if sum(raw[:-2]) & 0xFF != raw[-2]:
        raise FrameError("bad checksum")


def parse_one(raw):
    """Strict: bytes = optional FE wake-up bytes + exactly one frame."""
    raw = bytes(raw)
    i = 0
    while i < len(raw) and raw[i] == _WAKE:
        i += 1
    _check(raw[i:])
    return Frame(raw[i:], raw)


class Parser:
    """Stream parser: feed(chunk, t) returns the complete valid frames.

    Frames are delimited by their length field, never by scanning for 16.
    Bad frames are dropped by resynchronising one byte later. Each byte's
    arrival time is kept so a frame knows when its first byte came.
    """

    def __init__(self):
        self.buf = bytearray()
        self.times = []

    def reset(self):
        self.buf = bytearray()
        self.times = []

    def feed(self, chunk, t):
        if self.times and t - self.times[-1] > GAP_S:
            self.reset()          # a stale partial frame: the line went quiet
        self.buf += chunk
        self.times.extend([t] * len(chunk))
        frames = []
        buf = self.buf
        i = 0                     # everything before i is consumed
        keep = len(buf)           # where the unconsumed tail starts
        while True:
            j = buf.find(_HEAD, i)
            if j < 0:
                keep = len(buf)
                break
            if len(buf) - j < 10 or j + _MIN + buf[j + 9] > len(buf):
                if len(buf) - j >= 8 and buf[j + 7] != _HEAD:
                    i = j + 1
                    continue
                if self._valid_later(j + 1):
                    i = j + 1     # noise with a 68 in it: a real frame follows
                    continue
                keep = j          # a frame still arriving
                break
            if buf[j + 7] != _HEAD:
                i = j + 1
                continue
            end = j + _MIN + buf[j + 9]
            raw = bytes(buf[j:end])
            try:
                _check(raw)
            except FrameError:
                i = j + 1
                continue
            k = self._preamble_start(i, j)
            frames.append(Frame(raw, bytes(buf[k:end]), self.times[k], self.times[end - 1]))
            i = end
        keep = self._preamble_start(i, keep)   # a trailing FE run may be a preamble
        del self.buf[:keep]
        del self.times[:keep]
        return frames

    def _valid_later(self, k):
        buf = self.buf
        k = buf.find(_HEAD, k)
        while k >= 0:
            if len(buf) - k >= _MIN and len(buf) - k >= _MIN + buf[k + 9]:
                try:
                    _check(bytes(buf[k:k + _MIN + buf[k + 9]]))
                    return True
                except FrameError:
                    pass
            k = buf.find(_HEAD, k + 1)
        return False

    def _preamble_start(self, lo, j):
        while j > lo and self.buf[j - 1] == _WAKE:
            j -= 1
        return j
