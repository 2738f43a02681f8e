"""Every screen fits the display in both languages with the widest values,
matches its approved image, and refuses bad field values clearly."""
import os

import pytest

import messages
import render_screens
import screens
import text

ALL = [(n, lang) for n in screens.names() for lang in messages.LANGS]

RESIDENT_REFUSALS = (
    "opening_card", "relay_tripped", "meter_replaced", "meter_not_opened", "card_mismatch",
    "already_credited", "card_pulled", "meter_no_answer", "count_error", "card_invalid",
)


@pytest.mark.parametrize("name,lang", ALL)
def test_fits_with_widest_values(name, lang):
    title, body, nxt = screens.layout(name, lang, **render_screens.fields_for(
        name, render_screens.WORST))
    assert text.width(title) <= 128
    for line in body + nxt:
        assert 0 < text.width(line) <= 128 or line == ""
    assert len(body) + len(nxt) <= 4


@pytest.mark.parametrize("name,lang", ALL)
def test_title_rule_left_intact(name, lang):
    # Text never runs into the rule under the title (row 13) or the row
    # under it, and the first and last rows hold ink (title and next-step).
    p = render_screens.render(name, lang, render_screens.WORST)
    assert all(p.pixel(x, 13) for x in range(128))
    assert not any(p.pixel(x, 14) for x in range(128))
    assert any(p.pixel(x, y) for y in range(12) for x in range(128))
    assert any(p.pixel(x, y) for y in range(52, 64) for x in range(128))


@pytest.mark.parametrize("name", screens.names())
def test_matches_approved_image(name):
    path = os.path.join(render_screens.DOCS, name + ".png")
    assert os.path.exists(path), "no approved image: run tools/render_screens.py --approve"
    with open(path, "rb") as f:
        approved = render_screens.decode(f.read())
    assert render_screens.decode(render_screens.encode(name)) == approved, \
        "%s differs from docs/screens/%s.png: look, then --approve" % (name, name)


def test_render_tool_check_mode_passes():
    assert render_screens.main([]) == 0


def test_render_tool_detects_a_change(tmp_path, monkeypatch):
    assert render_screens.main(["--approve", "--out", str(tmp_path / "s")]) == 0
    assert (tmp_path / "screens.md").exists()
    monkeypatch.setitem(messages.MESSAGES, "idle", (
        ("集中充值终端", "{time}", "请插卡"), ("Top-up terminal", "{time}", "Insert card")))
    assert render_screens.main(["--out", str(tmp_path / "s")]) == 1


def test_every_screen_documented():
    assert sorted(render_screens.WHEN) == screens.names()
    with open(os.path.join(os.path.dirname(render_screens.DOCS), "screens.md"),
              encoding="utf-8") as f:
        md = f.read()
    for n in screens.names():
        assert "screens/%s.png" % n in md


@pytest.mark.parametrize("name", screens.names())
def test_both_languages_say_what_to_do(name):
    zh, en = messages.MESSAGES[name]
    for title, body, nxt in (zh, en):
        assert title and nxt, name
    assert any(ord(c) > 0x2E80 for c in "".join(zh)), "zh text is Chinese"
    assert all(ord(c) < 0x2E80 for c in "".join(en)), "en text has no CJK"


def test_mission_refusals_are_catalogued():
    for n in RESIDENT_REFUSALS + ("idle", "reading", "card_info", "progress", "success",
                                  "tech_meter_number", "tech_confirm", "tech_done"):
        assert n in messages.MESSAGES


def test_key_phrases():
    assert "电表" in messages.get("opening_card", "zh")[2]
    assert "meter" in messages.get("opening_card", "en")[2]
    assert "恢复供电" in messages.get("relay_tripped", "zh")[2]
    assert "restore power" in messages.get("relay_tripped", "en")[2]
    assert "重新插入" in messages.get("card_pulled", "zh")[2]
    assert "back" in messages.get("card_pulled", "en")[2]


@pytest.mark.parametrize("fen,shown", [
    (0, "0.00"), (5, "0.05"), (-5, "-0.05"), (100, "1.00"), (12345, "123.45"),
    (-100, "-1.00"), (99999999, "999999.99"), (-99999999, "-999999.99"), (1999, "19.99"),
])
def test_money(fen, shown):
    assert screens.money(fen) == shown


@pytest.mark.parametrize("bad,err", [
    (1.5, TypeError), ("100", TypeError), (True, TypeError), (None, TypeError),
    (100000000, ValueError), (-100000000, ValueError), (2 ** 40, ValueError),
])
def test_money_refuses(bad, err):
    with pytest.raises(err):
        screens.money(bad)


def test_show_draws_and_pushes():
    d = render_screens.Panel()
    d.show = lambda: 42
    assert screens.show(d, "success", "en", amount=5000, balance=12345) == 42
    ref = render_screens.render("success", "en", dict(render_screens.SAMPLE, amount=5000,
                                                      balance=12345))
    assert d.buffer == ref.buffer


@pytest.mark.parametrize("fields,err", [
    ({}, TypeError),  # missing
    ({"amount": 1, "balance": 2, "meter": "000000000001"}, TypeError),  # extra
    ({"amount": 1.0, "balance": 2}, TypeError),
    ({"amount": "1", "balance": 2}, TypeError),
    ({"amount": 1, "balance": 10 ** 9}, ValueError),
])
def test_show_field_errors(fields, err):
    with pytest.raises(err):
        screens.render(render_screens.Panel(), "success", "zh", **fields)


