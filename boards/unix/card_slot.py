"""The unix board's card slot: a TCP listener standing in for the card
interface chip (security profile, last section).

A connection is a card being inserted (the detect switch closes and the card
sends its ATR at once); the connection closing is the card being pulled, at
whatever byte. Any card simulator following the profile plugs in here. One
card at a time: a second connection while a card is in is closed at once.

The app's side (firmware/app.py): `await slot.open()`, then for each card
`reader = await slot.wait_card()` ... `await slot.release(reader)`.
"""
import asyncio

from card_reader import CardReader


def parse_spec(spec):
    """'tcp:HOST:PORT' -> (host, port); ValueError otherwise."""
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] != "tcp" or not parts[2].isdigit():
        raise ValueError("--card-slot wants tcp:HOST:PORT, got %r" % spec)
    port = int(parts[2])
    if not 0 < port < 65536:
        raise ValueError("--card-slot port %d is not 1..65535" % port)
    return parts[1] or "0.0.0.0", port


class _Detect:
    """The detect switch: closed while the connection is up."""

    def __init__(self):
        self.closed = True

    def value(self):
        return 1 if self.closed else 0


class CardSlot:
    def __init__(self, spec, baud=9600, log=print):
        self.host, self.port = parse_spec(spec)
        self._baud = baud
        self._log = log
        self._server = None
        self._waiting = None  # (reader, writer, detect) of a card not yet served
        self._arrived = asyncio.Event()
        self._current = None
        self.busy = False

    async def open(self):
        """Listen; OSError (port in use, bad host) is the caller's to report."""
        self._server = await asyncio.start_server(self._conn, self.host, self.port)
        self._log("card slot: listening on %s:%d" % (self.host, self.port))
        return self

    def close(self):
        if self._server:
            self._server.close()

    async def _conn(self, r, w):
        if self.busy:
            w.close()  # one card at a time
            return
        self.busy = True
        self._waiting = (r, w, _Detect())
        self._arrived.set()

    async def wait_card(self):
        """The next card inserted: a CardReader ready for power_up()."""
        while self._waiting is None:
            self._arrived.clear()
            await self._arrived.wait()
        r, w, detect = self._waiting
        self._waiting = None
        self._current = (w, detect)
        return CardReader(r, w, detect=detect, baud=self._baud)

    async def release(self, reader):
        """The card is done with: power it down (close our end)."""
        w, detect = self._current
        self._current = None
        detect.closed = False
        # free before the first await: a card inserted once "removed" is
        # logged must find the slot empty
        self.busy = False
        try:
            w.close()
            await w.wait_closed()
        except (OSError, AttributeError):
            pass
