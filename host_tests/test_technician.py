"""Technician mode end to end on the unix board (issue 11): the terminal
under micropython with its keypad on stdin, the meter simulator on its bus,
technician and purchase cards from the card simulator. Judged by the
simulators' state (the meter's count and balance, the card's PIN tries)
and by what the terminal journals and shows."""
import json
import os
import subprocess
import sys

import pytest

import card_model
import card_sim
import keystore
from card_sim_ctl import CUSTOMER, METER, MK_C, Output, free_port, make_card
from meter_sim_ctl import MeterSim
from mp_runner import MICROPYTHON, MP_PATH, ROOT

MK_M = bytes.fromhex("0123456789abcdeffedcba9876543210")
K_T = bytes.fromhex("00112233445566778899aabbccddeeff")  # the test store's transport key
TECH_SERIAL = bytes.fromhex("7700000000000001")
TECH_ID = "900000000042"
PIN = "246810"
NEW = "000000000777"  # the replacement meter's number and bus address
OTHER_KM = bytes.fromhex("a5a5a5a55a5a5a5a0f0f0f0ff0f0f0f0")  # a meter of another key batch


def tech_card(pin=PIN, serial=TECH_SERIAL):
    return card_model.Card.technician(MK_C, serial, TECH_ID, pin)


def make_keystore(path):
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_keystore.py"), "create",
                    str(path), "--dev", "--transport", K_T.hex()], check=True,
                   capture_output=True)


class Terminal:
    """The unix board's terminal with the keypad on stdin."""

    def __init__(self, tmp_path, sim, meters):
        self.tmp = tmp_path
        self.keystore = tmp_path / "keystore.bin"
        if not self.keystore.exists():
            make_keystore(self.keystore)
        mfile = tmp_path / "meters.json"
        mfile.write_text(json.dumps(meters))
        self.inbox = tmp_path / "state" / "inbox"
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.sim = sim
        self.port = free_port()
        self.proc = subprocess.Popen(
            [MICROPYTHON, "-X", "heapsize=512k", os.path.join(ROOT, "boards/unix/terminal.py"),
             "--bus", sim.bus, "--meters", str(mfile), "--state", str(tmp_path / "state"),
             "--card-slot", "tcp:127.0.0.1:%d" % self.port, "--keystore", str(self.keystore),
             "--display", "none", "--keypad", "stdin", "--lang", "en", "--interval", "3600"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=dict(os.environ, MICROPYPATH=MP_PATH))
        self.out = Output(self.proc.stdout)
        self.at = self.out.after("card slot: listening")
        self.card = None

    def wait(self, text, timeout=60, exact=False):
        self.at = self.out.after(text, self.at, timeout, exact)

    def screen(self, name, timeout=60):
        self.wait("screen: " + name, timeout, exact=True)

    def type(self, keys):
        self.proc.stdin.write(keys)
        self.proc.stdin.flush()

    def insert(self, card):
        self.card = card_sim.T0Sim("127.0.0.1", self.port, card)
        self.card.insert()

    def pull(self):
        self.card.pull()
        self.wait("card: removed")
        self.screen("idle")  # the slot released: ready for the next card

    def top_up(self, card):
        """A resident's card: -> the screen it ended on."""
        self.insert(card)
        start = self.at
        while True:
            self.at = self.out.after("", self.at)  # the next line
            line = self.out.lines[self.at - 1]
            if line == "screen: card_info":
                self.type("\r")
            if line == "card: shown; waiting for the pull":
                break
        shown = [s for s in self.out.lines[start:self.at] if s.startswith("screen: ")][-1]
        self.pull()
        return shown[len("screen: "):]

    def enter_technician(self, pin=PIN, card=None):
        self.insert(card or tech_card())
        self.screen("tech_pin")
        self.type(pin + "\r")

    def stop(self, kill=False):
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        self.proc.wait(10)
        return self.out.text()


def seal_package(inbox, meter, k_m, k_t=K_T):
    """The office's tool writes <meter>.key into the inbox (keys on stdin)."""
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "work_order.py"), "package",
                    "--meter", meter, "--keys", "-", "--out", str(inbox)], check=True,
                   input=json.dumps({"km": k_m.hex(), "transport": k_t.hex()}), text=True,
                   capture_output=True)


def events(text, action):
    return [ln for ln in text.splitlines()
            if ln.startswith("event: technician") and "action=%s " % action in ln + " "]


