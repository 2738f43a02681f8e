"""The glyph subset: generated from the font, holds every catalogue
character and nothing else, and is not stale."""
import os

import pytest

import build_glyphs
import glyphs
import messages
import screens
import text


def _font_or_fail():
    if not os.path.exists(build_glyphs.FONT):
        pytest.fail("Debian package xfonts-wqy is missing (%s); run make setup"
                    % build_glyphs.FONT)
    try:
        import font_to_py  # noqa: F401
    except ImportError:
        pytest.fail("font-to-py is missing; pip install -r requirements.txt")


def _subset():
    return "".join(chr(glyphs.code(i)) for i in range(glyphs.count()))


def test_generated_module_is_current():
    _font_or_fail()
    with open(build_glyphs.OUT, encoding="utf-8") as f:
        committed = f.read()
    assert committed == build_glyphs.generate(messages.charset()), \
        "firmware/glyphs.py is stale: run .venv/bin/python tools/build_glyphs.py"


def test_check_mode_flags_a_stale_file(tmp_path):
    _font_or_fail()
    out = tmp_path / "glyphs.py"
    assert build_glyphs.main(["--out", str(out), "--check"]) == 1  # missing
    assert build_glyphs.main(["--out", str(out)]) == 0
    assert build_glyphs.main(["--out", str(out), "--check"]) == 0
    out.write_text(out.read_text().replace("HEIGHT = const(12)", "HEIGHT = const(13)"))
    assert build_glyphs.main(["--out", str(out), "--check"]) == 1


def test_subset_is_exactly_the_catalogue_charset():
    assert _subset() == messages.charset()
    for ch in messages.charset():
        i = glyphs.find(ord(ch))
        assert i >= 0 and glyphs.code(i) == ord(ch), ch
        assert 1 <= glyphs.width(i) <= 16
        assert len(glyphs.bitmap(i)) == 2 * glyphs.HEIGHT


def test_codes_sorted_and_lookup_misses():
    codes = [glyphs.code(i) for i in range(glyphs.count())]
    assert codes == sorted(set(codes))
    for ch in "Z€中文\u0000\uffff":
        if ch not in messages.charset():
            assert glyphs.find(ord(ch)) == -1
    assert glyphs.find(-1) == -1


def test_glyphs_are_real_bitmaps():
    # Spot checks against the font's shapes: a space is empty, 电 is full-width
    # and inked, the digits are narrow.
    i = glyphs.find(ord(" "))
    assert not any(glyphs.bitmap(i))
    i = glyphs.find(ord("电"))
    assert glyphs.width(i) == 12
    assert sum(bin(b).count("1") for b in glyphs.bitmap(i)) > 30
    assert glyphs.width(glyphs.find(ord("8"))) == 6
    assert glyphs.HEIGHT == 12  # the 5-line layout depends on it


def test_missing_font_character_fails_the_build():
    _font_or_fail()
    # U+E000 is a private-use code point the font does not have.
    with pytest.raises(build_glyphs.MissingGlyphs) as e:
        build_glyphs.rasterise("电\ue000")
    assert "U+E000" in str(e.value)


def test_catalogue_character_outside_the_subset_fails(monkeypatch):
    monkeypatch.setitem(messages.MESSAGES, "bad", (("错误", "你好", "请"), ("Bad", "Zebra", "x")))
    # The checks the build runs: the charset grows, so the subset no longer
    # matches and layout refuses the missing glyph.
    assert messages.charset() != _subset()
    with pytest.raises(text.MissingGlyph):
        screens.layout("bad", "zh")
    with pytest.raises(text.MissingGlyph):
        screens.layout("bad", "en")


def test_missing_font_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        build_glyphs.rasterise("a", font=str(tmp_path / "none.pcf"))
    assert "xfonts-wqy" in str(e.value)


def test_build_tool_exit_code_on_missing_char(monkeypatch, tmp_path):
    _font_or_fail()
    monkeypatch.setitem(messages.MESSAGES, "bad", (("\ue000", "", ""), ("x", "", "")))
    assert build_glyphs.main(["--out", str(tmp_path / "g.py")]) == 2
    assert not (tmp_path / "g.py").exists()

