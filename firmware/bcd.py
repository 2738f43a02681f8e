"""BCD numbers as DL/T 645 and the user card carry them: low byte first.

A meter address or customer number is 12 decimal digits in 6 bytes;
"000000000001" goes on the wire as 01 00 00 00 00 00.
"""


def from_digits(digits, nbytes=6):
    """'000000000001' -> b'\\x01\\x00\\x00\\x00\\x00\\x00' (low byte first)."""
    if len(digits) != 2 * nbytes:
        raise ValueError("need %d digits" % (2 * nbytes))
    out = bytearray(nbytes)
    for i in range(nbytes):
        hi = ord(digits[2 * i]) - 48
        lo = ord(digits[2 * i + 1]) - 48
        if not (0 <= hi <= 9 and 0 <= lo <= 9):
            raise ValueError("not a decimal number")
        out[nbytes - 1 - i] = hi << 4 | lo
    return bytes(out)


def to_digits(b):
    """Low-byte-first BCD bytes -> digit string; ValueError on a non-BCD nibble."""
    s = ""
    for i in range(len(b) - 1, -1, -1):
        v = b[i]
        if v >> 4 > 9 or v & 15 > 9:
            raise ValueError("not BCD")
        s += "%d%d" % (v >> 4, v & 15)
    return s


def to_int(b):
    """Low-byte-first BCD bytes -> int."""
    return int(to_digits(b))


def from_int(n, nbytes):
    """int -> low-byte-first BCD of nbytes; ValueError if it does not fit."""
    if n < 0 or n >= 10 ** (2 * nbytes):
        raise ValueError("out of range")
    return from_digits("%0*d" % (2 * nbytes, n), nbytes)
