"""The unix board's screen and keys, wired for terminal.py.

The emulated 128x64 panel sits at the top of the console (34 lines with its
frame); everything else the terminal prints scrolls below it (a scroll
region), so the panel is never overwritten. Until the top-up flow takes
over, the idle screen shows the clock (one partial push a minute) and 'l'
switches Chinese/English.
"""
import asyncio
import sys

# The display modules are imported only when a UI is made: the glyphs and the
# catalogue cost heap a terminal run without a screen should not pay.

_PANEL_LINES = 34
_BELOW = _PANEL_LINES + 2  # first line of the scrolling region


def is_tty(fd=1):
    try:
        import termios
        termios.tcgetattr(fd)  # an int fd: MicroPython's termios wants one
        return True
    except (ImportError, OSError):
        return False


class ConsoleUI:
    def __init__(self, draw=True, screenshot_dir=None, out=None, lang="zh"):
        import console_display
        import console_keys
        import keypad
        self.out = out if out is not None else sys.stdout
        self.drawing = draw
        self.display = console_display.ConsoleDisplay(
            out=self.out, screenshot_dir=screenshot_dir, draw=False)
        self.keys = keypad.KeyQueue()
        self.console_keys = console_keys.ConsoleKeys(self.keys)
        self.lang = lang
        self._tasks = []
        self._held = False  # a card's screen is up: the clock must not replace it

    def start(self):
        if self.drawing:
            w = self.out.write
            # Clear, keep lines 1..34 for the panel, scroll the rest.
            w("\x1b[2J\x1b[%d;r\x1b[%d;1H" % (_BELOW, _BELOW))
            self.console_keys.raw_mode()
            if hasattr(sys, "atexit"):
                sys.atexit(self.close)
            self._tasks.append(asyncio.create_task(self.console_keys.run()))
        self._tasks.append(asyncio.create_task(self._idle()))
        return self

    def show(self, name, **fields):
        """Draw a screen (in the current language) and push it."""
        import screens
        n = screens.show(self.display, name, self.lang, **fields)
        if self.drawing:
            w = self.out.write
            w("\x1b7")  # save the cursor: the panel is drawn at the top
            self.display.draw_console()
            w("\x1b8")
        return n

    def hold(self, name, **fields):
        """Show a screen that stays until release() (a card is in the slot)."""
        self._held = True
        return self.show(name, **fields)

    def release(self):
        """Back to the idle screen."""
        import time
        self._held = False
        self.show("idle", time=time.localtime())

    def table(self, text):
        """Text that replaces the previous block under the panel."""
        if self.drawing:
            self.out.write("\x1b[%d;1H\x1b[J" % _BELOW)
        print(text)

    async def _idle(self):
        import keypad
        import time
        while True:
            t = time.localtime()
            if not self._held:
                self.show("idle", time=t)
            try:
                key = await asyncio.wait_for(self.keys.get(), 60 - t[5])
            except asyncio.TimeoutError:
                continue  # a new minute
            if key == keypad.LANG:
                self.lang = "en" if self.lang == "zh" else "zh"

    def close(self):
        for t in self._tasks:
            t.cancel()
        self._tasks = []
        self.console_keys.restore()
        if self.drawing:
            self.out.write("\x1b[r\n")
            self.drawing = False  # closed: once is enough (atexit calls again)


def start(opts):
    """From terminal.py's options: a running ConsoleUI, or None.
    opts["display"]: "console", "none" or None (console on a tty unless --once)."""
    mode = opts.get("display")
    if mode is None:
        mode = "console" if is_tty() and not opts.get("once") else "none"
    if mode not in ("console", "none"):
        raise ValueError("--display is console or none")
    shots = opts.get("screenshot")
    if mode == "none" and not shots:
        return None
    if shots:
        import os
        try:
            os.mkdir(shots)
        except OSError:
            pass  # exists (or is unusable: the first screenshot says so)
    return ConsoleUI(draw=(mode == "console"), screenshot_dir=shots).start()
