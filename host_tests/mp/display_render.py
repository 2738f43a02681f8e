"""Render screens under MicroPython through the real ST7565 driver into the
emulated panel. Prints one line per screen: name lang hex-of-frame-buffer,
then a JSON summary line.

argv: [MPY_DIR [PNG_PATH]]: MPY_DIR (or "-") holds .mpy builds of the modules,
searched first, as a board would load them; PNG_PATH gets a screenshot."""
import sys

if len(sys.argv) > 1 and sys.argv[1] != "-":
    sys.path.insert(0, sys.argv[1])

import binascii
import gc
import json

gc.collect()
free0 = gc.mem_free()
import console_display  # noqa: E402
import screens  # noqa: E402

CASES = (
    ("idle", "zh", {"time": (2026, 11, 24, 20, 5)}),
    ("card_info", "en", {"customer": "112233445566", "meter": "000000000001", "amount": 10000}),
    ("relay_tripped", "zh", {"amount": -99999999}),
    ("progress", "en", {"percent": 60}),
    ("tech_meter_number", "zh", {"digits": "0123"}),
)

d = console_display.ConsoleDisplay(draw=False)
gc.collect()
out = {"panel_matches": True, "bytes": [], "import_and_display_bytes": free0 - gc.mem_free()}
for name, lang, fields in CASES:
    out["bytes"].append(screens.show(d, name, lang, **fields))
    print(name, lang, binascii.hexlify(d.buffer).decode())
    for y in range(64):
        for x in range(128):
            if d.panel.pixel(x, y) != d.pixel(x, y):
                out["panel_matches"] = False
if len(sys.argv) > 2:
    out["png_bytes"] = d.screenshot(sys.argv[2])
print(json.dumps(out))
