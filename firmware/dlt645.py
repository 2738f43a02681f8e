"""DL/T 645-2007 frames: an encoder, a streaming decoder that resynchronises
on garbage, and the typed errors an exchange with a meter can end in.

Frame: 0-4 FE, 68, address (6 bytes BCD, low byte first), 68, control,
length, data (+0x33 each), checksum (sum from the first 68 through the data,
mod 256), 16. The decoder trusts the length field, never a scan for 16.
"""
from micropython import const
from binascii import hexlify, unhexlify

CTRL_SECURITY = const(0x03)
CTRL_BROADCAST_TIME = const(0x08)
CTRL_READ = const(0x11)
CTRL_READ_FOLLOW = const(0x12)
CTRL_READ_ADDRESS = const(0x13)
CTRL_WRITE = const(0x14)

REPLY = const(0x80)  # D7: sent by the meter
ABNORMAL = const(0x40)  # D6: the meter refuses
FOLLOW = const(0x20)  # D5: more data follows
_FUNCTION = const(0x1F)

ADDR_BROADCAST = "999999999999"
ADDR_WILDCARD = "AAAAAAAAAAAA"
MAX_DATA = const(200)  # the longest data field a meter sends (645-2007)
_OVERHEAD = const(12)  # 68 A0..A5 68 C L .. CS 16
_PREAMBLE = b"\xfe\xfe\xfe\xfe"

ERR_NAMES = ("other error", "no such data", "password wrong or unauthorised",
             "baud rate cannot change", "too many year zones",
             "too many day periods", "too many tariffs", "reserved")
SERR_NAMES = ("other error or account not opened", "repeat top-up",
              "ESAM/MAC verification failed",
              "identity authentication failed or session expired",
              "customer number mismatch", "purchase count error",
              "over the hoarding limit")


class DLTError(Exception):
    """Anything that ended an exchange without a good reply."""


class FrameError(DLTError):
    """Bytes arrived but did not make a valid frame."""


class ChecksumError(FrameError):
    pass


class EndByteError(FrameError):
    pass


class LengthError(FrameError):
    pass


class TruncatedError(FrameError):
    pass


class NoReply(DLTError):
    pass


class WrongAddress(DLTError):
    pass


class WrongDI(DLTError):
    pass


class UnexpectedReply(DLTError):
    """A reply to another function than the one asked."""


class BadAddress(DLTError):
    """An address that is no single meter's: the broadcast (999999999999),
    a wildcard (AA bytes) or anything else that is not 12 decimal digits."""


def _bit_names(word, names):
    out = []
    for i in range(16):
        if word >> i & 1:
            out.append(names[i] if i < len(names) else "reserved bit %d" % i)
    return out


class MeterError(DLTError):
    """An abnormal reply: the meter understood and refused. .err is its ERR byte."""

    def __init__(self, err, names=ERR_NAMES, what="meter refused"):
        self.err = err
        self.reasons = _bit_names(err, names)
        super().__init__("%s: %s" % (what, ", ".join(self.reasons) or "no reason given"))


class SecurityError(MeterError):
    """An abnormal reply to control 03: .serr is the 2-byte SERR word."""

    def __init__(self, serr):
        self.serr = serr
        super().__init__(serr, SERR_NAMES, "security refused")


def address_bytes(address):
    """'000000000001' (or the AAAA... wildcard) -> 6 bytes, low byte first."""
    if len(address) != 12:
        raise ValueError("address needs 12 digits")
    return bytes(reversed(unhexlify(address)))


def address_str(b):
    return hexlify(bytes(reversed(b))).decode().upper()


def check_meter_address(address):
    """Raise BadAddress unless `address` can be one meter's: 12 decimal
    digits, not the broadcast address (the wildcard has A digits)."""
    if (len(address) != 12 or address == ADDR_BROADCAST
            or any(c not in "0123456789" for c in address)):
        raise BadAddress("%r is not a meter's address" % (address,))
    return address


def di_bytes(di):
    return di.to_bytes(4, "little")


class Frame:
    def __init__(self, address, control, data):
        self.address = address  # 12-character string, as printed on the meter
        self.control = control
        self.data = data  # unscrambled data field

    @property
    def function(self):
        return self.control & _FUNCTION

    @property
    def is_reply(self):
        return bool(self.control & REPLY)

    @property
    def di(self):
        return int.from_bytes(self.data[0:4], "little") if len(self.data) >= 4 else None

    def __repr__(self):
        return "Frame(%s, %02X, %s)" % (self.address, self.control, hexlify(self.data).decode())


