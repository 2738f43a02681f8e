"""The whole terminal on the unix board, under the MicroPython unix port.

  micropython boards/unix/terminal.py --bus tcp:HOST:PORT | --bus /dev/pts/N
      --meters FILE [--once] [--baud 2400] [--interval S]

--meters is JSON: a list of objects with at least "address" (12 digits).
--once polls every meter once, prints the screen and exits 0.

Card slot (card_slot.py): --card-slot tcp:HOST:PORT --keystore FILE listens
for a card simulator (a connection = a card inserted); each card is read,
authenticated with the key store's MK_C and printed. With a card slot,
--bus and --meters may be left out.

Display (console_ui.py): --display console|none (console when stdout is a
tty, except with --once) draws the 128x64 panel at the top of the console
and takes keys from stdin (digits, Enter = OK, Esc or c = cancel, l =
language); --screenshot DIR saves every screen pushed as a PNG there.
"""
import sys

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
for _sub in ("/../../firmware", "/../../drivers"):
    if _HERE + _sub not in sys.path:
        sys.path.append(_HERE + _sub)

import asyncio
import json
import time

import board
import meter_items
from meter import MeterClient

# A string of its own: the MicroPython unix port keeps no module docstring.
USAGE = """usage: micropython boards/unix/terminal.py --bus BUS --meters FILE [options]
  --bus tcp:HOST:PORT | /dev/pts/N   the meter bus (RS-485 converter, PTY, adapter)
  --meters FILE                      JSON list of {"address": "12 digits"}
  --once                             poll every meter once, print, exit 0
  --baud N                           bus speed (2400, 8E1)
  --interval S                       seconds between polls (5)
  --card-slot tcp:HOST:PORT          listen for cards (a connection = a card)
  --keystore FILE                    the terminal's key store (with --card-slot)
  --display console|none             the panel on the console (console on a tty)
  --screenshot DIR                   save every screen pushed as a PNG"""


class UsageError(Exception):
    pass


def parse_args(argv):
    opts = {"bus": None, "meters": None, "once": False, "baud": 2400, "interval": 5,
            "card-slot": None, "keystore": None, "display": None, "screenshot": None}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            raise UsageError("")
        if a == "--once":
            opts["once"] = True
        elif a in ("--bus", "--meters", "--baud", "--interval", "--card-slot", "--keystore",
                   "--display", "--screenshot"):
            if i + 1 >= len(argv):
                raise UsageError(a + " needs a value")
            i += 1
            opts[a[2:]] = argv[i]
        else:
            raise UsageError("unknown option " + a)
        i += 1
    if opts["display"] not in (None, "console", "none"):
        raise UsageError("--display is console or none")
    if opts["card-slot"] and not opts["keystore"]:
        raise UsageError("--card-slot needs --keystore (the card master key)")
    if (opts["bus"] or not opts["card-slot"]) and (not opts["bus"] or not opts["meters"]):
        raise UsageError("--bus and --meters are required")
    try:
        opts["baud"] = int(opts["baud"])
        opts["interval"] = int(opts["interval"])
    except ValueError:
        raise UsageError("--baud and --interval take whole numbers")
    return opts


def load_meters(path):
    """The meters this terminal manages, from the configuration file."""
    with open(path) as f:
        meters = json.load(f)
    out = []
    for m in meters:
        a = m.get("address") if isinstance(m, dict) else None
        if not isinstance(a, str) or len(a) != 12 or not a.isdigit():
            raise UsageError("meter address must be 12 digits: %r" % (a,))
        out.append(a)
    return out


async def poll(client, addresses):
    """One pass over the bus: (address, status dict or error text)."""
    rows = []
    for a in addresses:
        try:
            rows.append((a, await client.status(a)))
        except Exception as e:  # one meter's trouble must not stop the poll
            rows.append((a, "%s: %s" % (type(e).__name__, e)))
    return rows


def screen(rows):
    lines = ["meter         balance/yuan  count  relay"]
    for a, st in rows:
        if isinstance(st, dict):
            lines.append("%s  %12s  %5d  %s%s" % (
                a, meter_items.hundredths(st["balance"]), st["count"],
                "OPEN" if st["relay_open"] else "closed",
                "" if st["opened"] else "  (not opened)"))
        else:
            lines.append("%s  %s" % (a, st))
    return "\n".join(lines)


async def start_card_slot(opts, ui=None):
    # --- card slot (issue 5): read and show inserted cards ---
    import card_slot
    from keystore import KeyStore, KeyStoreError

    try:
        keys = KeyStore.load(opts["keystore"])
        card_slot.parse_spec(opts["card-slot"])
    except (KeyStoreError, ValueError) as e:
        raise UsageError(str(e))
    await card_slot.serve(opts["card-slot"], keys, ui=ui)


def start_display(opts):
    # --- display (issue 6): the panel and keys on the console ---
    import console_ui
    return console_ui.start(opts)


async def run(opts):
    ui = start_display(opts)
    if opts["card-slot"]:
        await start_card_slot(opts, ui)
        if not opts["bus"]:
            await asyncio.Event().wait()  # the card slot alone, until Ctrl-C
    addresses = load_meters(opts["meters"])
    client = MeterClient(board.rs485_bus(opts["bus"], opts["baud"]))
    while True:
        rows = await poll(client, addresses)
        if opts["once"]:
            print(screen(rows))
            return
        t = time.localtime()
        if ui and ui.drawing:  # the table goes under the panel
            ui.table("%04d-%02d-%02d %02d:%02d:%02d\n%s" % (t[0:6] + (screen(rows),)))
            await asyncio.sleep(opts["interval"])
            continue
        print("\x1b[2J\x1b[H%04d-%02d-%02d %02d:%02d:%02d\n%s" % (t[0:6] + (screen(rows),)))
        await asyncio.sleep(opts["interval"])


def main(argv):
    try:
        opts = parse_args(argv)
        asyncio.run(run(opts))
    except UsageError as e:
        print(("terminal: %s\n" % e if str(e) else "") + USAGE)
        return 2 if str(e) else 0  # --help is not an error
    except OSError as e:
        print("terminal: cannot open the bus: %s" % e)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