@pytest.fixture
def building(tmp_path):
    sim = MeterSim(meters=[{"address": METER, "customer": CUSTOMER, "balance": 5000,
                            "count": 6}], reply_delay_ms=5)
    sim.start()
    term = Terminal(tmp_path, sim, [{"address": METER, "customer": CUSTOMER}])
    yield term
    if term.proc.poll() is None:
        term.stop()
    sim.stop()


def mark_replaced(term):
    term.enter_technician()
    term.screen("tech_menu")
    term.type("1")
    term.screen("tech_customer")
    term.type(CUSTOMER + "\r")
    term.screen("tech_mark_confirm")
    term.type("\r")
    term.screen("tech_marked")
    term.pull()


def register(term, kind, typed_address=None):
    """Menu 2 for CUSTOMER: the address and number as the bus says them
    (confirmed with OK) or typed; kind "1" derived, "2" package. -> the
    screen it ended on."""
    term.enter_technician()
    term.screen("tech_menu")
    term.type("2")
    term.screen("tech_customer")
    term.type(CUSTOMER + "\r")
    term.screen("tech_address")
    if typed_address is not None:
        term.type("\x7f" * 12 + typed_address)
    term.type("\r")
    term.screen("tech_meter_number")
    term.type("\r")
    term.screen("tech_key_kind")
    term.type(kind)
    term.wait("screen: tech_")
    name = term.out.lines[term.at - 1].split("screen: ")[1]
    if name == "tech_confirm":
        term.type("\r")
        term.screen("tech_checking")
        term.wait("screen: tech_")
        name = term.out.lines[term.at - 1].split("screen: ")[1]
    term.pull()
    return name


@pytest.mark.parametrize("kind", ["derived", "package"])
def test_replace_reregister_open_at_meter_then_top_up(building, kind):
    """The whole field rule: marked replaced, the resident is refused; the
    new meter re-registered (read from the bus, authenticated); refused
    until its account is opened at the meter; then a top-up lands once,
    counting on from the new meter's count."""
    term, sim = building, building.sim
    mark_replaced(term)
    assert term.top_up(make_card(count=7)) == "meter_replaced"
    assert sim.meter(METER)["count"] == 6  # nothing moved

    key = None if kind == "derived" else OTHER_KM.hex()
    sim.control("replace", address=METER, new_address=NEW, key=key)
    if kind == "package":
        seal_package(term.inbox, NEW, OTHER_KM)
    assert register(term, "1" if kind == "derived" else "2") == "tech_done"

    # Awaiting the opening purchase at the meter: the old card's meter
    # number is gone, a card for the new meter is refused until opened.
    card = make_card(meter=NEW, count=1, amount=3000, serial=bytes.fromhex("8800000000000002"))
    assert term.top_up(card) == "meter_not_opened"
    assert sim.meter(NEW)["count"] == 0
    sim.control("card_at_meter", address=NEW, customer=CUSTOMER)
    assert term.top_up(card) == "success"
    m = sim.meter(NEW)
    assert (m["count"], m["balance"]) == (1, 5000 + 3000)
    assert term.top_up(card) == "already_credited"  # the same purchase twice lands once
    assert sim.meter(NEW)["balance"] == 8000
    out = term.stop()
    assert PIN not in out  # the PIN is typed, masked, and sent to the card only
    ev = events(out, "registered")
    assert len(ev) == 1 and "meter=%s" % NEW in ev[0] and "old_meter=%s" % METER in ev[0]
    assert "key=%s" % kind in ev[0] and "card=%s" % TECH_SERIAL.hex() in ev[0]
    assert "tech=%s" % TECH_ID in ev[0]
    assert len(events(out, "replaced")) == 1 and len(events(out, "enter")) == 2
    stored = keystore.KeyStore.load(str(term.keystore)).overrides()
    assert stored == ([NEW] if kind == "package" else [])
    # Restarted with the same meters file: the poll follows the customer to
    # the new meter (the old one's silence would be a false alarm)
    term2 = Terminal(term.tmp, sim, [{"address": METER, "customer": CUSTOMER}])
    try:
        term2.wait("meter         balance/yuan")
        term2.wait(NEW)  # the table's next line, once it is printed
        table = term2.out.lines[term2.at - 2:term2.at]
    finally:
        term2.stop()
    assert table[0].startswith("meter         balance/yuan"), table  # one meter: the new
    assert table[1].startswith(NEW + "  ") and "80.00" in table[1], table


