"""The DL/T 645-2007 data items the terminal reads, and their decoding.

Money and energy stay integers in hundredths (fen, 0.01 kWh): a meter's
XXXXXX.XX BCD is exactly that, and floats are never right about money.
"""
from micropython import const
import bcd
import common
from dlt645 import FrameError

ENERGY_TOTAL = const(0x00000000)  # total active energy, XXXXXX.XX kWh
ENERGY_FORWARD = const(0x00010000)  # forward active energy, XXXXXX.XX kWh
ENERGY_FORWARD_BLOCK = const(0x0001FF00)  # forward active: total, T1..T4
BALANCE = const(0x00900200)  # remaining balance, XXXXXX.XX yuan
OVERDRAFT = const(0x00900201)  # overdraft, XXXXXX.XX yuan
PURCHASE_COUNT = const(0x03330201)  # purchase count after the last purchase
METER_NUMBER = const(0x04000402)
CUSTOMER_NUMBER = const(0x0400040E)
STATUS_WORD_3 = const(0x04000503)
DATE_WEEK = const(0x04000101)  # YYMMDDWW
TIME = const(0x04000102)  # hhmmss

RELAY_OPEN = const(1 << 4)  # status word 3
ACCOUNT_NOT_OPENED = const(1 << 14)

_BCD4 = (ENERGY_TOTAL, ENERGY_FORWARD, BALANCE, OVERDRAFT)
_NUMBERS = (METER_NUMBER, CUSTOMER_NUMBER)


class BadValue(FrameError):
    """A reply whose value has the wrong size or is not BCD."""


def _need(value, n, di):
    if len(value) != n:
        raise BadValue("item %08X: %d bytes, expected %d" % (di, len(value), n))


def decode(di, value):
    """Value bytes (after the DI) -> int (hundredths, counts, status bits)
    or, for meter and customer numbers, a 12-digit string."""
    try:
        if di in _BCD4:
            _need(value, 4, di)
            return bcd.to_int(value)
        if di == PURCHASE_COUNT:
            _need(value, 2, di)
            return bcd.to_int(value)
        if di in _NUMBERS:
            _need(value, 6, di)
            return bcd.to_digits(value)
        if di == STATUS_WORD_3:
            _need(value, 2, di)
            return value[0] | value[1] << 8
        if di == ENERGY_FORWARD_BLOCK:
            if not value or len(value) % 4:
                raise BadValue("energy block of %d bytes" % len(value))
            return [bcd.to_int(value[i:i + 4]) for i in range(0, len(value), 4)]
    except ValueError:
        raise BadValue("item %08X is not BCD" % di)
    raise BadValue("item %08X is not known" % di)


def hundredths(n):
    """12345 -> '123.45', -5 -> '-0.05'. The old name, kept while a caller
    outside this module's owner uses it (test_dlt645); new code calls
    common.money, the one place."""
    return common.money(n)
