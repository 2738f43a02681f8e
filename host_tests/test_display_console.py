"""The unix board's console display, key decoder and PNG writer, plus the
same rendering under real MicroPython (limited heap, .mpy modules as a board
loads them) giving the same pixels as CPython."""
import binascii
import json
import os
import struct
import subprocess
import zlib

import pytest

from mp_runner import MPY_CROSS, ROOT, run_mp

import hostpath  # noqa: F401

import console_display  # noqa: E402
import console_keys  # noqa: E402
import keypad  # noqa: E402
import png  # noqa: E402
import render_screens  # noqa: E402
import screens  # noqa: E402

MP_CASES = (
    ("idle", "zh", {"time": (2026, 11, 24, 20, 5)}),
    ("card_info", "en", {"customer": "112233445566", "meter": "000000000001", "amount": 10000}),
    ("relay_tripped", "zh", {"amount": -99999999}),
    ("progress", "en", {"percent": 60}),
    ("tech_meter_number", "zh", {"digits": "0123"}),
)


# -- keys -----------------------------------------------------------------

@pytest.mark.parametrize("typed,keys", [
    (b"0123456789", list("0123456789")),
    (b"\r", [keypad.OK]), (b"\n", [keypad.OK]),
    (b"c", [keypad.CANCEL]), (b"C", [keypad.CANCEL]),
    (b"\x7f", [keypad.DELETE]), (b"\x08", [keypad.DELETE]),
    (b"l", [keypad.LANG]), (b"*#", ["*", "#"]),
    (b"\x1b[A\x1b[B\x1bOP", []),  # arrows, F1: ignored
    (b"\x1b[15~", []),  # F5: a longer sequence
    (b"\x1b1", [keypad.CANCEL, "1"]),  # Esc then a digit: two keys
    (b"xyz!", []),
])
def test_key_decoder(typed, keys):
    d = console_keys.KeyDecoder()
    assert d.feed(typed) + d.flush() == keys


def test_lone_escape_waits_for_flush():
    d = console_keys.KeyDecoder()
    assert d.feed(b"\x1b") == [] and d.pending
    assert d.flush() == [keypad.CANCEL] and not d.pending
    # Split across reads, a sequence is still a sequence.
    assert d.feed(b"\x1b") == [] and d.feed(b"[") == [] and d.feed(b"A") == []


# -- console display ------------------------------------------------------

class _Out:
    def __init__(self):
        self.parts = []

    def write(self, s):
        self.parts.append(s)


def test_console_shows_the_panel_in_half_blocks():
    out = _Out()
    d = console_display.ConsoleDisplay(out=out)
    d.fill(0)
    d.pixel(0, 0, 1)  # upper half of cell (0, 0)
    d.pixel(1, 1, 1)  # lower half of cell (1, 0)
    d.pixel(2, 0, 1)
    d.pixel(2, 1, 1)  # both
    d.show()
    lines = "".join(out.parts).split("\n")
    assert lines[0].startswith("\x1b[H\u250c")
    assert lines[1][1:4] == "\u2580\u2584\u2588"
    assert len(lines[1]) == 130 and len([x for x in lines if x.startswith("\u2502")]) == 32


def test_screenshot_dir_gets_a_png_per_push(tmp_path):
    d = console_display.ConsoleDisplay(out=_Out(), screenshot_dir=str(tmp_path))
    screens.show(d, "idle", "zh", time=(2026, 11, 24, 20, 5))
    screens.show(d, "reading", "en")
    files = sorted(os.listdir(tmp_path))
    assert files == ["screen-0001.png", "screen-0002.png"]
    w, h, rows = render_screens.decode((tmp_path / files[1]).read_bytes())
    ref = render_screens.render("reading", "en")
    assert (w, h) == ((128 + 4) * 3, (64 + 4) * 3)
    assert _panel_from_png(rows) == [[ref.pixel(x, y) for x in range(128)] for y in range(64)]


# -- PNG ------------------------------------------------------------------

def _panel_from_png(rows, scale=3, border=2):
    return [[rows[(y + border) * scale][(x + border) * scale] for x in range(128)]
            for y in range(64)]


def _chunks(data):
    pos = 8
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        crc = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        yield kind, body, crc
        pos += 12 + n


