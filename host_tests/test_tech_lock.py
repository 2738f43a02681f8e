"""The terminal's technician lock-out (firmware/tech_lock.py) and the card's
own PIN check (VERIFY, user_card.verify_pin against the card simulator):
three wrong PINs lock, the lock survives a restart, and whatever cannot be
trusted (a damaged lock file, a clock gone backwards) means locked."""
import pytest

import card_files as cf
import card_model
import tech_lock
import user_card
from card_sim_ctl import MK_C, run_with_card


class Clock:
    def __init__(self, t=(2026, 11, 29, 20, 0, 0)):
        self.t = t

    def __call__(self):
        return self.t

    def add(self, s):
        self.t = _tuple(tech_lock.seconds(self.t) + s)


def _tuple(secs):
    import time
    return time.gmtime(secs)[0:6]


def test_seconds_match_the_calendar():
    import calendar
    for t in ((1970, 1, 1, 0, 0, 0), (2000, 2, 29, 12, 30, 5), (2026, 12, 31, 23, 59, 59),
              (2099, 3, 1, 0, 0, 0)):
        assert tech_lock.seconds(t) == calendar.timegm(t + (0, 0, 0))


def lock(tmp_path, clock):
    return tech_lock.Lockout(str(tmp_path), clock)


def test_three_wrong_lock_for_15_minutes_then_open_again(tmp_path):
    clock = Clock()
    lk = lock(tmp_path, clock)
    for n in (1, 2, 3):
        assert lk.minutes_left() == 0
        assert lk.attempt()[1] == n  # counted before the card sees the PIN
    assert lk.minutes_left() == 15
    lk2 = lock(tmp_path, clock)  # a restart: the state is on flash
    clock.add(14 * 60 + 1)
    assert lk2.minutes_left() == 1
    clock.add(59)
    assert lk2.minutes_left() == 0
    assert lk2.attempt()[1] == 1  # a fresh start after the lock was served


def test_a_good_pin_starts_the_count_again(tmp_path):
    lk = lock(tmp_path, Clock())
    lk.attempt()
    lk.attempt()
    lk.good()
    assert lk.attempt()[1] == 1


def test_a_pin_try_cut_before_the_answer_still_counts(tmp_path):
    """The try is on flash before VERIFY: a power cut after a wrong PIN
    gives no free try."""
    lk = lock(tmp_path, Clock())
    lk.attempt()
    lk.attempt()
    lk.attempt()  # the third: locked even if the answer never came back
    assert lock(tmp_path, Clock()).minutes_left() == 15


@pytest.mark.parametrize("junk", [b"", b"\x00" * 40, b"TSF\x01garbage", b"x" * 5000])
def test_a_damaged_lock_file_means_locked(tmp_path, junk):
    (tmp_path / "tech").mkdir()
    (tmp_path / "tech" / "lock").write_bytes(junk)
    assert lock(tmp_path, Clock()).minutes_left() == 15


def test_a_clock_gone_backwards_relocks_from_now(tmp_path):
    clock = Clock()
    lk = lock(tmp_path, clock)
    for _ in range(3):
        lk.attempt()
    clock.add(-3600)  # an hour back: the lock must not count as served
    assert lk.minutes_left() == 15
    clock.add(15 * 60)
    assert lk.minutes_left() == 0


def tech_card(pin="246810", tries=None):
    c = card_model.Card.technician(MK_C, bytes.fromhex("7700000000000001"), "900000000042", pin)
    if tries is not None:
        c.pin_tries = tries
    return c


def verify(card, pin):
    async def go(reader, sim):
        await reader.power_up()
        uc = user_card.UserCard(reader, MK_C)
        info = await uc.read()
        assert info.card_type == cf.TECHNICIAN and info.customer == "900000000042"
        try:
            await uc.verify_pin(pin)
            return "ok"
        except user_card.PinWrong as e:
            return "wrong %d" % e.tries
        except user_card.PinBlocked:
            return "blocked"
    return run_with_card(card, go)


def test_the_card_checks_its_pin_and_blocks_after_three_wrong():
    card = tech_card()
    assert verify(card, "111111") == "wrong 2"
    assert verify(card, "246810") == "ok"  # a good PIN resets the card's count
    assert card.pin_tries == 3
    assert [verify(card, "111111") for _ in range(3)] == ["wrong 2", "wrong 1", "wrong 0"]
    assert verify(card, "246810") == "blocked"  # even the right PIN, once blocked


def test_pin_tries_survive_in_the_card_json():
    card = tech_card(tries=1)
    again = card_model.Card.from_json(card.to_json())
    assert (again.pin, again.pin_tries) == (b"246810", 1)


def test_the_office_resets_the_pin_only_with_a_good_mac():
    card = tech_card(tries=0)
    kc = card_model.kdf(MK_C, card.serial)
    card.apdu(b"\x00\xa4\x00\x00\x02\xdf\x01")
    rc = card.apdu(b"\x00\x84\x00\x00\x04")[:4]
    hdr = b"\x04\x2c\x00\x01\x0a"
    assert card.apdu(hdr + b"135790" + b"\x00" * 4) == card_model.SW_MAC
    rc = card.apdu(b"\x00\x84\x00\x00\x04")[:4]
    assert card.apdu(hdr + b"135790" + card_model.mac(kc, rc + hdr + b"135790")) == b"\x90\x00"
    assert (card.pin, card.pin_tries) == (b"135790", 3)


class _Direct:
    """card_tool's `transmit` straight into a card model (61xx answered)."""

    def __init__(self, card):
        self.card = card

    def transmit(self, apdu):
        r = self.card.apdu(apdu)
        while r[-2] == 0x61:
            r = r[:-2] + self.card.apdu(bytes((0, 0xC0, 0, 0, r[-1])))
        return r[:-2], int.from_bytes(r[-2:], "big")


def test_the_office_issues_a_technician_card_and_sets_its_pin():
    import card_tool
    card = card_model.Card.blank(MK_C, bytes.fromhex("7700000000000009"))
    office = card_tool.Office(_Direct(card), MK_C)
    office.issue(cf.TECHNICIAN, "000000000000", "900000000042")
    office.set_pin("135790")
    assert (card.pin, card.pin_tries) == (b"135790", 3)
    assert verify(card, "135790") == "ok"  # and the terminal reads it as a technician card
    card.pin_tries = 0
    card_tool.Office(_Direct(card), MK_C).set_pin("246802")  # unblocks
    assert verify(card, "246802") == "ok"
    purchase = card_model.Card.issued(MK_C, bytes.fromhex("8800000000000009"), cf.PURCHASE,
                                      "000000000001", "112233445566", 100, 1)
    with pytest.raises(card_tool.ToolError):
        card_tool.Office(_Direct(purchase), MK_C).set_pin("123456")


def test_card_tool_pin_comes_from_stdin_never_argv():
    import card_tool
    p = card_tool.build_parser()
    with pytest.raises(SystemExit):
        p.parse_args(["--card-master-key", MK_C.hex(), "pin", "123456"])
    assert card_tool.main(["--card-master-key", MK_C.hex(), "issue", "--type", "purchase",
                           "--customer", "112233445566"]) == 2  # no meter: refused at once
