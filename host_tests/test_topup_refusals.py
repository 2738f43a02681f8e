"""Issue 10, what must not land: replays, clones, forged purses, superseded
cards, replaced meters, customer and count mismatches, opening cards,
meters not opened, the hoarding limit, a full flash. Each through the real
flow under micropython: the screen the app logged, what the card's return
file says, and the meter simulator's own balance and count (nothing
credited but the purchases sold, exactly once)."""
import os

import pytest

import card_files as cf
from topup_ctl import (RET_ALREADY, RET_COUNT_ERROR, RET_CREDITED, RET_REFUSED, Purchase, Rig,
                       meter_state)

M = ["%012d" % i for i in range(1, 14)]



@pytest.fixture(scope="module")
def rig(mpy):
    meters = [meter_state(a) for a in M]
    meters[7]["opened"] = False  # M[7]: not opened yet
    meters[8]["hoarding_limit"] = 12000  # M[8]: near its hoarding limit
    meters[9]["count"] = 5  # M[9]: count errors both ways
    with Rig(meters, mpy=mpy, mitm=True) as r:
        r.boot()
        yield r


def screens(logs):
    return [line[len("screen: "):] for line in logs if line.startswith("screen: ")]


def untouched(rig, meter):
    st = rig.sim.meter(meter)
    bal0, cnt0 = rig.initial[meter]
    landed = [p for p in rig.sold[meter] if p.count <= st["count"]]
    assert (st["balance"], st["count"]) == (bal0 + sum(p.amount for p in landed),
                                            cnt0 + len(landed)), (st, rig.initial[meter])


def refused(rig, p, screen, frames=None):
    """Insert p; the app shows `screen`, the meter gets nothing, and (with
    frames) the bus carried exactly that many frames."""
    rig.mitm.set_plan({})
    logs = rig.session(p)
    assert screen in screens(logs), logs
    assert not any(line.startswith("meter: credited") for line in logs), logs
    if frames is not None:
        assert len(rig.mitm.requests) == frames, rig.mitm.requests
    untouched(rig, p.meter)
    rig.check(settled=False, only=(p.meter,))
    return logs


def test_replay_is_already_credited_never_twice(rig):
    p = rig.sell(M[0])
    assert "success" in screens(rig.session(p))
    st = rig.check(only=(M[0],))
    for _ in range(3):  # the same card again, and again
        logs = rig.session(p)
        assert "already_credited" in screens(logs), logs
        assert p.returned()["result"] == RET_ALREADY
    assert rig.check(only=(M[0],)) == st or rig.check(only=(M[0],))[M[0]] == st[M[0]]
    # an older card replayed after a newer purchase: nothing
    p2 = rig.sell(M[0], serial=p.serial)
    rig.session(p2)
    rig.check(only=(M[0],))
    logs = rig.session(p)  # count 2, the meter holds 3 now
    assert "count_error" in screens(logs), logs
    rig.check(settled=False, only=(M[0],))


def test_clone_is_refused_before_the_meter(rig):
    p = rig.sell(M[1], record=False)
    p.card._key = os.urandom(16)  # the files, not the key
    refused(rig, p, "card_invalid", frames=0)
    assert p.returned() is None


def test_forged_purse_is_refused(rig):
    p = rig.sell(M[1], record=False)
    purse = bytearray(p.card.files[cf.SFI_PURSE])
    purse[0:4] = (int.from_bytes(purse[0:4], "little") * 10).to_bytes(4, "little")
    p.card.files[cf.SFI_PURSE] = bytes(purse)
    refused(rig, p, "card_invalid", frames=0)


def test_reissued_card_supersedes_the_old_one(rig):
    old = rig.sell(M[2])
    rig.session(old)
    rig.check(only=(M[2],))
    new = rig.sell(M[2], card_type=cf.REISSUED)  # the office reissues: new serial
    assert "success" in screens(rig.session(new))
    rig.check(only=(M[2],))
    # the old card, sold again at the office: refused for good
    again = rig.sell(M[2], serial=old.serial, record=False,
                     count=new.count + 1)
    refused(rig, again, "card_superseded", frames=0)
    # and the new one keeps working
    p = rig.sell(M[2], serial=new.serial, card_type=cf.REISSUED)
    rig.session(p)
    rig.check(only=(M[2],))


