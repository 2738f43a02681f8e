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


def _chunk(out, kind, data):
    out.append(struct.pack(">I", len(data)))
    out.append(kind)
    out.append(data)
    out.append(struct.pack(">I", binascii.crc32(data, binascii.crc32(kind)) & 0xFFFFFFFF))


def _adler32(data):
    a, b = 1, 0
    for i in range(0, len(data), 4096):
        # 4096 bytes keep both sums below 2**30 between reductions.
        for v in data[i:i + 4096]:
            a += v
            b += a
        a %= 65521
        b %= 65521
    return b << 16 | a


def _zlib_stored(raw):
    out = bytearray(b"\x78\x01")
    n = len(raw)
    pos = 0
    while True:
        size = min(65535, n - pos)
        final = 1 if pos + size >= n else 0
        out += struct.pack("<BHH", final, size, size ^ 0xFFFF)
        out += raw[pos:pos + size]
        pos += size
        if final:
            break
    out += struct.pack(">I", _adler32(raw))
    return bytes(out)


def encode(fb, width, height, scale=3, border=2):
    """PNG bytes of fb (anything with pixel(x, y) -> 0/1); border in panel
    pixels, drawn in the background colour."""
    if scale < 1 or border < 0:
        raise ValueError("scale >= 1, border >= 0")
    w = (width + 2 * border) * scale
    h = (height + 2 * border) * scale
    rowlen = (w + 7) // 8
    raw = bytearray((rowlen + 1) * h)
    for py in range(height):
        line = bytearray(rowlen)
        for px in range(width):
            if fb.pixel(px, py):
                x0 = (px + border) * scale
                for x in range(x0, x0 + scale):
                    line[x >> 3] |= 0x80 >> (x & 7)
        for k in range(scale):
            start = ((py + border) * scale + k) * (rowlen + 1)
            raw[start + 1:start + 1 + rowlen] = line  # filter byte 0 = none
    data = zlib.compress(bytes(raw), 9) if zlib else _zlib_stored(raw)
    out = [b"\x89PNG\r\n\x1a\n"]
    _chunk(out, b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 3, 0, 0, 0))
    _chunk(out, b"PLTE", PALETTE)
    _chunk(out, b"IDAT", data)
    _chunk(out, b"IEND", b"")
    return b"".join(out)


def write(path, fb, width, height, scale=3, border=2):
    data = encode(fb, width, height, scale, border)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)
