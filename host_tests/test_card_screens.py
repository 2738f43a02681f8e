"""The resident sees what a card does: the terminal under MicroPython, its
card slot open and its screen saved as PNGs, while simulated cards are
inserted; each saved screen is compared, pixel for pixel, with the same
screen rendered under CPython."""
import glob
import json
import os
import struct
import subprocess
import time
import zlib

import pytest

import hostpath  # noqa: F401
import card_files as cf
import card_model
import card_sim
import console_display
import png
import screens
import st7565
from card_sim_ctl import CUSTOMER, METER, MK_C, SERIAL, Output, free_port, make_card
from meter_sim_ctl import MeterSim
from mp_runner import MICROPYTHON, MP_PATH, ROOT

MK_M = "0123456789abcdeffedcba9876543210"  # the profile's test meter master key


def pixels(data):
    """A PNG's raw scanlines: the deflate stream may differ, the image not."""
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    return zlib.decompress(idat)


def expected(name, **fields):
    d = console_display.ConsoleDisplay(draw=False)
    screens.show(d, name, "zh", **fields)
    return pixels(png.encode(d.panel, st7565.WIDTH, st7565.HEIGHT))


class Terminal:
    """The unix board's terminal under micropython with one meter on a
    simulated bus, its card slot open and every screen saved as a PNG."""

    def __init__(self, tmp_path, meter_state, sim=None):
        keys = tmp_path / "keys.json"
        keys.write_text(json.dumps({"terminal_id": "000000000099", "mk_m": MK_M,
                                    "mk_c": MK_C.hex()}))
        meters = tmp_path / "meters.json"
        meters.write_text(json.dumps([{"address": METER, "meter_number": METER,
                                       "customer": CUSTOMER}]))
        self.shots = tmp_path / "shots"
        self.port = free_port()
        self.sim = sim  # a restart keeps the building's meters
        if sim is None:
            self.sim = MeterSim(meters=[dict(meter_state, address=METER, customer=CUSTOMER)],
                                reply_delay_ms=5)
            self.sim.start()
        self.proc = subprocess.Popen(
            [MICROPYTHON, "-X", "heapsize=512k", os.path.join(ROOT, "boards/unix/terminal.py"),
             "--bus", self.sim.bus, "--meters", str(meters), "--state", str(tmp_path / "state"),
             "--card-slot", "tcp:127.0.0.1:%d" % self.port, "--keys", str(keys), "--auto-ok",
             "--display", "none", "--screenshot", str(self.shots), "--interval", "3600"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, MICROPYPATH=MP_PATH))
        self.said = Output(self.proc.stdout)
        self.said.wait("card slot: listening on 127.0.0.1:%d" % self.port)

    def stop(self, kill=False, keep_sim=False):
        """-> everything the terminal printed, once it has stopped (kill:
        SIGKILL, a power cut: nothing runs after it)."""
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        self.proc.wait(10)
        if not keep_sim:
            self.sim.stop()
        return "\n".join(self.said.close())

    def screens(self):
        return [pixels(open(p, "rb").read())
                for p in sorted(glob.glob(str(self.shots / "screen-*.png")))]