def test_three_wrong_pins_lock_technician_mode_across_a_restart(building, tmp_path):
    term = building
    card = tech_card()
    term.insert(card)
    for n in (1, 2):
        term.screen("tech_pin")
        term.type("111111\r")
        term.screen("tech_pin_wrong")
        term.type("\r")
    term.screen("tech_pin")
    term.type("111111\r")
    term.screen("tech_locked")
    term.pull()
    assert card.pin_tries == 0  # the card blocked itself too
    # Another card with the right PIN, after a power cut: still locked.
    term.stop(kill=True)
    term2 = Terminal(tmp_path, term.sim, [{"address": METER, "customer": CUSTOMER}])
    try:
        good = tech_card(serial=bytes.fromhex("7700000000000002"))
        term2.insert(good)
        term2.screen("tech_locked")
        term2.pull()
        assert good.pin_tries == 3  # its PIN was never even asked for
        assert term2.top_up(make_card(count=7)) == "success"  # residents are not locked out
    finally:
        out = term.out.text() + term2.stop()
    assert len(events(out, "pin_wrong")) == 3 and len(events(out, "locked")) == 2
    assert not events(out, "enter")


def test_a_cloned_technician_card_gets_no_pin_prompt(building):
    term = building
    clone = card_model.Card.technician(MK_C, TECH_SERIAL, TECH_ID, PIN, key=bytes(range(16)))
    term.insert(clone)
    term.wait("card: shown; waiting for the pull")
    assert "screen: tech_pin" not in term.out.lines
    assert "screen: card_invalid" in term.out.lines
    term.pull()


def test_blocked_card_is_refused(building):
    term = building
    card = tech_card()
    card.pin_tries = 0
    term.enter_technician(card=card)
    term.screen("tech_card_blocked")
    term.pull()


@pytest.mark.parametrize("forgery", ["other_terminal", "altered", "other_meter", "missing"])
def test_forged_package_is_refused_and_nothing_saved(building, forgery):
    """A package sealed under another terminal's transport key, altered, or
    sealed for another meter (a valid one renamed) is refused; so is none
    at all. The customer stays replaced, no key is stored."""
    term, sim = building, building.sim
    mark_replaced(term)
    sim.control("replace", address=METER, new_address=NEW, key=OTHER_KM.hex())
    path = term.inbox / ("%s.key" % NEW)
    if forgery == "other_terminal":
        seal_package(term.inbox, NEW, OTHER_KM, k_t=bytes(range(16)))
    elif forgery == "altered":
        seal_package(term.inbox, NEW, OTHER_KM)
        b = bytearray(bytes.fromhex(path.read_text()))
        b[10] ^= 1  # one bit of the encrypted key
        path.write_text(b.hex())
    elif forgery == "other_meter":
        seal_package(term.inbox, "000000000778", OTHER_KM)
        (term.inbox / "000000000778.key").rename(path)
    want = "tech_package_missing" if forgery == "missing" else "tech_package_bad"
    assert register(term, "2") == want
    assert term.top_up(make_card(count=7)) == "meter_replaced"
    out = term.stop()
    assert keystore.KeyStore.load(str(term.keystore)).overrides() == []
    assert not events(out, "registered")
    assert len(events(out, "register_failed")) == (forgery != "missing")


def test_new_meter_whose_keys_do_not_authenticate_is_not_saved(building):
    """The new meter is of another batch but registered as derived: its
    identity authentication fails, nothing is saved."""
    term, sim = building, building.sim
    mark_replaced(term)
    sim.control("replace", address=METER, new_address=NEW, key=OTHER_KM.hex())
    assert register(term, "1") == "tech_auth_failed"
    assert term.top_up(make_card(count=7)) == "meter_replaced"
    card = make_card(meter=NEW, count=1, serial=bytes.fromhex("8800000000000002"))
    assert term.top_up(card) == "meter_unknown"
    out = term.stop()
    assert "register_failed" in out and not events(out, "registered")


def test_pulling_the_card_ends_technician_mode(building):
    term = building
    term.enter_technician()
    term.screen("tech_menu")
    term.type("2")
    term.screen("tech_customer")
    term.type("1122")
    term.pull()  # in the middle of typing: back to idle
    term.type("1")  # no technician mode any more: the key goes nowhere
    assert term.top_up(make_card(count=7)) == "success"
