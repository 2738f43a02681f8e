"""The unix board's display: the real ST7565 driver talking to an emulated
panel, drawn on the console in one of two modes:

  full     half blocks, 2 pixels a cell: 128x32 cells, 130x34 with its frame
  compact  braille, 2x4 pixels a cell: 64x16 cells, 66x16 with side bars
           (fits an 80x24 terminal)

The console shows what the emulated panel's RAM holds, decoded from the
SPI bytes the driver sent, so partial refresh is exercised end to end: a
column the driver forgot to push shows stale on screen.
"""
import sys

import st7565

_COLS = 132  # the controller's RAM is 132 columns wide
_HALF = (" ", "\u2580", "\u2584", "\u2588")  # none, upper, lower, both

# Console cells each mode takes: (columns, lines), frame included.
SIZES = {"full": (130, 34), "compact": (66, 16)}

# Braille dots for a nibble of a page byte (4 pixels down one column):
# left column dots 1 2 3 7, right column dots 4 5 6 8.
_BR_L = bytes((b & 1) | (b & 2) | (b & 4) | (b & 8) << 3 for b in range(16))
_BR_R = bytes((b & 7) << 3 | (b & 8) << 4 for b in range(16))


class _Pin:
    def __init__(self, value=1):
        self.v = value

    def __call__(self, v=None):
        if v is None:
            return self.v
        self.v = 1 if v else 0
        return None


class Panel:
    """What an ST7565R does with the bytes on its SPI bus: page/column
    addressing with column auto-increment, display on/off, contrast.
    Usable as the driver's spi (write), dc, cs and rst."""

    def __init__(self, col_offset=0):
        self.ram = bytearray(8 * _COLS)
        self.dc = _Pin(0)
        self.cs = _Pin(1)
        self.rst = _Pin(1)
        self.col_offset = col_offset
        self.page = 0
        self.col = 0
        self.on = False
        self.contrast = None
        self._want_volume = False
        self.data_bytes = 0
        self.command_bytes = 0

    def write(self, buf):
        if self.cs():
            return  # not selected: the panel ignores the bus
        if self.dc():
            for b in buf:
                if self.col < _COLS:
                    self.ram[self.page * _COLS + self.col] = b
                self.col += 1
            self.data_bytes += len(buf)
            return
        self.command_bytes += len(buf)
        for c in buf:
            self._command(c)

    def _command(self, c):
        if self._want_volume:
            self.contrast = c & 0x3F
            self._want_volume = False
        elif (c & 0xF0) == 0xB0:
            self.page = c & 0x0F
        elif (c & 0xF0) == 0x10:
            self.col = (self.col & 0x0F) | (c & 0x0F) << 4
        elif (c & 0xF0) == 0x00:
            self.col = (self.col & 0xF0) | (c & 0x0F)
        elif c == 0xAF:
            self.on = True
        elif c == 0xAE:
            self.on = False
        elif c == 0x81:
            self._want_volume = True
        # Bias, ADC, COM, power, start line: no effect on what is shown here.

    def pixel(self, x, y):
        """What the panel shows at (x, y), 0 or 1."""
        if not self.on:
            return 0
        b = self.ram[(y >> 3) * _COLS + x + self.col_offset]
        return (b >> (y & 7)) & 1


class ConsoleDisplay(st7565.ST7565):
    """An ST7565 whose bus ends in an emulated panel, drawn on `out` by show()
    when `draw` is set (from line `top`, in `mode`), the cursor put back where
    it was. Only the console lines that changed since the last drawing are
    written. screenshot_dir: if set, every push also writes screen-NNNN.png
    there."""

    def __init__(self, out=None, screenshot_dir=None, draw=True, mode="full", top=1):
        self.panel = Panel()
        self.out = out if out is not None else sys.stdout
        self.screenshot_dir = screenshot_dir
        self.draw = draw
        self.mode = mode
        self.top = top
        self.shots = 0
        self._drawn = None  # the console lines last written (None: redraw all)
        p = self.panel
        super().__init__(p, p.dc, p.cs, p.rst)

    def show(self, full=False):
        n = super().show(full)
        if self.draw:
            self.draw_console()
        if self.screenshot_dir:
            self.shots += 1
            self.screenshot("%s/screen-%04d.png" % (self.screenshot_dir, self.shots))
        return n

    def screenshot(self, path):
        import png
        return png.write(path, self.panel, st7565.WIDTH, st7565.HEIGHT)

    def console_lines(self, mode=None):
        """The panel as text lines in `mode` (default: the display's)."""
        if (mode or self.mode) == "compact":
            return self._braille()
        return self._half_blocks()

    def _half_blocks(self):
        p = self.panel
        ram, off = p.ram, p.col_offset
        w = st7565.WIDTH
        out = ["\u250c" + "\u2500" * w + "\u2510"]
        for row in range(st7565.HEIGHT // 2):
            base = (row >> 2) * _COLS + off
            shift = (row & 3) * 2
            cells = []
            for x in range(w):
                cells.append(_HALF[(ram[base + x] >> shift) & 3] if p.on else " ")
            out.append("\u2502" + "".join(cells) + "\u2502")
        out.append("\u2514" + "\u2500" * w + "\u2518")
        return out

    def _braille(self):
        p = self.panel
        ram, off = p.ram, p.col_offset
        out = []
        for row in range(st7565.HEIGHT // 4):
            base = (row >> 1) * _COLS + off
            shift = (row & 1) * 4
            cells = []
            for x in range(0, st7565.WIDTH, 2):
                if p.on:
                    dots = (_BR_L[(ram[base + x] >> shift) & 15]
                            | _BR_R[(ram[base + x + 1] >> shift) & 15])
                else:
                    dots = 0
                cells.append(chr(0x2800 + dots))
            out.append("\u2502" + "".join(cells) + "\u2502")
        return out

    def redraw(self):
        """Forget what the console shows: the next drawing writes every line."""
        self._drawn = None

    def draw_console(self):
        """Write the lines that changed, each at its place, one at a time
        (one 13 KB string would not fit a small heap); the cursor is saved
        and restored around it so text below the panel goes on where it was."""
        lines = self.console_lines()
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
