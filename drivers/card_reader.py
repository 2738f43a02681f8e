"""ISO 7816-3 T=0 card reader over an asyncio byte stream.

Board wiring: the UART runs half-duplex through a card interface chip, with
a card-detect switch and a reset line. The board hands us an asyncio stream
(StreamReader over the UART, or a TCP connection on the unix board), the
detect pin and the reset pin.

Every wait is bounded, and a card cannot stretch the bounds: one watchdog
task per operation (the ATR, one APDU with its whole 61xx/6Cxx chain) looks
every _SLICE_MS at the detect switch, the work waiting time since the last
character, the operation's deadline (`apdu_ms`, whatever WI and however many
NULL bytes the card sends) and the card session's budget (`session_ms` of
card time, counted from power_up() or start_session(): the time spent in
the card's operations, not the terminal's own waits between them, such as a
resident at the keypad or a meter on the bus), and cancels the stuck read
with the typed reason. No wait_for per byte: bytes are read with plain awaits.
A chain is bounded too (MAX_CHAIN commands, MAX_RESPONSE bytes), so a card
answering 61xx or 6Cxx forever ends in CardMisbehaves, not in a loop or a
MemoryError.
"""
import asyncio

from micropython import const

from card_atr import Atr, BadAtr, atr_more, parse_atr  # noqa: F401  (part of this API)

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython: host tests and tools
    from time import monotonic_ns

    def ticks_ms():
        return monotonic_ns() // 1000000

    def ticks_diff(a, b):
        return a - b

_SLICE_MS = const(20)  # watchdog period: how soon a pull or a deadline is seen
_INS_GET_RESPONSE = const(0xC0)
APDU_MS = const(5000)  # one APDU, its whole chain included (or the ATR)
SESSION_MS = const(30000)  # card time in one session, from power_up()
MAX_CHAIN = const(6)  # T=0 commands for one APDU: itself + resends + GET RESPONSEs
MAX_RESPONSE = const(256)  # a short APDU's response data (Ne <= 256)


class CardRemoved(Exception):
    """The card left the slot (detect switch open or stream ended)."""


class CardMute(Exception):
    """No byte within the work waiting time."""


class ApduTimeout(CardMute):
    """One APDU (or the ATR) took longer than the reader's apdu_ms, however
    the card kept the line alive (NULL bytes, a long WI)."""


class SessionTimeout(CardMute):
    """The card's operations in this session took more than session_ms."""


class ProtocolError(Exception):
    """A procedure byte T=0 does not allow."""


class CardMisbehaves(ProtocolError):
    """A 61xx/6Cxx chain longer than MAX_CHAIN commands, or a response over
    MAX_RESPONSE bytes: a hostile or broken card."""


_sleep_ms = getattr(asyncio, "sleep_ms", None) or (lambda ms: asyncio.sleep(ms / 1000))


async def _wait_ms(coro, ms):
    w = getattr(asyncio, "wait_for_ms", None)
    if w:
        return await w(coro, ms)
    return await asyncio.wait_for(coro, ms / 1000)


def _uncancel(task):
    # CPython >= 3.11 counts cancel requests; ours was turned into an error
    u = getattr(task, "uncancel", None)
    if u:
        u()