def encode(address, control, data=b"", preamble=True):
    """One frame as bytes on the wire, with the four FE wake-up bytes."""
    n = len(data)
    if n > MAX_DATA:
        raise LengthError("data of %d bytes is over %d" % (n, MAX_DATA))
    buf = bytearray(_OVERHEAD + n)
    buf[0] = 0x68
    buf[1:7] = address_bytes(address)
    buf[7] = 0x68
    buf[8] = control
    buf[9] = n
    for i in range(n):
        buf[10 + i] = (data[i] + 0x33) & 0xFF
    buf[10 + n] = sum(buf[0:10 + n]) & 0xFF
    buf[11 + n] = 0x16
    return _PREAMBLE + buf if preamble else bytes(buf)


class Decoder:
    """Feed it bytes as they arrive; it returns frames. Garbage, wake-up
    bytes and false starts are skipped; the last reason a candidate frame
    was rejected stays in .error so a timeout can say what went wrong.
    With replies_only, frames sent by a master (our own echo) are dropped."""

    def __init__(self, replies_only=False):
        self._buf = b""
        self.replies_only = replies_only
        self.error = None
        self.skipped = 0  # bytes dropped while resynchronising

    @property
    def pending(self):
        """Bytes held that may still become a frame."""
        return len(self._buf)

    def feed(self, chunk=b""):
        """Add bytes; return the next complete frame, or None for now."""
        if chunk:
            self._buf += bytes(chunk)
        while True:
            frame = self._next()
            if frame is None or not self.replies_only or frame.is_reply:
                return frame

    def _drop(self, n, error=None):
        self._buf = self._buf[n:]
        self.skipped += n
        if error is not None:
            self.error = error

    def _next(self):
        while True:
            buf = self._buf
            i = buf.find(b"\x68")
            if i < 0:
                self._drop(len(buf))
                return None
            if i:
                self._drop(i)
                buf = self._buf
            if len(buf) < 10:
                return None
            if buf[7] != 0x68:
                self._drop(1)
                continue
            n = buf[9]
            if n > MAX_DATA:
                self._drop(1, LengthError("length %d is over %d" % (n, MAX_DATA)))
                continue
            if len(buf) < _OVERHEAD + n:
                return None
            if sum(buf[0:10 + n]) & 0xFF != buf[10 + n]:
                self._drop(1, ChecksumError("bad checksum"))
                continue
            if buf[11 + n] != 0x16:
                self._drop(1, EndByteError("bad end byte %02X" % buf[11 + n]))
                continue
            data = bytearray(n)
            for k in range(n):
                data[k] = (buf[10 + k] - 0x33) & 0xFF
            frame = Frame(address_str(buf[1:7]), buf[8], bytes(data))
            self._buf = buf[_OVERHEAD + n:]
            return frame

    def flush(self):
        """The line went quiet. A candidate still waiting for bytes was a
        false start (garbage that looked like a header, its 'length' taken
        from the real frame behind it): resynchronise on what follows it.
        Returns the next frame found, or None."""
        if self._buf:
            self._drop(1, TruncatedError("reply cut short after %d bytes" % len(self._buf)))
        while self._buf:
            frame = self.feed()
            if frame is not None:
                return frame
            if self._buf:
                self._drop(1)
        return None

    def failure(self):
        """The error that best explains why no frame came."""
        if self.error is not None:
            return self.error
        if self._buf:
            return TruncatedError("reply cut short after %d bytes" % len(self._buf))
        if self.skipped:
            return FrameError("only garbage received")
        return NoReply("no reply")


def decode(raw):
    """Decode one frame from a complete buffer, or raise why not."""
    d = Decoder()
    frame = d.feed(raw) or d.flush()
    if frame is None:
        raise d.failure()
    return frame


def check_reply(frame, address, function, di=None):
    """Raise unless frame is the good reply of `address` to `function`
    (and to data item `di`, when given)."""
    c = frame.control
    if not c & REPLY or c & _FUNCTION != function:
        raise UnexpectedReply("control %02X does not answer %02X" % (c, function))
    if address != ADDR_WILDCARD and frame.address != address:
        raise WrongAddress("reply from %s, asked %s" % (frame.address, address))
    if c & ABNORMAL:
        d = frame.data
        if function == CTRL_SECURITY:
            raise SecurityError(d[0] | d[1] << 8 if len(d) >= 2 else 1)
        raise MeterError(d[0] if d else 1)
    if di is not None and frame.data[0:4] != di_bytes(di):
        got = hexlify(bytes(reversed(frame.data[0:4]))).decode()
        raise WrongDI("reply to DI %s, asked %08X" % (got, di))
    return frame
