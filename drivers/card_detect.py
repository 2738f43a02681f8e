"""A card slot with a detect switch: the app's view of a board's card
interface (firmware/app.py: open, wait_card, release).

The reader (drivers/card_reader.py) does the T=0 talking; this waits for
the switch to close, debounced, and hands the reader out once per
insertion. release() powers the card down (reset low) and waits for the
switch to open, so one insertion is served once however long it stays.
"""
import asyncio

from micropython import const

_POLL_MS = const(50)
_SETTLE = const(3)  # polls the switch must agree: 150 ms of a card fully in


class DetectSlot:
    def __init__(self, reader, reset=None):
        self.reader = reader
        self._reset = reset

    async def open(self):
        if self._reset is not None:
            self._reset.value(0)
        return self

    async def _settled(self, present):
        n = 0
        while n < _SETTLE:
            n = n + 1 if self.reader.present() == present else 0
            await asyncio.sleep_ms(_POLL_MS)

    async def wait_card(self):
        await self._settled(True)
        return self.reader

    async def release(self, reader):
        if self._reset is not None:
            self._reset.value(0)  # deactivate the card's contacts
        await self._settled(False)
