"""The unix board's display: the real ST7565 driver talking to an emulated
panel, which console_ui.PanelView draws on the console (imported only when
drawing: this module stays small for the heap of a run without a screen).

The console shows what the emulated panel's RAM holds, decoded from the
SPI bytes the driver sent, so partial refresh is exercised end to end: a
column the driver forgot to push shows stale on screen.
"""
import sys

import st7565

_COLS = 132  # the controller's RAM is 132 columns wide
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
    """An ST7565 whose bus ends in an emulated panel. Every push is drawn on
    the console by `view` (a console_ui.PanelView, made here when `draw`)
    and, with screenshot_dir, saved as screen-NNNN.png there."""

    def __init__(self, out=None, screenshot_dir=None, draw=True):
        self.panel = Panel()
        self.out = out if out is not None else sys.stdout
        self.screenshot_dir = screenshot_dir
        self.shots = 0
        self.view = None
        if draw:
            import console_ui
            self.view = console_ui.PanelView(self.panel, self.out)
        p = self.panel
        super().__init__(p, p.dc, p.cs, p.rst)

    def show(self, full=False):
        n = super().show(full)
        if self.view is not None:
            self.view.draw()
        if self.screenshot_dir:
            self.shots += 1
            self.screenshot("%s/screen-%04d.png" % (self.screenshot_dir, self.shots))
        return n

    def screenshot(self, path):
        import png
        return png.write(path, self.panel, st7565.WIDTH, st7565.HEIGHT)