def test_png_stored_and_compressed_agree(monkeypatch):
    p = render_screens.render("success", "zh")
    compressed = png.encode(p, 128, 64)
    monkeypatch.setattr(png, "zlib", None)
    stored = png.encode(p, 128, 64)
    assert stored != compressed and len(stored) > len(compressed)
    assert render_screens.decode(stored) == render_screens.decode(compressed)
    for kind, body, crc in _chunks(stored):
        assert binascii.crc32(kind + body) & 0xFFFFFFFF == crc, kind
    idat = b"".join(b for k, b, _ in _chunks(stored) if k == b"IDAT")
    assert zlib.decompress(idat)  # adler32 checked by zlib


def test_png_stored_spans_several_deflate_blocks(monkeypatch):
    # Big enough for more than one 65535-byte stored block.
    monkeypatch.setattr(png, "zlib", None)
    p = render_screens.render("card_info", "en")
    data = png.encode(p, 128, 64, scale=12, border=0)
    w, h, rows = render_screens.decode(data)
    assert (w, h) == (1536, 768) and ((w + 7) // 8 + 1) * h > 65535
    assert _panel_from_png(rows, 12, 0) == [[p.pixel(x, y) for x in range(128)]
                                            for y in range(64)]


def test_png_refuses_bad_scale():
    with pytest.raises(ValueError):
        png.encode(render_screens.Panel(), 128, 64, scale=0)


# -- MicroPython ----------------------------------------------------------

@pytest.fixture(scope="module")
def mpy_dir(tmp_path_factory):
    """The display modules compiled to .mpy, as a board would hold them."""
    d = tmp_path_factory.mktemp("mpy")
    for rel in ("firmware/glyphs.py", "firmware/text.py", "firmware/screens.py",
                "firmware/messages.py", "drivers/st7565.py", "boards/unix/console_display.py",
                "boards/unix/png.py"):
        name = os.path.splitext(os.path.basename(rel))[0]
        subprocess.run([MPY_CROSS, "-o", str(d / (name + ".mpy")), os.path.join(ROOT, rel)],
                       check=True)
    return d


def test_micropython_renders_the_same_pixels(mpy_dir, tmp_path):
    shot = tmp_path / "shot.png"
    out = run_mp("host_tests/mp/display_render.py", str(mpy_dir), str(shot), heap="64k")
    lines = out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["panel_matches"] is True
    assert summary["bytes"][0] == 8 * (3 + 128)
    for line, (name, lang, fields) in zip(lines[:-1], MP_CASES):
        n, l, hexbuf = line.split()
        assert (n, l) == (name, lang)
        ref = render_screens.Panel()
        screens.render(ref, name, lang, **fields)
        assert bytes.fromhex(hexbuf) == bytes(ref.buffer), (name, lang)
    # The PNG MicroPython wrote (stored deflate, own adler32) decodes to the
    # last screen, exactly.
    data = shot.read_bytes()
    assert summary["png_bytes"] == len(data)
    w, h, rows = render_screens.decode(data)
    ref = render_screens.Panel()
    screens.render(ref, *MP_CASES[-1][:2], **MP_CASES[-1][2])
    assert _panel_from_png(rows) == [[ref.pixel(x, y) for x in range(128)] for y in range(64)]


def test_micropython_keypad_and_keys():
    out = json.loads(run_mp("host_tests/mp/display_keys.py", heap="64k").strip().splitlines()[-1])
    assert out["keys"] == ["ok", "2"] and out["left"] == 0
    assert out["typed"] == ["1", "2", "ok", "cancel", "del", "lang", "cancel"]


def test_micropython_console_ui(tmp_path):
    # As terminal.py starts it: idle screen drawn and saved, 'l' on stdin
    # switches to English (a second push), bad --display refused.
    shots = tmp_path / "shots"
    out = run_mp("host_tests/mp/display_ui.py", str(shots), heap="256k", stdin="l")
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary == {"none": True, "bad_refused": True, "lang": "en", "shots": 2}
    assert sorted(os.listdir(shots)) == ["screen-0001.png", "screen-0002.png"]
    assert "\x1b[36;r" in out  # the panel keeps the top; text scrolls below
    _, _, rows = render_screens.decode((shots / "screen-0002.png").read_bytes())
    panel = _panel_from_png(rows)
    ref = render_screens.render("idle", "en")
    assert panel[:12] == [[ref.pixel(x, y) for x in range(128)] for y in range(12)]  # title
