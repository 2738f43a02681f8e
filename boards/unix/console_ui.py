"""The unix board's console: the emulated panel, a hint line, a table and a
log, laid out on the terminal, and keys from stdin. The application (idle
screen, languages, card flow) drives it; this module only draws.

  line 1        +-------------+  the panel: full size (130x34, half blocks)
    ...         |   panel     |  or compact (66x16, braille) when the
  line P        +-------------+  terminal is smaller than 130x43
  line P+1      hint             fixed (the keys), never scrolls
  line P+2...   table            replaced by table(), e.g. the meters polled
  below         log              log() lines scroll here (a scroll region);
  last line     (cursor)         the cursor rests on the empty last line

Anything else printed lands in the log region too. close() puts the
terminal back and leaves the cursor on the last line, below it all.
"""
import asyncio
import sys

# The display modules are imported only when a console is made: the glyphs
# and the catalogue cost heap a terminal run without a screen should not pay.

# Console cells each panel mode takes: (columns, lines), frame included.
SIZES = {"full": (130, 34), "compact": (66, 16)}
_RAM_COLS = 132  # the controller's RAM is 132 columns wide
_HALF = (" ", "\u2580", "\u2584", "\u2588")  # none, upper, lower, both
# Braille dots for a nibble of a page byte (4 pixels down one column):
# left column dots 1 2 3 7, right column dots 4 5 6 8.
_BR_L = b"\x00\x01\x02\x03\x04\x05\x06\x07\x40\x41\x42\x43\x44\x45\x46\x47"
_BR_R = b"\x00\x08\x10\x18\x20\x28\x30\x38\x80\x88\x90\x98\xa0\xa8\xb0\xb8"
_LOG_MIN = 3  # log lines kept free under the table (the last one is the cursor's)
_ROOM_FULL = 8  # lines a full-size panel leaves for the hint, table and log
_KEEP = 64  # log lines remembered, to redraw the log when the table grows


class PanelView:
    """The emulated panel's RAM (console_display.Panel) as console text:

      full     half blocks, 2 pixels a cell: 128x32 cells, 130x34 with a frame
      compact  braille, 2x4 pixels a cell: 64x16 cells, 66x16 with side bars

    draw() writes the lines that changed since the last drawing, each at its
    place from line `top`, and puts the cursor back where it was."""

    def __init__(self, panel, out, mode="full", top=1):
        self.panel = panel
        self.out = out
        self.mode = mode
        self.top = top
        self._drawn = None  # the lines last written (None: all to write)

    def lines(self, mode=None):
        if (mode or self.mode) == "compact":
            return self._braille()
        return self._half_blocks()

    def _half_blocks(self):
        p = self.panel
        ram, off = p.ram, p.col_offset
        out = ["\u250c" + "\u2500" * 128 + "\u2510"]
        for row in range(32):
            base = (row >> 2) * _RAM_COLS + off
            shift = (row & 3) * 2
            cells = []
            for x in range(128):
                cells.append(_HALF[(ram[base + x] >> shift) & 3] if p.on else " ")
            out.append("\u2502" + "".join(cells) + "\u2502")
        out.append("\u2514" + "\u2500" * 128 + "\u2518")
        return out

    def _braille(self):
        p = self.panel
        ram, off = p.ram, p.col_offset
        out = []
        for row in range(16):
            base = (row >> 1) * _RAM_COLS + off
            shift = (row & 1) * 4
            cells = []
            for x in range(0, 128, 2):
                dots = 0
                if p.on:
                    dots = (_BR_L[(ram[base + x] >> shift) & 15]
                            | _BR_R[(ram[base + x + 1] >> shift) & 15])
                cells.append(chr(0x2800 + dots))
            out.append("\u2502" + "".join(cells) + "\u2502")
        return out

    def redraw(self):
        """Forget what the console shows: the next draw() writes every line."""
        self._drawn = None

    def draw(self):
        # Line by line: one 13 KB string would not fit a small heap.
        lines = self.lines()
        old = self._drawn
        w = self.out.write
        wrote = False
        for i, line in enumerate(lines):
            if old is not None and old[i] == line:
                continue
            if not wrote:
                w("\x1b7")
                wrote = True
            w("\x1b[%d;1H" % (self.top + i))
            w(line)
        if wrote:
            w("\x1b8")
        self._drawn = lines


