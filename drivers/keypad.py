"""Debounced matrix keypad, scanned in an asyncio task, feeding a key queue.

Rows are driven (low selects a row, high idles it), columns are read with
pull-ups (0 = a key closes the row to the column). Pins come from the
board's pin map as machine.Pin-like callables: row(0), col() -> 0/1.

A key changes state only after `debounce` scans in a row agree (10 ms scans,
3 scans: 30 ms). A held key gives one press and never repeats: a held OK must
not confirm twice. Without diodes, three keys forming an L make the fourth
corner read pressed ("ghost"); while the pressed set holds a rectangle, new
presses are ignored rather than guessed.
"""
from micropython import const
import asyncio

OK = "ok"
CANCEL = "cancel"
DELETE = "del"
LANG = "lang"

# The usual 4x4 membrane pad of a top-up terminal, row by row.
KEYMAP_4X4 = (
    "1", "2", "3", DELETE,
    "4", "5", "6", LANG,
    "7", "8", "9", CANCEL,
    "*", "0", "#", OK,
)

_PERIOD_MS = const(10)
_DEBOUNCE = const(3)


class KeyQueue:
    """The smallest asyncio queue: a ring buffer and an Event (MicroPython's
    asyncio has no Queue). When full, new keys are dropped and counted: the
    resident's first presses matter more than a fist on the pad."""

    def __init__(self, size=16):
        self._buf = [None] * size
        self._head = 0
        self._n = 0
        self._ev = asyncio.Event()
        self.dropped = 0

    def __len__(self):
        return self._n

    def put_nowait(self, key):
        if self._n == len(self._buf):
            self.dropped += 1
            return False
        self._buf[(self._head + self._n) % len(self._buf)] = key
        self._n += 1
        self._ev.set()
        return True

    def get_nowait(self):
        if not self._n:
            raise IndexError("no key")
        k = self._buf[self._head]
        self._buf[self._head] = None
        self._head = (self._head + 1) % len(self._buf)
        self._n -= 1
        return k

    async def get(self):
        while not self._n:
            self._ev.clear()
            await self._ev.wait()
        return self.get_nowait()

    def clear(self):
        while self._n:
            self.get_nowait()


class Keypad:
    def __init__(self, rows, cols, keymap=KEYMAP_4X4, queue=None,
                 period_ms=_PERIOD_MS, debounce=_DEBOUNCE):
        if len(keymap) != len(rows) * len(cols):
            raise ValueError("keymap needs %d keys" % (len(rows) * len(cols)))
        if debounce < 1 or period_ms < 1:
            raise ValueError("debounce and period_ms must be >= 1")
        self.rows = rows
        self.cols = cols
        self.keymap = keymap
        self.queue = queue if queue is not None else KeyQueue()
        self.period_ms = period_ms
        self.debounce = debounce
        self.pressed = 0  # debounced state, one bit per key
        self._count = bytearray(len(keymap))  # scans disagreeing with .pressed
        for r in rows:
            r(1)

    def scan(self):
        """One raw pass over the matrix: bitmask of keys reading closed."""
        bits = 0
        nc = len(self.cols)
        for i, r in enumerate(self.rows):
            r(0)
            for j, c in enumerate(self.cols):
                if not c():
                    bits |= 1 << (i * nc + j)
            r(1)
        return bits

    def update(self, raw):
        """Feed one raw scan; returns the keys newly pressed (debounced)."""
        new = []
        for k in range(len(self.keymap)):
            bit = 1 << k
            if (raw ^ self.pressed) & bit:
                self._count[k] += 1
                if self._count[k] >= self.debounce:
                    self._count[k] = 0
                    self.pressed ^= bit
                    if self.pressed & bit:
                        new.append(k)
            else:
                self._count[k] = 0
        if new and self._ghosting():
            return []
        return [self.keymap[k] for k in new]

    def _ghosting(self):
        # Two rows sharing two or more pressed columns: a corner may be a ghost.
        nc = len(self.cols)
        mask = (1 << nc) - 1
        rows = [(self.pressed >> (i * nc)) & mask for i in range(len(self.rows))]
        for i in range(len(rows)):
            for j in range(i + 1, len(rows)):
                if _bits(rows[i] & rows[j]) >= 2:
                    return True
        return False

    def poll(self):
        """Scan once and queue new presses; returns them."""
        keys = self.update(self.scan())
        for k in keys:
            self.queue.put_nowait(k)
        return keys

    async def run(self):
        while True:
            self.poll()
            await asyncio.sleep(self.period_ms / 1000)

    def start(self):
        return asyncio.create_task(self.run())


def _bits(v):
    n = 0
    while v:
        v &= v - 1
        n += 1
    return n
