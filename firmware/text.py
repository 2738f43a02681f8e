"""Measure, wrap and draw mixed Chinese/English text with the glyph subset.

Chinese may break between any two characters, except before closing
punctuation; English breaks at spaces, and a word longer than the line is
cut. "\\n" forces a break. Drawing only sets pixels (the caller clears).
"""
import framebuf
import glyphs

LINE = glyphs.HEIGHT

# Chinese punctuation that must not start a line.
_NO_START = "，。、；：！？）"


class MissingGlyph(ValueError):
    """A character outside the glyph subset: rebuild glyphs.py."""


class TextOverflow(ValueError):
    """Text does not fit the space given."""


def _index(ch):
    i = glyphs.find(ord(ch))
    if i < 0:
        raise MissingGlyph("no glyph for %r" % ch)
    return i


def width(s):
    """Width of a one-line string in pixels."""
    w = 0
    for ch in s:
        w += glyphs.width(_index(ch))
    return w


def _is_wide(ch):
    return ord(ch) >= 0x2E80  # CJK and full-width forms


def _tokens(s):
    # A token is one CJK character, one run of non-space narrow characters,
    # or one space: the units a line may break between.
    tok = ""
    for ch in s:
        if ch == " " or _is_wide(ch):
            if tok:
                yield tok
                tok = ""
            yield ch
        else:
            tok += ch
    if tok:
        yield tok


def _wrap_para(para, max_w, out):
    line = ""
    lw = 0
    for tok in _tokens(para):
        tw = width(tok)
        if lw + tw <= max_w:
            line += tok
            lw += tw
            continue
        if tok == " ":
            # A space at a break is dropped.
            out.append(line)
            line, lw = "", 0
            continue
        if tok in _NO_START and len(line) > 1 and width(line[-1] + tok) <= max_w:
            # Carry the previous character down with the punctuation.
            prev = line[-1]
            out.append(line[:-1])
            line = prev + tok
            lw = width(line)
            continue
        if line:
            out.append(line.rstrip(" "))
        line, lw = "", 0
        if tw <= max_w:
            line, lw = tok, tw
            continue
        for ch in tok:  # a word wider than the line: cut it
            cw = width(ch)
            if lw + cw > max_w and line:
                out.append(line)
                line, lw = "", 0
            line += ch
            lw += cw
    out.append(line.rstrip(" "))


def wrap(s, max_w):
    """Lines of at most max_w pixels each."""
    if max_w < 16:
        raise ValueError("max_w too small")
    out = []
    for para in s.split("\n"):
        _wrap_para(para, max_w, out)
    return out


def draw(fb, s, x, y, color=1):
    """Draw one line with its top-left corner at (x, y); returns the end x.
    Glyph cells are blitted with 0 transparent (color 1) or inverted via
    fill: color 0 is not supported to keep the blit path simple."""
    if color != 1:
        raise ValueError("text is drawn in color 1")
    for ch in s:
        i = _index(ch)
        fb.blit((glyphs.bitmap(i), 16, LINE, framebuf.MONO_HLSB), x, y, 0)
        x += glyphs.width(i)
    return x


def draw_centered(fb, s, y, screen_w):
    w = width(s)
    if w > screen_w:
        raise TextOverflow("%r is %d px wide" % (s, w))
    return draw(fb, s, (screen_w - w) // 2, y)
