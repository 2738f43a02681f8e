"""ST7565R / UC1701-class 128x64 monochrome LCD over 4-wire SPI.

Why this controller: it is the panel most prepaid terminals carry (cheap,
readable in sunlight, 3.3 V), and its RAM is organised as 8 pages of 128
columns with one byte = 8 vertical pixels, LSB on top: exactly framebuf's
MONO_VLSB, so the 1 KB frame buffer goes to the panel unchanged.

Partial refresh: the panel cannot be read back over SPI, so the driver keeps a
shadow of what the panel holds and `show()` sends, per page, only the span of
columns that differ (page + column address = 3 command bytes, then the data).
A one-line change costs a few dozen bytes instead of 1 KB.

Pins and bus come from the board's pin map: `spi` has `write(buf)`; `dc`,
`cs` and `rst` are machine.Pin-like callables (`pin(0)` / `pin(1)`).
"""
from micropython import const
import framebuf
import time

WIDTH = const(128)
HEIGHT = const(64)
_PAGES = const(8)

_DISPLAY_OFF = const(0xAE)
_DISPLAY_ON = const(0xAF)
_START_LINE = const(0x40)
_PAGE = const(0xB0)
_COL_HI = const(0x10)
_COL_LO = const(0x00)
_ADC_NORMAL = const(0xA0)
_ADC_REVERSE = const(0xA1)
_INVERSE_OFF = const(0xA6)
_ALL_OFF = const(0xA4)
_BIAS_1_9 = const(0xA2)
_COM_NORMAL = const(0xC0)
_COM_REVERSE = const(0xC8)
_POWER = const(0x28)
_RES_RATIO = const(0x20)
_VOLUME = const(0x81)
_RESET = const(0xE2)


def _sleep_ms(ms):
    # CPython has no time.sleep_ms; the driver runs under both.
    s = getattr(time, "sleep_ms", None)
    if s:
        s(ms)
    else:
        time.sleep(ms / 1000)


class ST7565(framebuf.FrameBuffer):
    """Frame buffer + `show()` that pushes only what changed.

    col_offset: first visible RAM column (0, or 4 on modules mounted with
    the segment driver reversed: the controller has 132 columns).
    flip: rotate 180 degrees (ADC and COM reversed), for panels mounted
    upside down."""

    def __init__(self, spi, dc, cs, rst=None, contrast=0x1C, col_offset=0, flip=False):
        if not 0 <= contrast <= 63:
            raise ValueError("contrast 0..63")
        if not 0 <= col_offset <= 4:
            raise ValueError("col_offset 0..4")
        self.spi = spi
        self.dc = dc
        self.cs = cs
        self.rst = rst
        self.col_offset = col_offset
        self.flip = flip
        self.width = WIDTH
        self.height = HEIGHT
        self.buffer = bytearray(WIDTH * _PAGES)
        # What the panel holds; None until the first full push.
        self._shadow = None
        self.bytes_sent = 0
        super().__init__(self.buffer, WIDTH, HEIGHT, framebuf.MONO_VLSB)
        self._cmd1 = bytearray(1)
        self._cmd3 = bytearray(3)
        cs(1)
        self.init(contrast)

    def init(self, contrast=0x1C):
        if self.rst is not None:
            self.rst(0)
            _sleep_ms(1)
            self.rst(1)
            _sleep_ms(1)
        adc = _ADC_REVERSE if self.flip else _ADC_NORMAL
        com = _COM_NORMAL if self.flip else _COM_REVERSE
        for c in (_RESET, _BIAS_1_9, adc, com, _START_LINE, _POWER | 7,
                  _RES_RATIO | 5, _VOLUME, contrast, _ALL_OFF, _INVERSE_OFF, _DISPLAY_ON):
            self.command(c)
        # The panel's RAM is random after reset: the next show() sends all.
        self._shadow = None

    def command(self, c):
        self._cmd1[0] = c
        self._write(0, self._cmd1)

    def contrast(self, value):
        if not 0 <= value <= 63:
            raise ValueError("contrast 0..63")
        self.command(_VOLUME)
        self.command(value)

    def poweroff(self):
        self.command(_DISPLAY_OFF)

    def poweron(self):
        self.command(_DISPLAY_ON)

    def _write(self, dc, buf):
        self.dc(dc)
        self.cs(0)
        self.spi.write(buf)
        self.cs(1)
        self.bytes_sent += len(buf)

    def show(self, full=False):
        """Push the frame buffer; only changed column spans unless `full`.
        Returns the number of bytes sent on the bus."""
        before = self.bytes_sent
        buf = self.buffer
        if full or self._shadow is None:
            self._shadow = bytearray(len(buf))
            full = True
        sh = self._shadow
        mv = memoryview(buf)
        for page in range(_PAGES):
            base = page * WIDTH
            if full:
                first, last = 0, WIDTH - 1
            else:
                first = _first_diff(buf, sh, base, WIDTH)
                if first < 0:
                    continue
                last = _last_diff(buf, sh, base, WIDTH)
            col = first + self.col_offset
            c = self._cmd3
            c[0] = _PAGE | page
            c[1] = _COL_HI | (col >> 4)
            c[2] = _COL_LO | (col & 15)
            self._write(0, c)
            self._write(1, mv[base + first:base + last + 1])
            sh[base + first:base + last + 1] = mv[base + first:base + last + 1]
        return self.bytes_sent - before


def _first_diff(a, b, base, n):
    for i in range(n):
        if a[base + i] != b[base + i]:
            return i
    return -1


def _last_diff(a, b, base, n):
    for i in range(n - 1, -1, -1):
        if a[base + i] != b[base + i]:
            return i
    return -1