def test_meter_replaced_behind_the_terminal(rig):
    """The meter is swapped (new ESAM: its key is not the terminal's) and
    opened at the meter: authentication fails, nothing is credited, and the
    terminal does not hammer the ESAM (15 failures lock it for the day)."""
    rig.sim.control("replace", address=M[3], new_address=M[3],
                    key="00112233445566778899aabbccddeeff")
    rig.sim.control("card_at_meter", address=M[3], customer=rig.meter_state_of(M[3])["customer"])
    st = rig.sim.meter(M[3])
    rig.initial[M[3]] = (st["balance"], st["count"])
    p = rig.sell(M[3], record=False, count=st["count"] + 1)
    refused(rig, p, "meter_auth_failed")
    assert rig.sim.meter(M[3])["failures"] <= 2


def test_replaced_meter_not_opened(rig):
    rig.sim.control("replace", address=M[4], new_address=M[4])  # same key batch
    st = rig.sim.meter(M[4])
    rig.initial[M[4]] = (st["balance"], st["count"])
    p = rig.sell(M[4], record=False, count=1)
    refused(rig, p, "meter_not_opened")


def test_customer_that_does_not_match(rig):
    # the card's customer is not the record's: refused before the meter
    p = rig.sell(M[5], customer="999999999999", record=False)
    refused(rig, p, "card_mismatch", frames=0)
    # the meter's customer is not the card's (records agree with the card):
    # the MAC-checked read-back shows it, no top-up frame
    rig.sim.set(M[6], customer="888888888888")
    p = rig.sell(M[6], record=False)
    logs = refused(rig, p, "card_mismatch")
    assert "070102ff" not in [di for _, _, di in rig.mitm.requests], logs


@pytest.mark.parametrize("delta", [2, 3, -1, 0])
def test_card_count_not_the_next_one(rig, delta):
    """Card count = meter + 2, + 3 or - 1: count error, nothing sent, the
    return file says so with the meter's balance and count. (+0 is the
    replay: already credited.)"""
    meter = M[9]
    st = rig.sim.meter(meter)
    p = rig.sell(meter, record=False, count=st["count"] + delta,
                 serial=bytes.fromhex("8899000000000009"))  # one card, sold again
    rig.mitm.set_plan({})
    logs = rig.session(p)
    assert "070102ff" not in [di for _, _, di in rig.mitm.requests], logs
    untouched(rig, meter)
    r = p.returned()
    if delta == 0:
        assert "already_credited" in screens(logs), logs
        assert r["result"] == RET_ALREADY
    else:
        assert "count_error" in screens(logs), logs
        assert r["result"] == RET_COUNT_ERROR
    assert (r["balance"], r["count"]) == (st["balance"], st["count"])


def test_opening_card_is_refused(rig):
    p = rig.sell(M[10], card_type=cf.OPENING, record=False)
    refused(rig, p, "opening_card", frames=0)
    assert p.returned() is None


def test_meter_not_opened(rig):
    p = rig.sell(M[7], record=False)
    refused(rig, p, "meter_not_opened")


def test_hoarding_limit_refused_and_told(rig):
    """Over the hoarding limit: the frame is sent and refused; the card's
    return file says refused, with the meter's unchanged balance."""
    p = rig.sell(M[8], amount=5000, record=False)  # 10000 + 5000 > 12000
    refused(rig, p, "hoarding_limit")
    r = p.returned()
    st = rig.sim.meter(M[8])
    assert r["result"] == RET_REFUSED and (r["balance"], r["count"]) == (st["balance"],
                                                                        st["count"])
    ok = rig.sell(M[8], amount=2000, serial=p.serial)  # within the limit: credited
    rig.session(ok)
    rig.check(only=(M[8],))
    assert ok.returned()["result"] == RET_CREDITED