class CardReader:
    """T=0 over `reader`/`writer` (asyncio streams). `detect` is a pin (or
    anything with value()) reading `detect_level` while a card is in (0 on a
    switch to ground); `reset` a pin (value(v)) or None. `echo` drops our own
    transmitted bytes where the half-duplex line loops them back. `baud` sets
    the etu, hence the work waiting time.

    Deadlines: `apdu_ms` bounds each power_up() and each transmit();
    `session_ms` bounds their sum since power_up() or the last
    start_session(ms) (None: no session bound). Both are plain attributes
    the caller may change between operations."""

    def __init__(self, reader, writer, detect=None, reset=None, echo=False, baud=9600,
                 detect_level=1, apdu_ms=APDU_MS, session_ms=SESSION_MS):
        self._r = reader
        self._w = writer
        self._detect = detect
        self._level = detect_level
        self._reset = reset
        self._echo = echo
        self._baud = baud
        self.atr = None
        self.wwt_ms = 960 * 10 * 1000 // baud + 1
        self.apdu_ms = apdu_ms
        self.session_ms = session_ms
        self._spent = 0  # ms of card operations in this session, finished ones
        self._op_t0 = self._last = 0
        self._why = None  # the watchdog's reason for cancelling an operation
        self.apdus = 0  # command headers sent, for the figures
        self.bytes_on_wire = 0

    def present(self):
        return self._detect is None or self._detect.value() == self._level

    def start_session(self, ms=None):
        """A new card session: nothing spent yet; `ms` replaces session_ms."""
        if ms is not None:
            self.session_ms = ms
        self._spent = 0

    def _late(self, now, wwt=True):
        """The error that ends the running operation at `now`, or None."""
        if not self.present():
            return CardRemoved()
        op = ticks_diff(now, self._op_t0)
        if self.session_ms is not None and self._spent + op >= self.session_ms:
            return SessionTimeout("card session over %d ms" % self.session_ms)
        if op >= self.apdu_ms:
            return ApduTimeout("operation over %d ms" % self.apdu_ms)
        if wwt and ticks_diff(now, self._last) > self.wwt_ms:
            return CardMute("no byte in %d ms" % self.wwt_ms)
        return None

    async def _watch(self, task):
        # Late twice in a row: after a stalled event loop the byte may be
        # waiting in the buffer, so the reader gets one slice to take it.
        late = False
        try:
            while True:
                why = self._late(ticks_ms())
                if why is not None and late:
                    self._why = why
                    task.cancel()
                    return
                late = why is not None
                await _sleep_ms(_SLICE_MS)
        except asyncio.CancelledError:
            pass

    async def _guarded(self, coro):
        """Run one operation in this task with one watchdog task beside it."""
        self._op_t0 = self._last = ticks_ms()
        self._why = None
        why = self._late(self._op_t0)
        if why is not None:
            coro.close()
            raise why
        me = asyncio.current_task()
        dog = asyncio.create_task(self._watch(me))
        try:
            return await coro
        except asyncio.CancelledError:
            why, self._why = self._why, None
            if why is None:
                raise  # someone else's cancel: pass it on
            _uncancel(me)
            raise why
        finally:
            dog.cancel()
            self._spent += ticks_diff(ticks_ms(), self._op_t0)

    async def _byte(self):
        """One byte; the watchdog bounds the wait, and every byte is checked
        against the deadlines (a card flooding bytes never stalls a read)."""
        why = self._late(ticks_ms(), False)  # a late byte may be buffered: the dog judges
        if why is not None:
            raise why
        try:
            b = await self._r.read(1)
        except (OSError, EOFError):
            raise CardRemoved
        if not b:
            raise CardRemoved
        self._last = ticks_ms()
        self.bytes_on_wire += 1
        return b[0]

    async def _read(self, n):
        out = bytearray(n)
        for i in range(n):
            out[i] = await self._byte()
        return out

    async def _send(self, data):
        if not self.present():
            raise CardRemoved
        try:
            self._w.write(data)
            await self._w.drain()
        except (OSError, EOFError):
            raise CardRemoved
        self._last = ticks_ms()
        self.bytes_on_wire += len(data)
        if self._echo:
            for _ in range(len(data)):
                await self._byte()
            self.bytes_on_wire -= len(data)

    async def wait_removed(self, poll_ms=200):
        """Idle until the card leaves (detect opens or the stream ends). Not
        bounded by the session: the resident takes the card out."""
        while self.present():
            try:
                b = await _wait_ms(self._r.read(16), poll_ms)
            except asyncio.TimeoutError:
                continue
            except (OSError, EOFError):
                return
            if not b:
                return

    async def power_up(self):
        """Cold reset and ATR; starts a card session. Returns the parsed
        Atr; raises BadAtr, CardMute (ApduTimeout) or CardRemoved."""
        self.start_session()
        self.wwt_ms = 960 * 10 * 1000 // self._baud + 1
        return await self._guarded(self._power_up())

    async def _power_up(self):
        if self._reset is not None:
            self._reset.value(0)
            await asyncio.sleep(0.001)  # >= 400 clocks at any card clock
            self._reset.value(1)
        raw = bytearray()
        while not raw or atr_more(raw):  # only the bytes T0 and the TDi announce
            raw.append(await self._byte())
        self.atr = parse_atr(raw)
        if 0 not in self.atr.protocols:
            raise BadAtr("no T=0")
        self.wwt_ms = 960 * self.atr.wi * 1000 // self._baud + 1
        return self.atr

    async def transmit(self, apdu):
        """Send a short APDU (case 1-4, bytes) and return (data, sw) with
        61xx answered by GET RESPONSE and 6Cxx by a resend with that Le.
        Raises CardRemoved, CardMute (ApduTimeout, SessionTimeout) or
        ProtocolError (CardMisbehaves)."""
        n = len(apdu)
        if n < 4 or n == 5 + 256:
            raise ValueError("APDU length")
        hdr = bytearray(apdu[0:5]) if n >= 5 else bytearray(apdu) + b"\x00"
        data = apdu[5:] if n > 5 else b""
        if data and hdr[4] != len(data):
            if hdr[4] + 6 == n:  # case 4: drop Le, T=0 fetches with GET RESPONSE
                data = data[:-1]
            else:
                raise ValueError("Lc does not match")
        return await self._guarded(self._chain(hdr, data))

    async def _chain(self, hdr, data):
        out = bytearray()
        for _ in range(MAX_CHAIN):
            body, sw = await self._exchange(hdr, data)
            if len(out) + len(body) > MAX_RESPONSE:
                raise CardMisbehaves("response over %d bytes" % MAX_RESPONSE)
            out.extend(body)
            if sw >> 8 == 0x61:
                hdr = bytearray((hdr[0], _INS_GET_RESPONSE, 0, 0, sw & 0xFF))
                data = b""
            elif sw >> 8 == 0x6C and not data:
                hdr[4] = sw & 0xFF
            else:
                return bytes(out), sw
        raise CardMisbehaves("no answer after %d commands (61xx/6Cxx chain)" % MAX_CHAIN)

    async def _exchange(self, hdr, data):
        """One T=0 command: header, procedure bytes, data one way, SW1 SW2.
        NULL bytes are not counted: the operation's deadline bounds them."""
        self.apdus += 1
        await self._send(hdr)
        ins = hdr[1]
        want = 0 if data else (hdr[4] or 256)
        sent = 0
        body = bytearray()
        while True:
            pb = await self._byte()
            if pb == 0x60:
                continue
            if pb == ins or pb == ins ^ 0xFF:
                one = pb != ins
                if data:
                    if sent >= len(data):
                        raise ProtocolError("ack with no data left")
                    end = sent + 1 if one else len(data)
                    await self._send(data[sent:end])
                    sent = end
                else:
                    if len(body) >= want:
                        raise ProtocolError("ack with no data expected")
                    body.extend(await self._read(1 if one else want - len(body)))
                continue
            if pb & 0xF0 in (0x60, 0x90):
                sw2 = await self._byte()
                return body, pb << 8 | sw2
            raise ProtocolError("procedure byte %02x" % pb)
