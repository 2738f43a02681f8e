"""Issue 10, a lying bus: a man in the middle between the terminal (the real
flow under micropython) and the meter simulator, with its own frame parsing.
At every frame of a top-up session it drops the request (the meter never
hears it), swallows the meter's reply (the meter acted, the terminal hears
nothing), answers a 03 frame itself with 83 "done" or C3 "repeat top-up",
garbles a reply's data behind a good checksum, or silences the meter from
that frame on. Then the resident comes back (the meter honest again) until
the card is settled: the purchase is on the meter exactly once."""
import pytest

from topup_ctl import Mitm, Rig, meter_state

METER = "000000000001"



def _prepare(rig):
    rig.boot()
    p = rig.sell(METER)
    rig.mitm.set_plan({})
    rig.session(p)
    rig.check()
    frames = list(rig.mitm.requests)
    rig.term.cmd("halt")
    st = rig.sim.meter(METER)
    return rig.snapshot("prepared.img"), p.serial, (st["balance"], st["count"]), frames


def _one(rig, image, serial, start, plan, silent_from=None):
    rig.restore(image)
    rig.sim.set(METER, balance=start[0], count=start[1])
    rig.initial[METER] = start
    rig.sold[METER] = []
    p = rig.sell(METER, serial=serial)
    rig.boot()
    rig.mitm.set_plan(plan, silent_from)
    logs = rig.session(p)
    applied = list(rig.mitm.done)
    rig.mitm.set_plan({})
    rig.settle_card(p)
    rig.check()
    return logs, applied


@pytest.mark.parametrize("action", Mitm.ACTIONS + ("silent_from",))
def test_every_frame_of_the_session_faulted(mpy, action):
    with Rig([meter_state(METER)], mpy=mpy, mitm=True) as rig:
        image, serial, start, frames = _prepare(rig)
        assert [di for _, _, di in frames] == ["04000503", "070000ff", "078102ff",
                                               "070102ff", "078102ff", "070002ff"], frames
        covered = 0
        for k, control, di in frames:
            if action.startswith("fake_") and control != 0x03:
                continue  # only a 03 frame is answered 83 / C3
            if action == "silent_from":
                _logs, applied = _one(rig, image, serial, start, {}, silent_from=k)
            else:
                _logs, applied = _one(rig, image, serial, start, {k: action})
            assert applied and applied[0] == (k, action if action != "silent_from"
                                              else "drop_request"), applied
            covered += 1
        print("%s: %d of %d frames" % (action, covered, len(frames)))
        assert covered >= 5


def test_forged_done_for_every_top_up_frame_never_counts(mpy):
    """The man in the middle answers 83 "done" to every top-up frame and
    never forwards one: the terminal must not say credited, nothing lands,
    and the card is settled once the bus is honest again."""
    with Rig([meter_state(METER)], mpy=mpy, mitm=True) as rig:
        image, serial, start, _frames = _prepare(rig)
        logs, applied = _one_no_settle(rig, image, serial, start, {"070102ff": "fake_done"})
        assert len(applied) == 2, applied  # sent once, and once more after a read-back
        assert not any(line.startswith("meter: credited") for line in logs), logs
        assert "screen: success" not in logs
        assert rig.sim.meter(METER)["count"] == start[1]  # nothing landed
        assert "screen: topup_unconfirmed" in logs, logs
        rig.mitm.set_plan({})
        rig.settle_card(rig.cards[-1])
        rig.check()


def _one_no_settle(rig, image, serial, start, plan):
    rig.restore(image)
    rig.sim.set(METER, balance=start[0], count=start[1])
    rig.initial[METER] = start
    rig.sold[METER] = []
    p = rig.sell(METER, serial=serial)
    rig.boot()
    rig.mitm.set_plan(plan)
    logs = rig.session(p)
    return logs, list(rig.mitm.done)