def is_tty(fd=1):
    try:
        import termios
        termios.tcgetattr(fd)  # an int fd: MicroPython's termios wants one
        return True
    except (ImportError, OSError):
        return False


def terminal_size():
    """(columns, lines) of the terminal on stdout, or None. `stty size`
    (the unix port has no ioctl: this runs a shell, so once at start, not
    on every draw); $COLUMNS and $LINES when that fails."""
    import binascii
    import os
    path = "/tmp/console-size-" + binascii.hexlify(os.urandom(6)).decode()
    try:
        if os.system("stty size <&1 >%s 2>/dev/null" % path) == 0:
            with open(path) as f:
                r, c = f.read().split()
            return int(c), int(r)
    except (OSError, ValueError):
        pass
    finally:
        try:
            os.remove(path)
        except OSError:
            pass
    c, r = os.getenv("COLUMNS"), os.getenv("LINES")
    if c and r and c.isdigit() and r.isdigit():
        return int(c), int(r)
    return None


def pick_mode(cols, rows):
    """The panel mode for a terminal of cols x rows, or None: too small."""
    fw, fh = SIZES["full"]
    cw, ch = SIZES["compact"]
    if cols >= fw and rows >= fh + _ROOM_FULL:
        return "full"
    if cols >= cw and rows >= ch + 1 + _LOG_MIN:
        return "compact"
    return None


def too_small(cols, rows):
    fw, fh = SIZES["full"]
    cw, ch = SIZES["compact"]
    return ("terminal: panel off: this terminal is %dx%d, the panel needs %dx%d "
            "(%dx%d full size); --screenshot DIR saves every screen as PNG"
            % (cols, rows, cw, ch + 1 + _LOG_MIN, fw, fh + _ROOM_FULL))


def fit(text, width):
    """text cut to `width` console columns (CJK counts two)."""
    n = 0
    for i, ch in enumerate(text):
        n += 2 if ord(ch) >= 0x1100 else 1
        if n > width:
            return text[:i]
    return text


