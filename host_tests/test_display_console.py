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


def _panel_writes(out):
    """The console lines draw_console() wrote, by line number."""
    got = {}
    for part in "".join(out.parts).split("\x1b[")[1:]:
        pos, _, text = part.partition("H")
        if ";" in pos:
            got[int(pos.split(";")[0])] = text.replace("\x1b8", "")
    return got


def test_console_shows_the_panel_in_half_blocks():
    out = _Out()
    d = console_display.ConsoleDisplay(out=out)
    d.fill(0)
    d.pixel(0, 0, 1)  # upper half of cell (0, 0)
    d.pixel(1, 1, 1)  # lower half of cell (1, 0)
    d.pixel(2, 0, 1)
    d.pixel(2, 1, 1)  # both
    d.show()
    text = "".join(out.parts)
    assert text.startswith("\x1b7") and text.endswith("\x1b8")  # the cursor is put back
    lines = _panel_writes(out)
    assert sorted(lines) == list(range(1, 35))
    assert lines[1].startswith("\u250c") and lines[34].startswith("\u2514")
    assert lines[2][1:4] == "\u2580\u2584\u2588"
    assert {len(x) for x in lines.values()} == {130}


def test_console_compact_is_braille_in_66_columns():
    d = console_display.ConsoleDisplay(out=_Out())
    d.view.mode = "compact"
    d.fill(0)
    for x, y in ((0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)):
        d.pixel(x, y, 1)  # cell (0, 0): all eight dots
    d.pixel(2, 4, 1)  # cell (1, 1): dot 1
    d.pixel(127, 63, 1)  # last cell: dot 8
    d.show()
    lines = d.view.lines()
    assert len(lines) == 16 and {len(x) for x in lines} == {66}
    assert lines[0][1] == "\u28ff" and lines[1][2] == "\u2801" and lines[15][64] == "\u2880"
    import console_ui
    assert console_ui.SIZES == {"full": (130, 34), "compact": (66, 16)}


def test_console_draws_only_the_lines_that_changed():
    out = _Out()
    d = console_display.ConsoleDisplay(out=out)
    d.view.mode = "compact"
    d.fill(0)
    d.show()
    assert len(_panel_writes(out)) == 16
    out.parts.clear()
    d.pixel(10, 9, 1)  # line 3 (pixels 8..11)
    d.show()
    assert sorted(_panel_writes(out)) == [3]
    out.parts.clear()
    d.show()
    assert out.parts == []  # nothing changed: nothing written


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
                "firmware/messages.py", "firmware/messages_tech.py", "drivers/st7565.py",
                "boards/unix/console_display.py", "boards/unix/png.py"):
        name = os.path.splitext(os.path.basename(rel))[0]
        subprocess.run([MPY_CROSS, "-o", str(d / (name + ".mpy")), os.path.join(ROOT, rel)],
                       check=True)
    return d


def test_micropython_renders_the_same_pixels(mpy_dir, tmp_path):
    shot = tmp_path / "shot.png"
    # 96k: one case is a technician's screen, whose catalogue loads on top
    out = run_mp("host_tests/mp/display_render.py", str(mpy_dir), str(shot), heap="96k")
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
    _w, _h, rows = render_screens.decode(data)
    ref = render_screens.Panel()
    screens.render(ref, *MP_CASES[-1][:2], **MP_CASES[-1][2])
    assert _panel_from_png(rows) == [[ref.pixel(x, y) for x in range(128)] for y in range(64)]


def test_micropython_keypad_and_keys():
    out = json.loads(run_mp("host_tests/mp/display_keys.py", heap="64k").strip().splitlines()[-1])
    assert out["keys"] == ["ok", "2"] and out["left"] == 0
    assert out["typed"] == ["1", "2", "ok", "cancel", "del", "lang", "cancel"]


# -- the console layout ----------------------------------------------------

