"""The terminal's screens: one call draws a catalogued message and pushes it.

    screens.show(display, "success", lang="zh", amount=5000, balance=12345)

`display` is a 128x64 framebuf.FrameBuffer with `show()` (drivers/st7565.py,
or the unix board's console). Layout: the title centred on the top line, a
rule, what happened under it, and what to do next at the bottom.

Field values are checked here so a bad value is a clear error, never a
garbled screen: money is an int in fen (formatted by integer arithmetic, no
floats), customer and meter numbers are 12-digit strings.
"""
from micropython import const
import common
import messages
import text

W = const(128)
H = const(64)
_BODY_Y = const(15)  # title line, a 1 px rule at 13, one blank row
_ROWS = const(4)  # 4 lines of 12 px below the rule
_MONEY_MAX = const(99999999)  # 999999.99 yuan: the meter's XXXXXX.XX BCD range


def money(fen):
    """12345 -> '123.45'; -5 -> '-0.05'; within what the meter can show."""
    s = common.money(fen)  # TypeError for anything but an int
    if not -_MONEY_MAX <= fen <= _MONEY_MAX:
        raise ValueError("money out of range: %d fen" % fen)
    return s


def _number12(v):
    if not isinstance(v, str):
        raise TypeError("number is a 12-digit str, got %r" % (v,))
    if len(v) != 12 or not _all_digits(v):
        raise ValueError("number must be 12 digits: %r" % (v,))
    return v


def _all_digits(s):
    for ch in s:
        if not "0" <= ch <= "9":
            return False
    return True


def _digits(v):
    # What a technician has typed so far; '_' marks the digits still to come.
    if not isinstance(v, str):
        raise TypeError("digits is a str, got %r" % (v,))
    if len(v) > 12 or not _all_digits(v):
        raise ValueError("up to 12 digits: %r" % (v,))
    return v + "_" * (12 - len(v))


def _pin(v):
    # A PIN being typed: never shown, one '*' a digit.
    if not isinstance(v, str) or len(v) > 6 or not _all_digits(v):
        raise ValueError("a PIN is up to 6 digits")
    return "*" * len(v) + "_" * (6 - len(v))


def _small(v):
    # tries left, minutes of a lock-out
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 99:
        raise ValueError("a small count 0..99, got %r" % (v,))
    return v


def _time(v):
    # (year, month, day, hour, minute, ...) as time.localtime() gives it.
    if not isinstance(v, tuple) or len(v) < 5:
        raise TypeError("time is a (Y, M, D, h, m, ...) tuple, got %r" % (v,))
    y, mo, d, h, mi = v[0], v[1], v[2], v[3], v[4]
    for n, lo, hi in ((y, 2000, 2099), (mo, 1, 12), (d, 1, 31), (h, 0, 23), (mi, 0, 59)):
        if not isinstance(n, int) or not lo <= n <= hi:
            raise ValueError("bad time %r" % (v,))
    return "%04d-%02d-%02d %02d:%02d" % (y, mo, d, h, mi)


def _version(v):
    # "0.9.0": digits and dots, short enough for one line
    if not isinstance(v, str) or not 0 < len(v) <= 12 or not _all_digits(v.replace(".", "")):
        raise ValueError("version is digits and dots, got %r" % (v,))
    return v


def _percent(v):
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 100:
        raise ValueError("percent is an int 0..100, got %r" % (v,))
    return v


FIELDS = {
    "amount": money,
    "balance": money,
    "customer": _number12,
    "meter": _number12,
    "terminal": _number12,
    "version": _version,
    "digits": _digits,
    "time": _time,
    "percent": _percent,
    "pin": _pin,
    "tries": _small,
    "minutes": _small,
}

# Screens that draw something besides text, and the field that drives it.
_EXTRA = {"progress": "percent"}


def placeholders(name):
    """Sorted field names a screen needs."""
    need = set()
    messages.load(name)
    for parts in messages.MESSAGES[name]:
        for s in parts:
            i = s.find("{")
            while i >= 0:
                j = s.find("}", i)
                need.add(s[i + 1:j])
                i = s.find("{", j)
    if name in _EXTRA:
        need.add(_EXTRA[name])
    return sorted(need)


def _values(name, fields):
    need = placeholders(name)
    for k in fields:
        if k not in need:
            raise TypeError("screen %r takes no field %r" % (name, k))
    out = {}
    for k in need:
        if k not in fields:
            raise TypeError("screen %r needs field %r" % (name, k))
        out[k] = FIELDS[k](fields[k])
    return out


def layout(name, lang, **fields):
    """(title, body_lines, next_lines) as they will be drawn; TextOverflow if
    the message does not fit the screen."""
    messages.load(name)
    if name not in messages.MESSAGES:
        raise ValueError("unknown screen %r" % (name,))
    title, body, nxt = messages.get(name, lang)
    vals = _values(name, fields)
    title = title.format(**vals)
    if text.width(title) > W:
        raise text.TextOverflow("%s/%s title too wide" % (name, lang))
    body_lines = text.wrap(body.format(**vals), W) if body else []
    next_lines = text.wrap(nxt.format(**vals), W) if nxt else []
    used = len(body_lines) + len(next_lines) + (1 if name in _EXTRA else 0)
    if used > _ROWS:
        raise text.TextOverflow("%s/%s needs %d lines, has %d" % (name, lang, used, _ROWS))
    return title, body_lines, next_lines


def render(fb, name, lang="zh", **fields):
    """Draw a screen into the frame buffer (no push)."""
    title, body_lines, next_lines = layout(name, lang, **fields)
    fb.fill(0)
    text.draw_centered(fb, title, 0, W)
    fb.hline(0, 13, W, 1)
    y = _BODY_Y
    for line in body_lines:
        text.draw_centered(fb, line, y, W)
        y += text.LINE
    if name == "progress":
        _bar(fb, y + 1, fields["percent"])
    # What to do next sits on the bottom lines, apart from what happened.
    y = H - text.LINE * len(next_lines)
    for line in next_lines:
        text.draw_centered(fb, line, y, W)
        y += text.LINE


def _bar(fb, y, percent):
    fb.rect(8, y, W - 16, 9, 1)
    fb.fill_rect(10, y + 2, (W - 20) * percent // 100, 5, 1)


def show(display, name, lang="zh", **fields):
    """Draw a screen and push it; returns the bytes the push sent (if the
    display says)."""
    render(display, name, lang, **fields)
    return display.show()


def names():
    messages.load()
    return sorted(messages.MESSAGES)
