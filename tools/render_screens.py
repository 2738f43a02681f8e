"""Render every screen, Chinese and English side by side, as PNGs.

    .venv/bin/python tools/render_screens.py            # check against docs/screens
    .venv/bin/python tools/render_screens.py --approve  # rewrite docs/screens + screens.md

docs/screens/<name>.png are the approved images: the README's gallery and
the snapshots host_tests/test_screens.py compares every render with (pixel
by pixel). After changing a message or the layout, run with --approve and
look at the images before committing them.
"""
import argparse
import os
import sys
import zlib

import hostpath
import framebuf  # the shim under CPython
import png
import screens

ROOT = hostpath.ROOT

DOCS = os.path.join(ROOT, "docs", "screens")
GAP = 8  # panel pixels between the two languages

# Plausible values for the gallery.
SAMPLE = {
    "amount": 10000, "balance": 15000, "customer": "112233445566",
    "meter": "000000000001", "digits": "00000000", "time": (2026, 11, 24, 20, 5),
    "percent": 60, "terminal": "000000000099", "version": "0.9.0",
    "pin": "1234", "tries": 2, "minutes": 15,
}
# The widest values each field can take: every screen must fit with these.
WORST = {
    "amount": -99999999, "balance": -99999999, "customer": "888888888888",
    "meter": "888888888888", "digits": "", "time": (2088, 12, 28, 20, 58),
    "percent": 100, "terminal": "888888888888", "version": "888.888.8888",
    "pin": "", "tries": 88, "minutes": 88,
}

# When the top-up flow shows each screen (for the gallery).
WHEN = {
    "idle": "Waiting for a card.",
    "about": "OK on the idle screen: the firmware version and terminal id.",
    "history": "# on the idle screen: the last top-ups, newest first (* older).",
    "no_history": "# on the idle screen before any top-up.",
    "cancelled": "Cancel on the purchase screen: nothing was sent.",
    "nothing_to_credit": "A purchase card whose purse holds 0: it would use up a count.",
    "meter_not_prepaid": "The meter's record is not a prepaid local fee control meter.",
    "meter_in_workflow": "The meter's record is still inside a replacement workflow.",
    "topup_unconfirmed": "The top-up went out but no MAC-checked read-back confirmed it.",
    "card_not_updated": "Credited, but the card left before its return file was written.",
    "reading": "A card is in; reading and checking it.",
    "card_info": "Card read and verified: the purchase to credit.",
    "progress": "Moving the credit to the meter.",
    "success": "Credit reached the meter (read back through its MACs).",
    "opening_card": "An opening card: first purchases are made at the meter.",
    "relay_tripped": "Credit added but the meter's relay is open.",
    "meter_replaced": "The card's meter was replaced and not re-registered here.",
    "meter_not_opened": "The meter says its local account is not opened.",
    "card_mismatch": "Customer or meter number on the card differs from the records.",
    "already_credited": "The card's purchase count is already on the meter.",
    "card_pulled": "The card left the slot before the write-back finished.",
    "meter_no_answer": "No reply from the meter on the RS-485 bus.",
    "count_error": "Card and meter purchase counts are 2+ apart or backwards.",
    "card_invalid": "Clone, forged purse or unknown card (authentication failed).",
    "card_superseded": "An older serial of a customer who has a reissued card.",
    "card_unreadable": "No valid ATR or file read failed.",
    "meter_unknown": "The card's meter is not one this terminal manages.",
    "meter_auth_failed": "The meter failed key authentication: no credit sent.",
    "hoarding_limit": "The meter refused: balance would pass its hoarding limit.",
    "out_of_service": "The terminal cannot work (fault).",
    "tech_pin": "A technician card is in: its PIN, masked; the card checks it (VERIFY).",
    "tech_pin_wrong": "The card refused the PIN; tries left before it blocks.",
    "tech_locked": "Three wrong PINs at this terminal: technician mode locked 15 minutes.",
    "tech_card_blocked": "The technician card blocked its PIN; the office unblocks it.",
    "tech_menu": "Technician mode: mark a meter replaced, or register its new meter.",
    "tech_customer": "Technician: the customer whose meter is concerned.",
    "tech_mark_confirm": "Technician: confirm marking the customer's meter replaced.",
    "tech_marked": "Marked: the customer's top-ups are refused until re-registration.",
    "tech_address": "Technician: the new meter's bus address (read from the bus if it can).",
    "tech_meter_number": "Technician: the new meter's number (read from the bus if it can).",
    "tech_key_kind": "Technician: the new meter's keys: derived, or a sealed key package.",
    "tech_confirm": "Technician: confirm before saving.",
    "tech_checking": "Identity authentication and a MAC-checked read-back of the new meter.",
    "tech_done": "Technician: saved; the first purchase is made at the meter.",
    "tech_auth_failed": "The new meter failed authentication under the keys: nothing saved.",
    "tech_no_meter": "The new meter did not answer on the bus: nothing saved.",
    "tech_package_missing": "No key package for the new meter in the terminal's inbox.",
    "tech_package_bad": "The key package fails its MAC (forged or another terminal's).",
    "tech_not_replaced": "Re-registration of a meter not marked replaced.",
    "tech_meter_taken": "The new meter number belongs to another record here.",
    "tech_no_customer": "The customer number is not one of this terminal's.",
    "tech_not_saved": "The flash refused the re-registration: nothing half-saved.",
    # vendor: the factory self-test (firmware/selftest.py)
    "selftest_ready": "Vendor: `* * 0` on the idle or out-of-service screen.",
    "selftest_running": "Vendor: the self-test's checks are running.",
    "selftest_display": "Vendor: after the test pattern, was it whole?",
    "selftest_keys": "Vendor: the keypad check, digits pressed so far.",
    "selftest_pass": "Vendor: every check passed (report on the serial port).",
    "selftest_fail": "Vendor: a check failed (report on the serial port).",
}