def test_unknown_meter(rig):
    q = Purchase("000000000077", "100000000077", 5000, 2, rig.next_serial())
    rig.mitm.set_plan({})
    logs = rig.session(q)
    assert "meter_unknown" in screens(logs), logs
    assert rig.mitm.requests == []
    rig.check(settled=False, only=("000000000077",))


def test_tripped_relay_credited_but_never_closed(rig):
    meter = M[11]
    rig.sim.control("trip", address=meter)
    p = rig.sell(meter)
    logs = rig.session(p)
    assert "relay_tripped" in screens(logs), logs
    rig.check(only=(meter,))
    assert rig.sim.meter(meter)["relay_open"]  # only a card at the meter closes it


def test_a_stale_reissued_card_does_not_lock_out_the_current_one(rig):
    """The office reissued twice (R1, then R2, both new serials). R2 is in
    use here; R1 turns up later (its purchase long on the meter). It must
    get nothing, and must not make R2 "superseded": R2's next purchase
    still lands."""
    meter = M[10]
    rig.sim.set(meter, opened=True)
    a = rig.sell(meter)
    rig.session(a)
    r1 = rig.sell(meter, card_type=cf.REISSUED, record=False, count=a.count)  # stale copy
    r2 = rig.sell(meter, card_type=cf.REISSUED)
    assert "success" in screens(rig.session(r2))
    rig.check(only=(meter,))
    logs = rig.session(r1)  # the stale reissued card: its count is on the meter
    assert not any(line.startswith("meter: credited") for line in logs), logs
    rig.check(only=(meter,))
    nxt = rig.sell(meter, serial=r2.serial, card_type=cf.REISSUED)
    logs = rig.session(nxt)
    assert "success" in screens(logs), logs
    rig.check(only=(meter,))


@pytest.mark.parametrize("minutes", [0.0002, 0.0005, 0.001])
def test_meter_session_expiring_in_the_middle(rig, minutes):
    """The meter's ESAM session lasts 12, 30 or 60 ms: it runs out between
    the terminal's frames. Whatever the terminal says, the meter holds the
    purchase at most once; with a normal session again, exactly once."""
    meter = M[12]
    rig.sim.set(meter, session_minutes=minutes)
    p = rig.sell(meter, serial=bytes.fromhex("8899000000000013"))
    rig.mitm.set_plan({})
    rig.session(p)
    rig.check(settled=False, only=(meter,))
    rig.sim.set(meter, session_minutes=5)
    rig.settle_card(p)
    rig.check(only=(meter,))
    assert rig.sim.meter(meter)["failures"] <= 2


def test_overdrawn_meter_balance_is_signed_on_the_card(rig):
    """A meter in overdraft: the credit lands, and the card's return file
    carries the meter's balance as a signed number, still negative if the
    purchase does not cover the debt."""
    meter = M[12]
    serial = bytes.fromhex("8899000000000013")
    rig.sim.set(meter, balance=-12345, session_minutes=5)
    st = rig.sim.meter(meter)
    rig.initial[meter] = (st["balance"], st["count"])
    rig.sold[meter] = []
    p = rig.sell(meter, amount=5000, serial=serial)
    rig.settle_card(p)
    rig.check(only=(meter,))
    assert p.returned()["balance"] == -7345


def test_card_refusing_the_write_back(rig):
    """A card that refuses every secure write (6988): the credit lands once,
    the resident is told the card was not updated, and each time the card
    comes back it is "already credited", never credited again."""
    meter = M[12]
    serial = bytes.fromhex("8899000000000013")
    st = rig.sim.meter(meter)
    rig.initial[meter] = (st["balance"], st["count"])
    rig.sold[meter] = []
    p = rig.sell(meter, serial=serial)
    p.card.refuse_mac = True
    for _ in range(3):
        logs = rig.session(p)
        assert "card_not_updated" in screens(logs), logs
        assert p.returned() is None
        rig.check(settled=False, only=(meter,))
    st = rig.sim.meter(meter)
    assert st["count"] == p.count and st["balance"] == rig.initial[meter][0] + p.amount
    p.card.refuse_mac = False
    rig.settle_card(p)
    rig.check(only=(meter,))