def test_each_card_gets_its_screen(tmp_path):
    """A purchase card is credited (its screens in order, the meter's count
    and balance moved once), an opening card and a clone are refused, a
    card pulled while it is read asks to be put back."""
    term = Terminal(tmp_path, {"balance": 5000, "count": 6, "opened": True})
    said, port = term.said, term.port
    clone = card_model.Card.issued(MK_C, SERIAL, cf.PURCHASE, METER, CUSTOMER,
                                   10000, 2, key=bytes(16))  # same files, not the card's key
    good = make_card(amount=12345, count=7)
    cards = [good, make_card(card_type=cf.OPENING, count=1), clone]
    try:
        for n, card in enumerate(cards, 1):
            t0 = card_sim.T0Sim("127.0.0.1", port, card)
            t0.insert()
            said.wait("card: shown; waiting for the pull", n)
            t0.pull()
            said.wait("card: removed", n)
        t0 = card_sim.T0Sim("127.0.0.1", port, make_card())
        t0.insert(pull_after=40)  # pulled in the middle of reading
        said.wait("card: removed", 4)  # after "put the card back" has been up 3 s
        said.wait("screen: idle", 5)  # drawn (and saved) after the last card
        meter = term.sim.meter(METER)
    finally:
        out = term.stop()
    assert (meter["count"], meter["balance"]) == (7, 5000 + 12345), out
    ret = cf.parse_return(good.files[cf.SFI_RETURN])
    assert (ret["balance"], ret["count"], ret["result"]) == (5000 + 12345, 7, cf.RET_CREDITED)
    pngs = term.screens()
    reading = expected("reading")
    want = [expected("card_info", customer=CUSTOMER, meter=METER, amount=12345),
            expected("opening_card"),
            expected("card_invalid"),
            expected("card_pulled")]
    # After every "reading" comes the card's own screen, in order...
    after_reading = [pngs[i + 1] for i in range(len(pngs) - 1) if pngs[i] == reading]
    assert after_reading == want, (len(pngs), [l for l in out.splitlines() if "screen" in l])
    # ...and the purchase goes on to the outcome with the meter's new balance.
    i = pngs.index(want[0])
    assert expected("success", amount=12345, balance=5000 + 12345) in pngs[i:i + 4], out


def test_tripped_meter_gets_its_credit_and_says_power_returns_at_the_meter(tmp_path):
    """The relay is open: the credit lands, the screen says to insert the card
    at the meter, and the relay stays open (the terminal never closes it)."""
    term = Terminal(tmp_path, {"balance": -350, "count": 4, "opened": True, "relay_open": True})
    said = term.said
    card = make_card(amount=10000, count=5)
    try:
        t0 = card_sim.T0Sim("127.0.0.1", term.port, card)
        t0.insert()
        said.wait("card: shown; waiting for the pull")
        meter = term.sim.meter(METER)
        t0.pull()
        said.wait("screen: idle", 2)
    finally:
        out = term.stop()
    assert (meter["count"], meter["balance"], meter["relay_open"]) == (5, 9650, True), out
    ret = cf.parse_return(card.files[cf.SFI_RETURN])
    assert (ret["balance"], ret["count"], ret["result"]) == (9650, 5, cf.RET_CREDITED)
    assert "screen: relay_tripped" in out and "screen: success" not in out, out
    assert expected("relay_tripped", amount=10000) in term.screens()


@pytest.mark.parametrize("delay", [0.0, 0.3, 0.7, 1.1, 1.5])
def test_killed_mid_top_up_then_restarted_credits_once(tmp_path, delay):
    """The unix board's contract: killing the terminal at any moment is a
    power cut, and a restart with the same --state recovers. Killed `delay`
    s into the meter session, restarted, the same card again: the meter has
    the purchase exactly once and the card's return file says so."""
    term = Terminal(tmp_path, {"balance": 5000, "count": 6, "opened": True})
    card = make_card(amount=2500, count=7)
    try:
        t0 = card_sim.T0Sim("127.0.0.1", term.port, card)
        t0.insert()
        term.said.wait("screen: progress")
        time.sleep(delay)  # the moment of the power cut, not a wait for behaviour
        first = term.stop(kill=True, keep_sim=True)
        t0.pull()
        term = Terminal(tmp_path, None, sim=term.sim)  # the same flash image
        t0 = card_sim.T0Sim("127.0.0.1", term.port, card)
        t0.insert()
        term.said.wait("card: shown; waiting for the pull")
        meter = term.sim.meter(METER)
        t0.pull()
    finally:
        out = term.stop()
    assert (meter["count"], meter["balance"]) == (7, 5000 + 2500), (first, out)
    ret = cf.parse_return(card.files[cf.SFI_RETURN]) or {}
    assert (ret.get("count"), ret.get("balance")) == (7, 7500), (first, out)
    assert ret["result"] in (cf.RET_CREDITED, cf.RET_ALREADY), (first, out)
