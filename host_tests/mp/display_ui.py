"""console_ui under MicroPython: argv SHOT_DIR. Starts the UI as terminal.py
does (keys from stdin, drawn to stdout), lets the idle screen show, switches
language with 'l' typed on stdin, and prints one JSON line."""
import asyncio
import json
import sys

import console_ui


async def main():
    none = console_ui.start({"display": "none"})
    try:
        console_ui.start({"display": "bogus"})
        bad = False
    except ValueError:
        bad = True
    ui = console_ui.start({"display": "console", "screenshot": sys.argv[1]})
    for _ in range(50):
        await asyncio.sleep_ms(20)
        if ui.lang == "en" and ui.display.shots >= 2:
            break
    ui.close()
    return {"none": none is None, "bad_refused": bad, "lang": ui.lang,
            "shots": ui.display.shots}

out = asyncio.run(main())
print(json.dumps(out))
