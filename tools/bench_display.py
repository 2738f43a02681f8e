"""Display figures under MicroPython: render + push of a full screen and of a
one-line change, bytes sent to the panel for each, and the heap the glyphs
and the frame buffer take (modules loaded as .mpy, as a board would).

    .venv/bin/python tools/bench_display.py
"""
import json
import os
import subprocess
import tempfile

import hostpath
from mp_runner import MPY_CROSS, run_mp

ROOT = hostpath.ROOT

MODULES = ("firmware/glyphs.py", "firmware/text.py", "firmware/screens.py",
           "firmware/messages.py", "drivers/st7565.py")
SPI_HZ = 8_000_000  # a typical ST7565R SPI clock (the datasheet allows up to 20 MHz)


def main():
    with tempfile.TemporaryDirectory() as d:
        for rel in MODULES:
            name = os.path.splitext(os.path.basename(rel))[0]
            subprocess.run([MPY_CROSS, "-o", os.path.join(d, name + ".mpy"),
                            os.path.join(ROOT, rel)], check=True)
        r = json.loads(run_mp("host_tests/mp/display_bench.py", d, heap="64k")
                       .strip().splitlines()[-1])
    wire = lambda n: n * 8 / SPI_HZ * 1000  # noqa: E731
    print("display: ST7565R 128x64, MicroPython unix port, modules as .mpy, heap 64k")
    print("full screen render (card_info zh): %.2f ms" % r["render_ms"])
    print("full screen push (driver work): %.2f ms, %d bytes (%.2f ms on SPI at %d MHz)"
          % (r["push_full_ms"], r["full_bytes"], wire(r["full_bytes"]), SPI_HZ // 10 ** 6))
    print("full screen render + push: %.2f ms" % r["full_ms"])
    print("one-line update render + push: %.2f ms, %d bytes (%.1f %% of full; %.3f ms on SPI)"
          % (r["one_line_ms"], r["one_line_bytes"],
             100.0 * r["one_line_bytes"] / r["full_bytes"], wire(r["one_line_bytes"])))
    print("push with nothing changed (diff only): %.2f ms" % r["push_nochange_ms"])
    print("heap: glyphs (%d characters) %d B + frame buffer and driver object %d B = %d B"
          " (target < 16384)" % (r["glyph_count"], r["glyph_heap"], r["framebuffer_heap"],
                                 r["glyph_heap"] + r["framebuffer_heap"]))
    print("heap: code of st7565 %d B, text %d B, screens %d B; message catalogue %d B"
          " (frozen into flash on a board, all of these drop to near 0)"
          % (r["driver_code_heap"], r["text_code_heap"], r["screens_code_heap"],
             r["messages_heap"]))


if __name__ == "__main__":
    main()
