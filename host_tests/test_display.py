"""The ST7565 driver against an emulated panel that decodes its SPI bytes:
what the panel shows always equals the frame buffer, and partial refresh
sends only what changed."""
import random

import hostpath  # noqa: F401
import pytest
from hypothesis import given, settings, strategies as st

import console_display
import screens
import st7565
from render_screens import SAMPLE, fields_for

FULL = 8 * (3 + 128)


class Recorder:
    """A fake SPI that records (dc, bytes) per write, wired to fake pins."""

    def __init__(self):
        self.dc = console_display._Pin(0)
        self.cs = console_display._Pin(1)
        self.rst = console_display._Pin(1)
        self.writes = []

    def write(self, buf):
        assert self.cs() == 0, "write with CS high"
        self.writes.append((self.dc(), bytes(buf)))


def make(col_offset=0, **kw):
    panel = console_display.Panel(col_offset=col_offset)
    d = st7565.ST7565(panel, panel.dc, panel.cs, panel.rst, col_offset=col_offset, **kw)
    return d, panel


def same(d, panel):
    return all(panel.pixel(x, y) == d.pixel(x, y) for y in range(64) for x in range(128))


def test_init_sequence_and_pins():
    r = Recorder()
    st7565.ST7565(r, r.dc, r.cs, r.rst, contrast=0x20)
    cmds = b"".join(b for dc, b in r.writes if dc == 0)
    assert all(dc == 0 for dc, _ in r.writes), "init sends commands only"
    assert cmds[0] == 0xE2  # software reset first
    assert cmds[-1] == 0xAF  # display on last
    assert b"\x81\x20" in cmds  # contrast
    assert 0xA2 in cmds and 0xC8 in cmds and 0x2F in cmds
    assert r.cs() == 1 and r.rst() == 1


def test_flip_reverses_segments_and_commons():
    r = Recorder()
    st7565.ST7565(r, r.dc, r.cs, flip=True)
    cmds = b"".join(b for _, b in r.writes)
    assert 0xA1 in cmds and 0xC0 in cmds and 0xC8 not in cmds


@pytest.mark.parametrize("kw", [{"contrast": 64}, {"contrast": -1}, {"col_offset": 5}])
def test_bad_settings(kw):
    r = Recorder()
    with pytest.raises(ValueError):
        st7565.ST7565(r, r.dc, r.cs, **kw)


def test_first_show_is_full_then_nothing():
    d, panel = make()
    d.fill(0)
    d.pixel(0, 0, 1)
    assert d.show() == FULL
    assert panel.data_bytes == 1024
    assert same(d, panel)
    assert d.show() == 0  # nothing changed: nothing sent


def test_one_pixel_costs_four_bytes():
    d, panel = make()
    d.show()
    d.pixel(77, 42, 1)
    assert d.show() == 3 + 1
    assert panel.pixel(77, 42) == 1 and same(d, panel)
    d.pixel(77, 42, 0)
    assert d.show() == 4 and same(d, panel)


def test_span_is_first_to_last_changed_column():
    d, panel = make()
    d.show()
    d.pixel(10, 0, 1)
    d.pixel(20, 0, 1)
    d.pixel(5, 63, 1)
    assert d.show() == (3 + 11) + (3 + 1)
    assert same(d, panel)


def test_full_forces_everything():
    d, _ = make()
    d.show()
    assert d.show(full=True) == FULL


def test_reinit_resends_all():
    # After a reset the panel RAM is unknown: the next push must be complete.
    d, panel = make()
    d.fill(1)
    d.show()
    panel.ram[:] = bytes(len(panel.ram))  # what a reset might leave
    d.init()
    assert d.show() == FULL and same(d, panel)


def test_contrast_command():
    d, panel = make()
    d.contrast(40)
    assert panel.contrast == 40
    with pytest.raises(ValueError):
        d.contrast(64)


def test_power_off_blanks_panel():
    d, panel = make()
    d.fill(1)
    d.show()
    d.poweroff()
    assert panel.pixel(0, 0) == 0
    d.poweron()
    assert panel.pixel(0, 0) == 1


@pytest.mark.parametrize("offset", [0, 4])
def test_column_offset(offset):
    d, panel = make(col_offset=offset)
    d.fill(0)
    d.vline(0, 0, 64, 1)
    d.vline(127, 0, 64, 1)
    d.show()
    assert same(d, panel)
    # The first visible column is RAM column `offset`.
    assert panel.ram[offset] == 0xFF and panel.ram[offset + 127] == 0xFF


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 127), st.integers(0, 63), st.integers(0, 1)),
                max_size=60), st.integers(0, 2 ** 32))
def test_random_edits_always_reach_the_panel(edits, seed):
    d, panel = make()
    rnd = random.Random(seed)
    for i in range(0, 1024, 7):
        d.buffer[i] = rnd.randrange(256)
    d.show()
    for x, y, c in edits:
        d.pixel(x, y, c)
    n = d.show()
    assert same(d, panel)
    assert n <= FULL


def test_one_line_update_is_under_ten_percent_of_full():
    d, panel = make()
    f = fields_for("card_info", SAMPLE)
    full = screens.show(d, "card_info", "zh", **f)
    assert full == FULL
    one_line = screens.show(d, "card_info", "zh", **dict(f, amount=f["amount"] + 50))
    assert 0 < one_line < FULL // 10, one_line
    assert same(d, panel)


def test_switching_screens_stays_correct():
    d, panel = make()
    for name in screens.names():
        for lang in ("zh", "en"):
            screens.show(d, name, lang, **fields_for(name, SAMPLE))
            assert same(d, panel), (name, lang)


def test_bench_runs_and_meets_targets(capsys):
    import bench_display
    bench_display.main()
    out = capsys.readouterr().out
    assert "one-line update" in out
    pct = float(out.split("bytes (")[2].split(" %")[0])
    assert pct < 10
    heap = int(out.split(" B = ")[1].split(" B")[0])
    assert heap < 16384
