"""RS-485 half-duplex bus driver: a UART and a direction (DE/RE) pin.

One exchange on the bus at a time. Transmit: drive DE, write, wait until
the last byte has left the shift register (txdone() plus one character
time, because ports report done when the FIFO empties), release DE, drop
the echo of our own bytes where the transceiver hears itself. Receive: feed
bytes to the caller's decoder until it returns a frame, with a reply
timeout for the first byte and an inter-byte timeout after that; when the
line goes quiet, the decoder's flush() resynchronises past a false start.

The same code runs on a board (machine.UART, machine.Pin) and on the unix
board (boards/unix/uart.py): only the UART object differs.
"""
import asyncio
import time
from micropython import const

_POLL_MS = const(2)  # how often to look at txdone() while sending
_GAP_CHARS = const(20)  # inter-byte timeout, in character times
_SLACK_CHARS = const(400)  # bound on one reply: longest frame, preamble, noise
_DISCARD_CHUNK = const(64)  # bytes dropped between two looks at the event loop


class Timeout(Exception):
    """Nothing (more) arrived in time."""


class BusClosed(Exception):
    """The stream under the UART ended (a converter dropped the link)."""


class RS485:
    def __init__(self, uart, de=None, baudrate=2400, bits=11, echo=False,
                 gap_chars=_GAP_CHARS):
        self._uart = uart
        self._de = de
        self._reader = asyncio.StreamReader(uart)
        self._echo = echo
        self.char_us = bits * 1000000 // baudrate
        self._char_ms = self.char_us // 1000 + 1
        self._gap_ms = max(10, gap_chars * self.char_us // 1000)
        self.lock = asyncio.Lock()
        self.tx_bytes = 0
        self.rx_bytes = 0
        if de is not None:
            de.value(0)

    async def send(self, frame):
        """Send with no reply expected (a broadcast)."""
        async with self.lock:
            await self._send(frame)

    async def transact(self, frame, decoder, timeout_ms):
        """Send frame, then feed what comes back to decoder.feed() until it
        returns something. Returns that, or None when the line went quiet
        first (the decoder knows why)."""
        async with self.lock:
            await self._send(frame)
            return await self._receive(decoder, timeout_ms)

    async def _discard_input(self):
        # Late replies to an earlier request must not answer this one. A
        # chunk at a time, letting the loop in between, and no more than
        # one reply's worth: a peer that never stops talking must neither
        # stall the loop nor keep us off the bus for good (its noise then
        # garbles this exchange, which ends in a typed error like any other).
        uart = self._uart
        left = _SLACK_CHARS
        while left > 0 and uart.any():
            got = uart.read(_DISCARD_CHUNK)
            if not got:
                break
            left -= len(got)
            await asyncio.sleep_ms(0)

    async def quiet(self, quiet_ms, limit_ms):
        """Before a retry: wait for the line to stay silent `quiet_ms`
        (at most `limit_ms` in all), dropping what comes. A reply that
        arrives after its timeout must not be taken for the retry's: for
        identity authentication that would pair our new R1 with the meter's
        old R2, a session key the meter does not hold."""
        async with self.lock:
            reader = self._reader
            deadline = time.ticks_add(time.ticks_ms(), limit_ms)
            while time.ticks_diff(deadline, time.ticks_ms()) > 0:
                try:
                    got = await asyncio.wait_for_ms(reader.read(64), quiet_ms)
                except asyncio.TimeoutError:
                    return True
                if got is not None and not got:
                    raise BusClosed
            return False

    async def _send(self, frame):
        await self._discard_input()
        if self._de is not None:
            self._de.value(1)
        try:
            self._uart.write(frame)
            await self._wait_sent(len(frame))
        finally:
            if self._de is not None:
                self._de.value(0)
        self.tx_bytes += len(frame)
        if self._echo:
            await self._drop_echo(len(frame))

    async def _wait_sent(self, n):
        txdone = getattr(self._uart, "txdone", None)
        if txdone is None:  # a port without txdone(): wait out the wire time
            await asyncio.sleep_ms(n * self.char_us // 1000 + 1)
        else:
            while not txdone():
                await asyncio.sleep_ms(_POLL_MS)
        await asyncio.sleep_ms(self._char_ms)

    async def _drop_echo(self, n):
        while n > 0:
            try:
                got = await asyncio.wait_for_ms(self._reader.read(n), self._gap_ms)
            except asyncio.TimeoutError:
                return
            if got is None:  # nothing after all: poll raced the read
                continue
            if not got:
                raise BusClosed
            n -= len(got)

    async def _receive(self, decoder, timeout_ms):
        reader = self._reader
        wait = timeout_ms
        # Bound one reply in time even if noise never stops.
        slack_ms = _SLACK_CHARS * self.char_us // 1000
        deadline = time.ticks_add(time.ticks_ms(), timeout_ms + slack_ms)
        while True:
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                return decoder.flush()
            try:
                chunk = await asyncio.wait_for_ms(reader.read(64), min(wait, left))
            except asyncio.TimeoutError:
                return decoder.flush()  # quiet line: a stalled candidate was noise
            if chunk is None:  # nothing after all: poll raced the read
                continue
            if not chunk:
                raise BusClosed
            self.rx_bytes += len(chunk)
            result = decoder.feed(chunk)
            if result is not None:
                return result
            wait = self._gap_ms
