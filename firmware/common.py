"""Small helpers every layer needs, written once (this module was briefly
numbers.py: that name shadows CPython's stdlib `numbers`, which hypothesis
and decimal import): constant-time compare,
byte inversion, 32-bit fields (low byte first, as DL/T 645 and the card
send them) and money for people.

MicroPython's int.to_bytes/from_bytes take no `signed=`: signed fields are
two's complement by hand here, and tested under `micropython`.
"""
from micropython import const

_U32 = const(0xFFFFFFFF)


def same(a, b):
    """MACs and keys compared without stopping at the first differing byte."""
    d = len(a) ^ len(b)
    for i in range(min(len(a), len(b))):
        d |= a[i] ^ b[i]
    return d == 0


def inverted(b):
    """~X: every bit of X inverted."""
    return bytes(x ^ 0xFF for x in b)


def u32(n, what="value"):
    """0..2**32-1 -> 4 bytes low first; ValueError otherwise."""
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= _U32:
        raise ValueError("%s must be an integer in 0..4294967295" % what)
    return n.to_bytes(4, "little")


def s32(n, what="value"):
    """-2**31..2**31-1 -> 4 bytes two's complement, low first."""
    if not isinstance(n, int) or isinstance(n, bool) or not -0x80000000 <= n <= 0x7FFFFFFF:
        raise ValueError("%s must be a signed 32-bit integer" % what)
    return (n & _U32).to_bytes(4, "little")


def get_u32(b, off=0):
    return int.from_bytes(b[off:off + 4], "little")


def get_s32(b, off=0):
    v = int.from_bytes(b[off:off + 4], "little")
    return v - 0x100000000 if v & 0x80000000 else v


def money(n):
    """Hundredths for people: 12345 -> '123.45', -5 -> '-0.05' (integers
    only: money is never a float)."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError("money is an int in fen, got %r" % (n,))
    sign = "-" if n < 0 else ""
    n = -n if n < 0 else n
    return "%s%d.%02d" % (sign, n // 100, n % 100)