class Screen:
    """Just enough of a VT100 to check the layout: CUP, ED, EL, DECSTBM,
    DECSC/DECRC, CR, LF (the tty's ONLCR applied), autowrap recorded as an
    overflow (a line too long for the terminal)."""

    def __init__(self, cols, rows):
        self.cols, self.rows = cols, rows
        self.grid = [[" "] * cols for _ in range(rows)]
        self.r = self.c = 0
        self.top, self.bot = 0, rows - 1
        self.saved = (0, 0)
        self.overflows = []

    def _lf(self):
        if self.r == self.bot:
            del self.grid[self.top]
            self.grid.insert(self.bot, [" "] * self.cols)
        elif self.r < self.rows - 1:
            self.r += 1

    def feed(self, text):
        i = 0
        while i < len(text):
            ch = text[i]
            i += 1
            if ch == "\x1b":
                if text[i] in "78":
                    if text[i] == "7":
                        self.saved = (self.r, self.c)
                    else:
                        self.r, self.c = self.saved
                    i += 1
                    continue
                assert text[i] == "[", repr(text[i - 1:i + 10])
                j = i + 1
                while not ("@" <= text[j] <= "~"):
                    j += 1
                params, final = text[i + 1:j], text[j]
                i = j + 1
                nums = [int(x) if x else 0 for x in params.split(";")] if params else []
                if final == "H":
                    r, c = (nums + [1, 1])[:2] if nums else (1, 1)
                    self.r, self.c = max(r, 1) - 1, max(c, 1) - 1
                elif final == "J":
                    assert nums == [2]
                    self.grid = [[" "] * self.cols for _ in range(self.rows)]
                elif final == "K":
                    self.grid[self.r][self.c:] = [" "] * (self.cols - self.c)
                elif final == "r":
                    self.top, self.bot = ((nums[0] - 1, nums[1] - 1) if nums
                                          else (0, self.rows - 1))
                    self.r = self.c = 0
                else:
                    raise AssertionError("unexpected sequence " + params + final)
            elif ch == "\n":
                self._lf()
                self.c = 0
            elif ch == "\r":
                self.c = 0
            else:
                if self.c >= self.cols:
                    self.overflows.append((self.r, "".join(self.grid[self.r])))
                    self.c = 0
                    self._lf()
                self.grid[self.r][self.c] = ch
                self.c += 1

    def line(self, n):
        """Line n (1-based), trailing blanks dropped."""
        return "".join(self.grid[n - 1]).rstrip()

    def text(self):
        return [self.line(n) for n in range(1, self.rows + 1)]


def _console(size):
    import console_ui
    out = _Out()
    c = console_ui.Console(out=out, size=size)

    async def no_keys():
        return None
    c.console_keys.run = no_keys  # stdin stays pytest's
    return c, out


def _in_loop(fn):
    """Run fn() where asyncio.create_task works (Console.start needs a loop)."""
    import asyncio

    async def body():
        return fn()
    return asyncio.run(body())


def _table(n, tag):
    return "\n".join(["poll %s" % tag, "meter         balance/yuan"]
                     + ["%012d  %12s" % (i, tag) for i in range(1, n + 1)])


def _run_layout(size, hint="cards: p purchase  o opening  r reissued  x clone  f forged"):
    """A session: hint, panel, a table, log lines, a table refresh, close."""
    import asyncio

    c, out = _console(size)
    scr = Screen(*size)

    async def session():
        c.hint(hint)
        c.start()
        screens.show(c.display, "idle", "en", time=(2026, 11, 24, 20, 5))
        c.table(_table(12, "1.00"))
        c.log("card 8800000000000001 inserted")
        c.log("card 8800000000000001: purchase 100.00 for 000000000001")
        c.table(_table(12, "2.00"))
        scr.feed("".join(out.parts))
        out.parts.clear()
        before = scr.text()
        c.close()
        c.close()
        scr.feed("".join(out.parts))
        return before

    return c, scr, asyncio.run(session())


def test_layout_full_size_panel_hint_table_log():
    c, scr, shown = _run_layout((132, 60))
    assert c.mode == "full" and scr.overflows == []
    assert shown[0].startswith("\u250c") and shown[33].startswith("\u2514")
    assert shown[34].startswith("cards: p purchase")  # the hint, under the panel
    assert shown[35] == "poll 2.00" and shown[48].endswith("2.00")  # 14 table lines
    # The log survived the table refresh, at the bottom, above the cursor's line.
    assert shown[-3:] == ["card 8800000000000001 inserted",
                          "card 8800000000000001: purchase 100.00 for 000000000001", ""]
    # After close: whole screen scrolls again, cursor on the empty last line.
    assert (scr.top, scr.bot) == (0, 59) and (scr.r, scr.c) == (59, 0)
    assert scr.text()[:-1] == shown[:-1]


