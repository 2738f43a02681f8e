"""The user card's files as the security profile lays them out.

Pure byte layouts, no I/O and no crypto: the terminal, the card simulator and
the sales-office tool all build and parse the same 16/12/8/24-byte records.
Numbers are little-endian; meter and customer numbers are 6 BCD bytes, low
byte first, kept here as 12-digit strings.
"""
from micropython import const

import bcd
import common
from common import get_s32, get_u32  # noqa: F401  (part of this module's API)

SFI_PARAM = const(1)
SFI_PURSE = const(2)
SFI_SERIAL = const(3)
SFI_RETURN = const(5)

PARAM_LEN = const(16)
PURSE_LEN = const(12)
SERIAL_LEN = const(8)
RETURN_LEN = const(24)

OPENING = const(1)
PURCHASE = const(2)
REISSUED = const(3)
TECHNICIAN = const(4)
TYPE_NAMES = {OPENING: "opening", PURCHASE: "purchase", REISSUED: "reissued",
              TECHNICIAN: "technician"}

# Return-file result byte: what the meter did with the card's purchase.
# RET_ prefix: meter_security.CREDITED is the meter's answer ("credited"),
# not this byte.
RET_CREDITED = const(0)
RET_ALREADY = const(1)
RET_COUNT_ERROR = const(2)
RET_REFUSED = const(3)
RESULT_NAMES = {RET_CREDITED: "credited", RET_ALREADY: "already credited",
                RET_COUNT_ERROR: "count error", RET_REFUSED: "refused"}


class CardDataError(ValueError):
    """A card file whose bytes break the profile (length, type, BCD)."""


def bcd_from_digits(digits):
    """'000000000001' -> 01 00 00 00 00 00 (low byte first)."""
    if not isinstance(digits, str):
        raise CardDataError("need a 12-digit number")
    try:
        return bcd.from_digits(digits)
    except ValueError:
        raise CardDataError("not a 12-digit number: %r" % digits)


def bcd_to_digits(b):
    try:
        return bcd.to_digits(b)
    except ValueError:
        raise CardDataError("not BCD")


def u32(n, what="value"):
    """common.u32, but a card field out of range is a CardDataError."""
    try:
        return common.u32(n, what)
    except ValueError as e:
        raise CardDataError(str(e))


def s32(n, what="value"):
    try:
        return common.s32(n, what)
    except ValueError as e:
        raise CardDataError(str(e))


def _need(b, n, what):
    if b is None or len(b) != n:
        raise CardDataError("%s file: %d bytes, want %d" % (what, 0 if b is None else len(b), n))


def pack_param(card_type, meter, customer):
    if card_type not in TYPE_NAMES:
        raise CardDataError("card type %r" % card_type)
    return bytes([card_type]) + bcd_from_digits(meter) + bcd_from_digits(customer) + bytes(3)


def parse_param(b):
    """-> (card type, meter digits, customer digits)."""
    _need(b, PARAM_LEN, "parameter")
    if b[0] not in TYPE_NAMES:
        raise CardDataError("unknown card type %02x" % b[0])
    return b[0], bcd_to_digits(b[1:7]), bcd_to_digits(b[7:13])


def sale_mac_input(param, amount, count):
    """What the sale MAC S covers: parameter[0:13] || amount || count."""
    return bytes(param[0:13]) + u32(amount, "amount") + u32(count, "count")


def pack_purse(amount, count, mac_s):
    if len(mac_s) != 4:
        raise CardDataError("sale MAC is 4 bytes")
    return u32(amount, "amount") + u32(count, "count") + bytes(mac_s)


def parse_purse(b):
    """-> (amount fen, purchase count, sale MAC S)."""
    _need(b, PURSE_LEN, "purse")
    return get_u32(b, 0), get_u32(b, 4), bytes(b[8:12])


def bcd_time(t):
    """(YY, MM, DD, hh, mm) -> 5 BCD bytes minute first, as DL/T 645 sends."""
    out = bytearray(5)
    for i, v in enumerate(reversed(t)):
        if not 0 <= v <= 99:
            raise CardDataError("time field %r" % v)
        out[i] = (v // 10) << 4 | v % 10
    return bytes(out)


def pack_return(balance, count, result, terminal, when):
    """balance signed fen, count, result byte, terminal id digits,
    when = (YY, MM, DD, hh, mm) -> the 24-byte return file."""
    if result not in RESULT_NAMES:
        raise CardDataError("result %r" % result)
    return (s32(balance, "balance") + u32(count, "count") + bytes([result])
            + bcd_from_digits(terminal) + bcd_time(when) + bytes(4))


def parse_return(b):
    """-> dict(balance, count, result, terminal, time=(YY,MM,DD,hh,mm)) or
    None for a never-written (all-zero) return file."""
    _need(b, RETURN_LEN, "return")
    if not any(b):
        return None
    t = bcd_to_digits(b[15:20])  # 'YYMMDDhhmm' once reversed to high first
    return {
        "balance": get_s32(b, 0),
        "count": get_u32(b, 4),
        "result": b[8],
        "terminal": bcd_to_digits(b[9:15]),
        "time": tuple(int(t[i:i + 2]) for i in range(0, 10, 2)),
    }
