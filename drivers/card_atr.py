"""ISO 7816-3 answer to reset: how long it is as its bytes arrive, and what
it says once complete (protocols, TA1, WI from TC2, historical bytes).

Pure byte logic, no I/O: card_reader.py reads the bytes and asks
atr_more() after each one, so a card cannot make the reader wait for bytes
the ATR never announced.
"""
from micropython import const

_MAX_ATR = const(33)


class BadAtr(Exception):
    """The answer to reset breaks ISO 7816-3."""


def _count(y):
    return (y & 1) + (y >> 1 & 1) + (y >> 2 & 1) + (y >> 3 & 1)


def atr_more(raw):
    """How many more bytes the ATR needs after the len(raw) >= 1 received
    (0: complete). Raises BadAtr on a wrong TS or an ATR over 33 bytes."""
    n = len(raw)
    if raw[0] not in (0x3B, 0x3F):
        raise BadAtr("TS %02x" % raw[0])
    if n < 2:
        return 2 - n
    i, y, tck = 2, raw[1] >> 4, False
    while True:
        i += _count(y)  # TA TB TC TD of this level, as Y announces them
        if i > _MAX_ATR:
            raise BadAtr("too long")
        if not y & 8:
            break
        if i > n:
            return i - n  # its TD is still to come
        td = raw[i - 1]
        if td & 15:
            tck = True
        y = td >> 4
    total = i + (raw[1] & 15) + tck
    if total > _MAX_ATR:
        raise BadAtr("too long")
    return total - n


class Atr:
    """Parsed answer to reset: raw bytes, protocols offered, historical bytes,
    TA1 (Fi/Di) and WI (TC2, default 10)."""

    def __init__(self, raw):
        self.raw = bytes(raw)
        self.protocols = []
        self.ta1 = None
        self.wi = 10
        self.historical = b""


def parse_atr(raw):
    """Check and parse a complete ATR. Raises BadAtr."""
    n = len(raw)
    if n < 2 or raw[0] not in (0x3B, 0x3F):
        raise BadAtr("TS %s" % ("missing" if not n else "%02x" % raw[0]))
    atr = Atr(raw)
    i, y, level, tck = 2, raw[1] >> 4, 1, False
    k = raw[1] & 15
    while True:
        for bit in range(4):
            if y & (1 << bit):
                if i >= n:
                    raise BadAtr("truncated interface bytes")
                if level == 1 and bit == 0:
                    atr.ta1 = raw[i]
                if level == 2 and bit == 2:
                    atr.wi = raw[i] or 10
                if bit == 3:
                    td = raw[i]
                i += 1
        if not y & 8:
            break
        atr.protocols.append(td & 15)
        if td & 15:
            tck = True
        y = td >> 4
        level += 1
    if not atr.protocols:
        atr.protocols.append(0)
    if i + k + tck != n:
        raise BadAtr("length %d, expected %d" % (n, i + k + tck))
    atr.historical = bytes(raw[i:i + k])
    if tck:
        x = 0
        for b in raw[1:]:
            x ^= b
        if x:
            raise BadAtr("TCK")
    return atr


