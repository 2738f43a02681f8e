"""Write a 1-bit frame buffer as a PNG, under CPython or MicroPython.

The unix port has binascii.crc32 but no zlib compressor, so without zlib
the image data goes in stored (uncompressed) deflate blocks with the
Adler-32 computed here; CPython compresses with zlib. Both decode to the
same pixels. Two-colour palette, scaled up, with a border, so the 128x64
panel reads well in a README.
"""
import binascii
import struct

try:
    import zlib
except ImportError:
    zlib = None

# An LCD's grey-green background and its dark pixels.
PALETTE = b"\xc4\xd4\xb0\x1e\x2a\x24"


class _Chunk:
    """One PNG chunk written straight to the file, CRC kept on the way."""

    def __init__(self, f, kind, length):
        f.write(struct.pack(">I", length))
        f.write(kind)
        self.f = f
        self.crc = binascii.crc32(kind)

    def write(self, data):
        self.f.write(data)
        self.crc = binascii.crc32(data, self.crc)

    def close(self):
        self.f.write(struct.pack(">I", self.crc & 0xFFFFFFFF))


def _chunk(f, kind, data):
    c = _Chunk(f, kind, len(data))
    c.write(data)
    c.close()


def _rows(fb, width, height, scale, border):
    # Each image row: filter byte 0 (none), then 1-bit pixels, MSB first.
    w = (width + 2 * border) * scale
    rowlen = (w + 7) // 8
    blank = bytearray(rowlen + 1)
    for _ in range(border * scale):
        yield blank
    for py in range(height):
        line = bytearray(rowlen + 1)
        for px in range(width):
            if fb.pixel(px, py):
                x0 = (px + border) * scale
                for x in range(x0, x0 + scale):
                    line[1 + (x >> 3)] |= 0x80 >> (x & 7)
        for _ in range(scale):
            yield line
    for _ in range(border * scale):
        yield blank


def _idat_stored(f, rows, total):
    """zlib stream of stored deflate blocks, written as rows come: only one
    row is ever in memory (the unix port has no compressor)."""
    nblocks = max(1, (total + 65534) // 65535)
    c = _Chunk(f, b"IDAT", 2 + 5 * nblocks + total + 4)
    c.write(b"\x78\x01")
    a, b = 1, 0
    done = 0
    left = 0  # bytes still to go in the current block
    for row in rows:
        i = 0
        while i < len(row):
            if not left:
                left = min(65535, total - done)
                final = 1 if done + left >= total else 0
                c.write(struct.pack("<BHH", final, left, left ^ 0xFFFF))
            part = row[i:i + left] if i or len(row) > left else row
            c.write(part)
            for v in part:
                a += v
                b += a
            a %= 65521
            b %= 65521
            i += len(part)
            left -= len(part)
            done += len(part)
    c.write(struct.pack(">I", b << 16 | a))
    c.close()


def _write(f, fb, width, height, scale, border):
    if scale < 1 or border < 0:
        raise ValueError("scale >= 1, border >= 0")
    w = (width + 2 * border) * scale
    h = (height + 2 * border) * scale
    f.write(b"\x89PNG\r\n\x1a\n")
    _chunk(f, b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 3, 0, 0, 0))
    _chunk(f, b"PLTE", PALETTE)
    rows = _rows(fb, width, height, scale, border)
    if zlib:
        _chunk(f, b"IDAT", zlib.compress(b"".join(bytes(r) for r in rows), 9))
    else:
        _idat_stored(f, rows, ((w + 7) // 8 + 1) * h)
    _chunk(f, b"IEND", b"")


def encode(fb, width, height, scale=3, border=2):
    """PNG bytes of fb (anything with pixel(x, y) -> 0/1); border in panel
    pixels, drawn in the background colour."""
    import io
    f = io.BytesIO()
    _write(f, fb, width, height, scale, border)
    return f.getvalue()


def write(path, fb, width, height, scale=3, border=2):
    """Write the PNG to a file, streaming; returns its size in bytes."""
    with open(path, "wb") as f:
        _write(f, fb, width, height, scale, border)
        return f.tell()