@pytest.mark.parametrize("v,err", [
    ("12345678901", ValueError), ("1234567890123", ValueError), ("12345678901a", ValueError),
    (123456789012, TypeError), (b"123456789012", TypeError),
    # full-width digits, as a Chinese input method types them: refused on purpose
    ("１２３４５６７８９０１２", ValueError),  # noqa: RUF001
])
def test_number_fields(v, err):
    with pytest.raises(err):
        screens.layout("card_info", "zh", customer=v, meter="000000000001", amount=1)


@pytest.mark.parametrize("v,err", [
    ((2026, 13, 1, 0, 0), ValueError), ((2026, 1, 1, 24, 0), ValueError),
    ((2026, 1, 1, 0), TypeError), ([2026, 1, 1, 0, 0], TypeError), ("20:05", TypeError),
    ((1999, 1, 1, 0, 0), ValueError), ((2026, 1, 32, 0, 0), ValueError),
])
def test_time_field(v, err):
    with pytest.raises(err):
        screens.layout("idle", "zh", time=v)


def test_time_shown():
    _, body, _ = screens.layout("idle", "en", time=(2026, 1, 2, 3, 4, 5, 0, 0))
    assert body == ["2026-01-02 03:04"]


@pytest.mark.parametrize("v,err", [("1234567890123", ValueError), ("12a", ValueError),
                                   (12, TypeError)])
def test_digits_field(v, err):
    with pytest.raises(err):
        screens.layout("tech_meter_number", "en", digits=v)


def test_digits_shown_with_placeholders():
    _, body, _ = screens.layout("tech_meter_number", "zh", digits="0123")
    assert body[-1] == "0123________"


@pytest.mark.parametrize("v", [-1, 101, 50.0, True, "50"])
def test_percent_field(v):
    with pytest.raises(ValueError):
        screens.layout("progress", "zh", percent=v)


def test_progress_bar_tracks_percent():
    def ink(p):
        q = render_screens.render("progress", "zh", dict(render_screens.SAMPLE, percent=p))
        return sum(q.pixel(x, y) for y in range(64) for x in range(128))
    assert ink(0) < ink(50) < ink(100)


def test_unknown_screen_and_language():
    with pytest.raises(ValueError):
        screens.layout("nope", "zh")
    with pytest.raises(ValueError):
        screens.layout("idle", "fr", time=(2026, 1, 1, 0, 0))


def test_overflow_is_refused(monkeypatch):
    monkeypatch.setitem(messages.MESSAGES, "long", (
        ("请", "电" * 41, "请"), ("x", "x", "x")))
    with pytest.raises(text.TextOverflow):
        screens.layout("long", "zh")
    monkeypatch.setitem(messages.MESSAGES, "wide_title", (("电" * 11, "", "请"), ("x", "", "x")))
    with pytest.raises(text.TextOverflow):
        screens.layout("wide_title", "zh")


def test_wrap_rules():
    # Chinese punctuation never starts a line; the character before it moves down.
    lines = text.wrap("本次购电已在电表中未，重复充值", 120)
    assert all(not line.startswith("，") for line in lines)
    assert "".join(lines) == "本次购电已在电表中未，重复充值"
    # English breaks at spaces, drops the space, cuts a word wider than the line.
    assert text.wrap("Take the card to the utility office.", 128) == [
        "Take the card to the", "utility office."]
    long = "1" * 30
    lines = text.wrap(long, 60)
    assert "".join(lines) == long and all(text.width(x) <= 60 for x in lines)
    assert text.wrap("a\n\nb", 128) == ["a", "", "b"]
    with pytest.raises(ValueError):
        text.wrap("abc", 8)


from hypothesis import given, settings, strategies as st  # noqa: E402

_money = st.integers(-99999999, 99999999)
_num = st.text("0123456789", min_size=12, max_size=12)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(screens.names()), lang=st.sampled_from(messages.LANGS),
       amount=_money, balance=_money, customer=_num, meter=_num,
       digits=st.text("0123456789", max_size=12), percent=st.integers(0, 100),
       pin=st.text("0123456789", max_size=6), tries=st.integers(0, 99),
       minutes=st.integers(0, 99), terminal=_num,
       version=st.from_regex(r"\A[0-9]{1,4}(\.[0-9]{1,3}){0,2}\Z"),
       time=st.tuples(st.integers(2000, 2099), st.integers(1, 12), st.integers(1, 31),
                      st.integers(0, 23), st.integers(0, 59)))
def test_any_valid_values_fit(name, lang, **values):
    screens.layout(name, lang, **render_screens.fields_for(name, values))


_chars = st.text(st.sampled_from(messages.charset()), max_size=80)


@settings(max_examples=200, deadline=None)
@given(s=_chars, max_w=st.integers(16, 128))
def test_wrap_property(s, max_w):
    lines = text.wrap(s, max_w)
    assert all(text.width(x) <= max_w for x in lines)
    # Only spaces at breaks go missing; every other character stays, in order.
    assert "".join(lines).replace(" ", "") == s.replace(" ", "")


def test_wrap_carry_never_overflows():
    assert text.wrap("ab，", 16) == ["ab", "，"]
    assert text.wrap("电电，", 30) == ["电", "电，"]