class Panel(framebuf.FrameBuffer):
    def __init__(self):
        self.buffer = bytearray(128 * 64 // 8)
        super().__init__(self.buffer, 128, 64, framebuf.MONO_VLSB)


class _Pair:
    """Two panels side by side, for one PNG per screen."""

    def __init__(self, left, right):
        self.left, self.right = left, right

    def pixel(self, x, y):
        if x < 128:
            return self.left.pixel(x, y)
        if x < 128 + GAP:
            return 0
        return self.right.pixel(x - 128 - GAP, y)


def fields_for(name, values=SAMPLE):
    return {k: values[k] for k in screens.placeholders(name)}


def render(name, lang, values=SAMPLE):
    p = Panel()
    screens.render(p, name, lang, **fields_for(name, values))
    return p


def render_pair(name, values=SAMPLE):
    return _Pair(render(name, "zh", values), render(name, "en", values))


def encode(name):
    return png.encode(render_pair(name), 2 * 128 + GAP, 64)


def decode(data):
    """PNG bytes as written by png.py -> (width, height, rows of 0/1 lists),
    in image pixels (scaled, with border)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            assert body[8:10] == b"\x01\x03", "expected 1-bit palette"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    rowlen = (w + 7) // 8
    rows = []
    for y in range(h):
        line = raw[y * (rowlen + 1):(y + 1) * (rowlen + 1)]
        assert line[0] == 0, "filter type"
        rows.append([(line[1 + (x >> 3)] >> (7 - (x & 7))) & 1 for x in range(w)])
    return w, h, rows


def gallery():
    lines = [
        "# The terminal's screens",
        "",
        ("What residents and technicians see on the terminal's 128x64 ST7565R "
         "panel (drivers/st7565.py: the common prepaid-terminal LCD; its page "
         "layout is framebuf's MONO_VLSB, so only changed column spans are "
         "pushed). Text uses WenQuanYi Bitmap Song 12 px glyphs, only the "
         "characters the catalogue uses (built by `tools/build_glyphs.py`). "
         "Messages: `firmware/messages.py`; layout: `firmware/screens.py`. "
         "Left: Chinese, right: English. Regenerate with "
         "`.venv/bin/python tools/render_screens.py --approve` (these images are "
         "also the snapshots `host_tests/test_screens.py` checks). Values shown "
         "are samples."),
        "",
    ]
    for name in screens.names():
        lines += ["## `%s`" % name, "", WHEN.get(name, ""), "",
                  "![%s](screens/%s.png)" % (name, name), ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--approve", action="store_true", help="rewrite docs/screens")
    ap.add_argument("--out", default=DOCS)
    args = ap.parse_args(argv)
    missing = [n for n in screens.names() if n not in WHEN]
    if missing:
        print("render_screens: no WHEN text for " + ", ".join(missing), file=sys.stderr)
        return 2
    bad = []
    for name in screens.names():
        data = encode(name)
        path = os.path.join(args.out, name + ".png")
        if args.approve:
            os.makedirs(args.out, exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            continue
        try:
            with open(path, "rb") as f:
                same = decode(f.read()) == decode(data)
        except OSError:
            same = False
        if not same:
            bad.append(name)
    if args.approve:
        with open(os.path.join(os.path.dirname(args.out), "screens.md"), "w",
                  encoding="utf-8") as f:
            f.write(gallery())
        print("approved %d screens in %s" % (len(screens.names()), args.out))
        return 0
    if bad:
        print("render_screens: differ from approved: " + ", ".join(bad), file=sys.stderr)
        return 1
    print("all %d screens match" % len(screens.names()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
