"""Display figures under MicroPython (run by tools/bench_display.py).
argv: MPY_DIR. Prints one JSON line."""
import sys

sys.path.insert(0, sys.argv[1])

import gc  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402


class NullSPI:
    """A bus that costs nothing: the figures are the driver's own work."""

    def write(self, buf):
        pass


def pin(v=None):
    return 1


def heap_of(what):
    gc.collect()
    before = gc.mem_free()
    obj = what()
    gc.collect()
    return obj, before - gc.mem_free()


glyphs, glyph_bytes = heap_of(lambda: __import__("glyphs"))
st7565, driver_code = heap_of(lambda: __import__("st7565"))
d, fb_bytes = heap_of(lambda: st7565.ST7565(NullSPI(), pin, pin, pin))
_, text_code = heap_of(lambda: __import__("text"))
_, messages_bytes = heap_of(lambda: __import__("messages"))
screens, screens_code = heap_of(lambda: __import__("screens"))

F = {"customer": "112233445566", "meter": "000000000001", "amount": 10000}
N = 20


def timed(fn):
    t = time.ticks_us()
    for i in range(N):
        fn(i)
    return time.ticks_diff(time.ticks_us(), t) / N / 1000


render_ms = timed(lambda i: screens.render(d, "card_info", "zh", **F))
push_full_ms = timed(lambda i: d.show(full=True))
full_bytes = d.show(full=True)
both_full_ms = timed(lambda i: (screens.render(d, "card_info", "zh", **F), d.show(full=True)))


def one_line(i):
    screens.render(d, "card_info", "zh", **dict(F, amount=10000 + 50 * (i % 2 + 1)))
    d.show()


screens.render(d, "card_info", "zh", **F)
d.show()
one_line_ms = timed(one_line)
screens.render(d, "card_info", "zh", **F)
d.show()
screens.render(d, "card_info", "zh", **dict(F, amount=10050))
line_bytes = d.show()
screens.render(d, "card_info", "zh", **dict(F, amount=10050))
push_nochange_ms = timed(lambda i: d.show())

print(json.dumps({
    "glyph_count": glyphs.count(), "glyph_heap": glyph_bytes, "framebuffer_heap": fb_bytes,
    "driver_code_heap": driver_code, "text_code_heap": text_code,
    "screens_code_heap": screens_code, "messages_heap": messages_bytes,
    "render_ms": render_ms, "push_full_ms": push_full_ms, "full_ms": both_full_ms,
    "full_bytes": full_bytes, "one_line_ms": one_line_ms, "one_line_bytes": line_bytes,
    "push_nochange_ms": push_nochange_ms,
}))