def test_layout_compact_fits_80x24():
    c, scr, shown = _run_layout((80, 24))
    assert c.mode == "compact"
    assert scr.overflows == []  # no line longer than 80 columns
    assert all(len(line) <= 80 for line in shown)
    assert all(line.startswith("\u2502") for line in shown[:16])
    assert shown[16].startswith("cards: p purchase")
    assert shown[17] == "poll 2.00"
    assert shown[20].startswith("... 11 more lines")  # the table cut, and says so
    assert shown[21:] == ["card 8800000000000001 inserted",
                          "card 8800000000000001: purchase 100.00 for 000000000001", ""]
    assert (scr.r, scr.c) == (23, 0)


def test_layout_long_lines_are_cut_to_the_width():
    c, scr, shown = _run_layout((70, 22), hint="h" * 200)
    assert c.mode == "compact" and scr.overflows == []
    assert shown[16] == "h" * 69
    c, out = _console((70, 22))
    _in_loop(c.start)
    c.log("x" * 300)
    c.log("\u4e2d" * 100)  # CJK: two columns each
    scr = Screen(70, 22)
    scr.feed("".join(out.parts))
    assert scr.overflows == []


def test_log_scrolls_and_table_growth_keeps_it():
    c, out = _console((80, 40))
    _in_loop(c.start)
    for i in range(30):
        c.log("line %d" % i)
    c.table(_table(3, "x"))  # the table takes 5 lines: the log is laid out again
    scr = Screen(80, 40)
    scr.feed("".join(out.parts))
    shown = scr.text()
    assert shown[17:22] == ["poll x", "meter         balance/yuan", "000000000001             x",
                            "000000000002             x", "000000000003             x"]
    assert shown[22:] == ["line %d" % i for i in range(13, 30)] + [""]
    assert scr.overflows == []


@pytest.mark.parametrize("size,mode", [
    ((130, 42), "full"), ((200, 60), "full"), ((129, 60), "compact"), ((130, 41), "compact"),
    ((80, 24), "compact"), ((66, 20), "compact"), ((65, 24), None), ((80, 19), None)])
def test_mode_by_terminal_size(size, mode):
    import console_ui
    assert console_ui.pick_mode(*size) == mode


def test_too_small_says_the_size_needed():
    c, out = _console((60, 15))
    _in_loop(c.start)
    text = "".join(out.parts)
    assert text.count("\n") == 1 and "60x15" in text and "66x20" in text
    assert "--screenshot" in text and not c.drawing
    c.table("a\nb")
    c.log("c")
    assert "".join(out.parts).endswith("a\nb\nc\n")  # printed as they come


# -- under MicroPython, on a real pseudo-terminal ----------------------------------

_MP_SESSION = """
import asyncio, sys, json
import console_ui, screens, keypad

async def main():
    none = console_ui.start({"display": "none"})
    try:
        console_ui.start({"display": "bogus"})
        bad = False
    except ValueError:
        bad = True
    c = console_ui.start({"display": "console", "screenshot": sys.argv[1],
                          "hint": "cards: p purchase"})
    screens.show(c.display, "idle", "en", time=(2026, 11, 24, 20, 5))
    c.table("poll 1\\n" + "\\n".join("%012d  1.00" % i for i in range(12)))
    c.log("card inserted")
    c.table("poll 2\\n" + "\\n".join("%012d  2.00" % i for i in range(12)))
    print("a stray print")
    sys.stdout.write("\\x1b[99;99HREADY\\n")
    key = await asyncio.wait_for(c.keys.get(), 20)
    c.close()
    c.close()
    print(json.dumps({"none": none is None, "bad_refused": bad, "key": key,
                      "mode": c.mode, "shots": c.display.shots}))

asyncio.run(main())
"""


