"""Meter client: DL/T 645-2007 requests to meters on one RS-485 bus.

The bus is the driver (drivers/rs485.py): it owns the wire, one exchange at
a time. This module owns what is said: frames, follow-ups, retries, checks.
"""
from micropython import const
import bcd
import dlt645
import meter_items
from dlt645 import (CTRL_READ, CTRL_READ_FOLLOW, CTRL_READ_ADDRESS,
                    CTRL_WRITE, CTRL_BROADCAST_TIME, FOLLOW, di_bytes)

_REPLY_MS = const(500)  # the standard allows a meter 20..500 ms
_QUIET_MS = const(300)  # silence that ends a late reply before a retry
_MAX_FOLLOW = const(32)  # a read never needs more follow-up frames than this

# Errors worth another try: the line garbled or dropped the exchange.
# A meter's refusal (MeterError) is an answer, never retried.
_RETRYABLE = (dlt645.FrameError, dlt645.NoReply, dlt645.WrongAddress,
              dlt645.WrongDI, dlt645.UnexpectedReply)


class MeterClient:
    def __init__(self, bus, retries=2):
        self.bus = bus
        self.retries = retries

    async def exchange(self, address, function, data, timeout_ms=_REPLY_MS,
                       retries=None, di=None):
        """Send one request, return the meter's checked reply Frame."""
        frame = dlt645.encode(address, function, data)
        tries = 1 + (self.retries if retries is None else retries)
        for attempt in range(tries):
            decoder = dlt645.Decoder(replies_only=True)
            try:
                reply = await self.bus.transact(frame, decoder, timeout_ms)
                if reply is None:
                    raise decoder.failure()
                return dlt645.check_reply(reply, address, function, di)
            except _RETRYABLE:
                if attempt == tries - 1:
                    raise
                quiet = getattr(self.bus, "quiet", None)
                if quiet is not None:  # a late reply must not answer the retry
                    await quiet(min(timeout_ms, _QUIET_MS), 2 * timeout_ms)

    async def read(self, address, di):
        """Value bytes of data item `di`, follow-up frames joined."""
        reply = await self.exchange(address, CTRL_READ, di_bytes(di), di=di)
        value = reply.data[4:]
        seq = 0
        while reply.control & FOLLOW:
            seq += 1
            if seq > _MAX_FOLLOW:
                raise dlt645.FrameError("too many follow-up frames")
            reply = await self.exchange(address, CTRL_READ_FOLLOW,
                                        di_bytes(di) + bytes((seq,)), di=di)
            if len(reply.data) < 5 or reply.data[-1] != seq:
                raise dlt645.FrameError("follow-up frame out of sequence")
            value += reply.data[4:-1]
        return value

    async def read_item(self, address, di):
        """Read and decode a known item (see meter_items)."""
        return meter_items.decode(di, await self.read(address, di))

    async def write(self, address, di, value, password="000000", level=2,
                    operator=b"\x00\x00\x00\x00"):
        """Write data item `di` (password level and BCD password as the
        meter was configured)."""
        data = di_bytes(di) + bytes((level,)) + bcd.from_digits(password, 3) + operator + value
        await self.exchange(address, CTRL_WRITE, data)

    async def read_address(self):
        """The address of the only meter on the bus (point-to-point use).
        A reply naming the broadcast, a wildcard or a non-decimal address
        raises dlt645.BadAddress: requests sent there would reach every
        meter, or none, instead of this one."""
        reply = await self.exchange(dlt645.ADDR_WILDCARD, CTRL_READ_ADDRESS, b"")
        if len(reply.data) != 6 or dlt645.address_str(reply.data) != reply.address:
            raise dlt645.FrameError("address reply does not carry its address")
        return dlt645.check_meter_address(reply.address)

    async def broadcast_time(self, t):
        """Set every meter's clock; t = (year, month, day, hour, minute, second).
        Broadcasts get no reply."""
        y, mo, d, h, mi, s = t
        data = b"".join(bcd.from_int(v, 1) for v in (s, mi, h, d, mo, y % 100))
        await self.bus.send(dlt645.encode(dlt645.ADDR_BROADCAST, CTRL_BROADCAST_TIME, data))

    async def status(self, address):
        """What the terminal shows of a meter: balance (signed fen), purchase
        count, relay open, account opened."""
        balance = await self.read_item(address, meter_items.BALANCE)
        if not balance:
            balance = -await self.read_item(address, meter_items.OVERDRAFT)
        count = await self.read_item(address, meter_items.PURCHASE_COUNT)
        word = await self.read_item(address, meter_items.STATUS_WORD_3)
        return {
            "balance": balance,
            "count": count,
            "relay_open": bool(word & meter_items.RELAY_OPEN),
            "opened": not word & meter_items.ACCOUNT_NOT_OPENED,
        }