class Console:
    """The panel (`display`), keys (`keys`), hint, table and log on the
    console. draw=False: nothing is laid out, stdin is left alone; table
    and log are printed as they come (screenshots still work).
    size=(columns, lines): for tests; by default the terminal's, at start()."""

    def __init__(self, draw=True, screenshot_dir=None, out=None, size=None, read_keys=None):
        import console_display
        import console_keys
        import keypad
        self.out = out if out is not None else sys.stdout
        self.drawing = draw
        # stdin is the console's only when it is drawn on (or asked: --keypad stdin)
        self._read_keys = draw if read_keys is None else read_keys
        self.size = size
        self.mode = None
        self.display = console_display.ConsoleDisplay(
            out=self.out, screenshot_dir=screenshot_dir, draw=False)
        self.view = PanelView(self.display.panel, self.out)
        self.keys = keypad.KeyQueue()
        self.console_keys = console_keys.ConsoleKeys(self.keys)
        self._hint = ""
        self._table = []
        self._table_rows = 0
        self._log = []
        self._tasks = []
        self._started = False
        self._closed = False

    # -- layout ------------------------------------------------------------

    def _rows(self):
        """(panel lines, first table line, first log line, last line)."""
        p = SIZES[self.mode][1]
        return p, p + 2, p + 2 + self._table_rows, self.size[1]

    def _table_max(self):
        _, top, _, last = self._rows()
        return last - top + 1 - _LOG_MIN

    def _layout(self):
        """Scroll region = the log; the log redrawn from what it remembers."""
        _, _, log_top, last = self._rows()
        w = self.out.write
        width = self.size[0] - 1
        w("\x1b[%d;%dr" % (log_top, last))
        shown = self._log[len(self._log) - (last - log_top):] if last > log_top else []
        row = last - len(shown)
        for i in range(log_top, last + 1):
            w("\x1b[%d;1H\x1b[K" % i)
            if i >= row and i < last:
                w(fit(shown[i - row], width))
        w("\x1b[%d;1H" % last)

    def start(self):
        """Lay out the console (when drawing); keys from stdin in raw mode when
        asked to draw (even if the terminal turns out too small for the panel)."""
        if self._started:
            return self
        self._started = True
        if self.drawing:
            if self.size is None:
                self.size = terminal_size() or (132, 48)
            self.mode = pick_mode(*self.size)
            if self.mode is None:
                self.out.write(too_small(*self.size) + "\n")
                self.drawing = False
        if self.drawing:
            self.out.write("\x1b[2J")
            self._layout()
            self.view.mode = self.mode
            self.view.redraw()
            self.display.view = self.view
            self.view.draw()  # what the panel holds now
            self._draw_hint()
        elif self._hint:
            self.out.write(self._hint + "\n")
        if self._read_keys:  # (also when the panel is off for a small terminal)
            self.console_keys.raw_mode()
            self._tasks.append(asyncio.create_task(self.console_keys.run()))
        if hasattr(sys, "atexit"):
            sys.atexit(self.close)
        return self

    # -- the three text areas ---------------------------------------------

    def _draw_hint(self):
        p = self._rows()[0]
        self.out.write("\x1b7\x1b[%d;1H\x1b[K%s\x1b8"
                       % (p + 1, fit(self._hint, self.size[0] - 1)))

    def hint(self, text):
        """The fixed line under the panel (e.g. which keys do what)."""
        text = text.replace("\n", " ")
        if text == self._hint:
            return
        self._hint = text
        if self.drawing and self._started:
            self._draw_hint()
        elif self._started:
            self.out.write(text + "\n")

    def table(self, text):
        """Replace the block under the hint (the log below is kept)."""
        lines = text.split("\n")
        if not (self.drawing and self._started):
            self.out.write(text + "\n")
            return
        if len(lines) > self._table_rows:
            grow = min(len(lines), self._table_max())
            if grow > self._table_rows:
                self._table_rows = grow
                self._layout()
        n = self._table_rows
        if n == 0:
            return  # no room under the panel at all
        if len(lines) > n:
            more = len(lines) - n + 1
            lines = lines[:n - 1] + ["... %d more line%s: a taller terminal shows them"
                                     % (more, "" if more == 1 else "s")]
        _, top, _, _ = self._rows()
        width = self.size[0] - 1
        w = self.out.write
        w("\x1b7")
        for i in range(n):
            w("\x1b[%d;1H\x1b[K" % (top + i))
            if i < len(lines):
                w(fit(lines[i], width))
        w("\x1b8")
        self._table = lines

    def log(self, line):
        """A line at the bottom of the log; older ones scroll up."""
        for part in line.split("\n"):
            self._log.append(part)
            if self.drawing and self._started:
                # The cursor rests at the start of the empty last line.
                self.out.write(fit(part, self.size[0] - 1) + "\n")
            else:
                self.out.write(part + "\n")
        if len(self._log) > _KEEP:
            self._log = self._log[len(self._log) - _KEEP:]

    # -- the end -----------------------------------------------------------

    def close(self):
        """Stop the key task, give the terminal back, cursor below it all.
        Safe to call twice (atexit calls it again)."""
        if self._closed:
            return
        self._closed = True
        for t in self._tasks:
            t.cancel()
        self._tasks = []
        self.console_keys.restore()
        if self.drawing and self._started:
            self.display.view = None
            self.out.write("\x1b[r\x1b[%d;1H\x1b[K" % self.size[1])
        self.drawing = False


def start(opts):
    """From terminal.py's options: a started Console, or None.
    opts["display"]: "console", "none" or None (console when stdout is a tty,
    except with --once); opts["screenshot"]: a folder for PNGs; opts["hint"]:
    the hint line's text."""
    mode = opts.get("display")
    if mode is None:
        if is_tty() or opts.get("once"):
            mode = "none" if opts.get("once") else "console"
        else:
            mode = "none"
            print("terminal: panel off: stdout is not a terminal (run it in one of at least "
                  "66x20, or --screenshot DIR saves every screen as PNG)")
    if mode not in ("console", "none"):
        raise ValueError("--display is console or none")
    shots = opts.get("screenshot")
    stdin_keys = opts.get("keypad") == "stdin"
    if mode == "none" and not shots and not stdin_keys:
        return None
    if shots:
        import os
        try:
            os.mkdir(shots)
        except OSError:
            pass  # exists (or is unusable: the first screenshot says so)
    c = Console(draw=(mode == "console"), screenshot_dir=shots,
                read_keys=True if stdin_keys else None)
    if opts.get("hint"):
        c.hint(opts["hint"])
    return c.start()