def _mp_on_pty(script, args, cols, rows, keys=b"", env=None):
    """Run a micropython script with a pty of cols x rows as its terminal;
    type `keys` once it prints READY. Returns everything it wrote."""
    import fcntl
    import pty
    import select
    import termios
    import time
    from mp_runner import MICROPYTHON, MP_PATH
    m, s = pty.openpty()
    fcntl.ioctl(s, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    e = dict(os.environ, MICROPYPATH=MP_PATH)
    e.pop("COLUMNS", None)
    e.pop("LINES", None)
    e.update(env or {})
    p = subprocess.Popen([MICROPYTHON, "-X", "heapsize=256k", script] + args,
                         stdin=s, stdout=s, stderr=s, env=e)
    os.close(s)
    out = b""
    deadline = time.monotonic() + 60
    typed = False
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([m], [], [], 1)
            if not r:
                continue
            try:
                data = os.read(m, 65536)
            except OSError:  # the child closed the pty
                break
            if not data:
                break
            out += data
            if not typed and b"READY" in out:
                os.write(m, keys)
                typed = True
    finally:
        p.kill() if p.poll() is None else None
        p.wait()
        os.close(m)
    return out.decode()


def test_micropython_console_on_a_80x24_pty(tmp_path):
    script = tmp_path / "session.py"
    script.write_text(_MP_SESSION)
    shots = tmp_path / "shots"
    out = _mp_on_pty(str(script), [str(shots)], 80, 24, keys=b"l")
    summary = json.loads(out.strip().splitlines()[-1].split("\x1b[K")[-1])
    assert summary == {"none": True, "bad_refused": True, "key": "lang",
                       "mode": "compact", "shots": 1}
    body = out[:out.index("\x1b[99;99H")]
    scr = Screen(80, 24)
    scr.feed(body)
    assert scr.overflows == []
    shown = scr.text()
    assert shown[16] == "cards: p purchase" and shown[17] == "poll 2"
    assert shown[21:] == ["card inserted", "a stray print", ""]
    tail = out[out.index("READY"):]
    assert "\x1b[r\x1b[24;1H" in tail  # close: scrolling back, cursor on the last line
    _, _, rows = render_screens.decode((shots / "screen-0001.png").read_bytes())
    ref = render_screens.render("idle", "en")
    assert _panel_from_png(rows) == [[ref.pixel(x, y) for x in range(128)] for y in range(64)]


def test_micropython_console_full_size_on_a_140x60_pty(tmp_path):
    script = tmp_path / "session.py"
    script.write_text(_MP_SESSION)
    out = _mp_on_pty(str(script), [str(tmp_path / "shots")], 140, 60, keys=b"\r")
    summary = json.loads(out.strip().splitlines()[-1].split("\x1b[K")[-1])
    assert summary["mode"] == "full" and summary["key"] == "ok"
    scr = Screen(140, 60)
    scr.feed(out[:out.index("\x1b[99;99H")])
    shown = scr.text()
    assert scr.overflows == [] and shown[0].startswith("\u250c") and shown[33].startswith("\u2514")
    assert shown[34] == "cards: p purchase" and shown[35] == "poll 2"
    assert shown[36:48] == ["%012d  2.00" % i for i in range(12)]
    assert shown[-3:] == ["card inserted", "a stray print", ""]


def test_micropython_console_refuses_a_tiny_terminal(tmp_path):
    script = tmp_path / "tiny.py"
    script.write_text("import console_ui\nc = console_ui.start({})\n"
                      "print('drawing', c.drawing)\nc.close()\n")
    out = _mp_on_pty(str(script), [], 50, 12)
    assert "50x12" in out and "66x20" in out and "drawing False" in out
    assert "\x1b[2J" not in out


def test_micropython_console_off_when_stdout_is_not_a_tty(tmp_path):
    script = tmp_path / "piped.py"
    script.write_text("import console_ui\nprint('ui', console_ui.start({}))\n"
                      "print('once', console_ui.start({'once': True}))\n")
    out = run_mp(str(script))
    assert out.splitlines()[0].startswith("terminal: panel off: stdout is not a terminal")
    assert "--screenshot" in out.splitlines()[0]
    assert out.splitlines()[1:] == ["ui None", "once None"]
