"""The unix board's keypad: keys typed on stdin feed the same KeyQueue as
drivers/keypad.py does on a board.

Digits are digits, Enter = OK, Esc or 'c' = cancel, Backspace = delete,
'l' = language. Arrow keys and other escape sequences are ignored (a lone Esc
is told apart by the 50 ms after it staying quiet).
"""
import asyncio
import sys

import keypad

_ESC = 0x1B
# Linux termios lflag bits (MicroPython's termios does not name them).
_ICANON = 0o2
_ECHO = 0o10
_LFLAG = 3

_MAP = {0x0D: keypad.OK, 0x0A: keypad.OK, 0x63: keypad.CANCEL, 0x43: keypad.CANCEL,
        0x7F: keypad.DELETE, 0x08: keypad.DELETE, 0x6C: keypad.LANG, 0x4C: keypad.LANG,
        0x2A: "*", 0x23: "#"}


class KeyDecoder:
    """Bytes typed -> key names; holds the state of an escape sequence."""

    def __init__(self):
        self._state = 0  # 0 normal, 1 after Esc, 2 inside Esc [ ... sequence

    def feed(self, data):
        keys = []
        for b in data:
            if self._state == 1:
                if b in (0x5B, 0x4F):  # '[' or 'O': a sequence, not a lone Esc
                    self._state = 2
                    continue
                keys.append(keypad.CANCEL)
                self._state = 0
            elif self._state == 2:
                if 0x40 <= b <= 0x7E:  # final byte of the sequence
                    self._state = 0
                continue
            if b == _ESC:
                self._state = 1
            elif 0x30 <= b <= 0x39:
                keys.append(chr(b))
            elif b in _MAP:
                keys.append(_MAP[b])
        return keys

    def flush(self):
        """Nothing followed an Esc: it was a lone Esc = cancel."""
        if self._state == 1:
            self._state = 0
            return [keypad.CANCEL]
        self._state = 0
        return []

    @property
    def pending(self):
        return self._state != 0


class ConsoleKeys:
    def __init__(self, queue, stream=None):
        self.queue = queue
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.decoder = KeyDecoder()
        self._saved = None

    def raw_mode(self):
        """No echo, no line buffering; Ctrl-C still interrupts."""
        try:
            import termios
            fd = sys.stdin.fileno()  # termios wants an int fd
            self._saved = termios.tcgetattr(fd)
            attrs = termios.tcgetattr(fd)
            attrs[_LFLAG] &= ~(_ICANON | _ECHO)
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        except (ImportError, OSError, AttributeError):
            self._saved = None  # not a tty: read it as it comes

    def restore(self):
        if self._saved is not None:
            import termios
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSANOW, self._saved)
            self._saved = None

    def _put(self, keys):
        for k in keys:
            self.queue.put_nowait(k)

    async def run(self):
        reader = asyncio.StreamReader(self.stream)
        while True:
            if self.decoder.pending:
                try:
                    b = await asyncio.wait_for(reader.read(1), 0.05)
                except asyncio.TimeoutError:
                    self._put(self.decoder.flush())
                    continue
            else:
                b = await reader.read(1)  # one byte: read(n) waits for all n
            if not b:
                self._put(self.decoder.flush())
                return  # stdin closed
            self._put(self.decoder.feed(b))
