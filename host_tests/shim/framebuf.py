"""CPython stand-in for the subset of MicroPython's `framebuf` the display
code uses (MONO_VLSB/MONO_HLSB/MONO_HMSB; fill, pixel, fill_rect, hline,
vline, rect, blit), with the same clipping rules as the C module, so a screen
rendered under CPython has the same pixels as on the board. `text()` is
missing on purpose: our glyphs come from firmware/glyphs.py."""

MONO_VLSB = MVLSB = 0
MONO_HLSB = 3
MONO_HMSB = 4


class FrameBuffer:
    def __init__(self, buf, width, height, format, stride=None):
        if stride is None:
            stride = width
        if format in (MONO_HLSB, MONO_HMSB):
            stride = (stride + 7) & ~7
            need = stride * height // 8
        elif format == MONO_VLSB:
            need = stride * ((height + 7) // 8)
        else:
            raise ValueError("invalid format")
        if len(buf) < need:
            raise ValueError("buffer too small")
        self._buf = buf
        self.width = width
        self.height = height
        self._fmt = format
        self._stride = stride

    def _get(self, x, y):
        b = self._buf
        if self._fmt == MONO_VLSB:
            return (b[(y >> 3) * self._stride + x] >> (y & 7)) & 1
        i = (x + y * self._stride) >> 3
        s = 7 - (x & 7) if self._fmt == MONO_HLSB else x & 7
        return (b[i] >> s) & 1

    def _set(self, x, y, c):
        b = self._buf
        if self._fmt == MONO_VLSB:
            i = (y >> 3) * self._stride + x
            m = 1 << (y & 7)
        else:
            i = (x + y * self._stride) >> 3
            m = 1 << (7 - (x & 7) if self._fmt == MONO_HLSB else x & 7)
        if c & 1:
            b[i] |= m
        else:
            b[i] &= ~m & 0xFF

    def pixel(self, x, y, c=-1):
        if 0 <= x < self.width and 0 <= y < self.height:
            if c == -1:
                return self._get(x, y)
            self._set(x, y, c)
        return None

    def fill(self, c):
        v = 0xFF if c & 1 else 0
        for i in range(len(self._buf)):
            self._buf[i] = v

    def fill_rect(self, x, y, w, h, c):
        if h < 1 or w < 1 or x + w <= 0 or y + h <= 0 or y >= self.height or x >= self.width:
            return
        xend = min(self.width, x + w)
        yend = min(self.height, y + h)
        x = max(x, 0)
        y = max(y, 0)
        for yy in range(y, yend):
            for xx in range(x, xend):
                self._set(xx, yy, c)

    def hline(self, x, y, w, c):
        self.fill_rect(x, y, w, 1, c)

    def vline(self, x, y, h, c):
        self.fill_rect(x, y, 1, h, c)

    def rect(self, x, y, w, h, c, f=False):
        if f:
            self.fill_rect(x, y, w, h, c)
            return
        self.fill_rect(x, y, w, 1, c)
        self.fill_rect(x, y + h - 1, w, 1, c)
        self.fill_rect(x, y, 1, h, c)
        self.fill_rect(x + w - 1, y, 1, h, c)

    def blit(self, src, x, y, key=-1, palette=None):
        if palette is not None:
            raise NotImplementedError("palette")
        if isinstance(src, tuple):  # (buffer, width, height, format[, stride])
            src = FrameBuffer(*src)
        if x >= self.width or y >= self.height or -x >= src.width or -y >= src.height:
            return
        y1 = max(0, -y)
        x1 = max(0, -x)
        xend = min(self.width, x + src.width)
        yend = min(self.height, y + src.height)
        for yy in range(max(0, y), yend):
            sx = x1
            for xx in range(max(0, x), xend):
                col = src._get(sx, y1)
                if col != key:
                    self._set(xx, yy, col)
                sx += 1
            y1 += 1
