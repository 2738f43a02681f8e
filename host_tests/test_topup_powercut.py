"""Issue 10, power cuts: the real top-up flow under micropython (a 256k
heap), its littlefs on a block device that loses power after k program or
erase operations, for every k of a whole top-up. After each cut the
terminal restarts (journal scan, recovery) and the resident re-inserts the
same card: the meter simulator must hold the purchase exactly once and the
card's return file must say so. Judged by the simulators' state only."""
import pytest

from topup_ctl import Rig, meter_state

METER = "000000000001"



def _prepared(rig, first_card):
    """A seeded flash, and (unless first_card) one purchase already made
    with the card: -> (flash image, the card's serial, meter state)."""
    rig.boot()
    serial = None
    if not first_card:
        p = rig.sell(METER)
        rig.session(p)
        rig.check()
        serial = p.serial
    rig.term.cmd("halt")
    image = rig.snapshot("prepared.img")
    st = rig.sim.meter(METER)
    return image, serial, (st["balance"], st["count"])


def _run(rig, image, serial, start, cut_after):
    """From the prepared flash and meter: one top-up with the power cut
    after `cut_after` operations (None: never), then restart and re-insert.
    -> (cut happened, ops used by the uncut top-up or None)."""
    rig.restore(image)
    rig.sim.set(METER, balance=start[0], count=start[1])
    rig.initial[METER] = start
    rig.sold[METER] = []
    p = rig.sell(METER, serial=serial)
    since = rig.term.mark()
    rig.boot(cut_after=cut_after)
    rig.session(p)
    st = rig.term.cmd("status")
    ops = None if st["cut"] else st["ops"]
    if st["cut"]:
        rig.wait_down(since)
        rig.boot()
    rig.settle_card(p)
    rig.check()
    return st["cut"], ops


@pytest.mark.parametrize("torn", [1, 0], ids=["half_written", "not_written"])
@pytest.mark.parametrize("first_card", [False, True], ids=["known_card", "first_card"])
def test_power_cut_at_every_flash_operation(mpy, first_card, torn):
    """torn: the operation the cut hits programs (or erases) half its bytes,
    or none of them."""
    with Rig([meter_state(METER)], mpy=mpy, torn=torn) as rig:
        image, serial, start = _prepared(rig, first_card)
        cut, n = _run(rig, image, serial, start, None)
        assert not cut and n > 0
        ks = list(range(n + 1))
        cuts = 0
        for k in ks:
            cut, _ = _run(rig, image, serial, start, k)
            cuts += cut
        assert cuts == n  # every operation of the top-up was hit once
        print("ops per top-up (%s): %d, cut points %d" % (
            "first card" if first_card else "known card", n, cuts))


def test_power_cut_during_the_recovery_too(mpy):
    """A cut that leaves a top-up unsettled (the frame may have gone), then
    the power cut again at every operation of the boot's recovery
    (recovery.settle_all writing the journal), then a clean restart and the
    card: still exactly once."""
    with Rig([meter_state(METER)], mpy=mpy) as rig:
        image, serial, start = _prepared(rig, first_card=False)
        _, n = _run(rig, image, serial, start, None)
        covered = 0
        for k in range(n):
            rig.restore(image)
            rig.sim.set(METER, balance=start[0], count=start[1])
            rig.initial[METER] = start
            rig.sold[METER] = []
            p = rig.sell(METER, serial=serial)
            since = rig.term.mark()
            rig.boot(cut_after=k)
            rig.session(p)
            rig.wait_down(since)
            after_cut = rig.snapshot("cut.img")
            meter_after = rig.sim.meter(METER)
            files = dict(p.card.files)
            # how many operations a clean recovery takes from here
            rig.boot()
            r = rig.term.cmd("status")["ops"]
            for j in range(r):
                rig.restore(after_cut)
                rig.sim.set(METER, balance=meter_after["balance"], count=meter_after["count"])
                p.card.files = dict(files)
                since = rig.term.mark()
                rig.boot(cut_after=j, settle=False)
                rig.wait_down(since)
                rig.boot()
                rig.settle_card(p)
                rig.check()
                covered += 1
            rig.term.cmd("halt")
        print("recovery cut points: %d" % covered)
        assert covered > 0


def test_power_cut_during_the_first_boot(mpy):
    """A blank flash: the first boot formats littlefs and seeds the meter
    records. The power cut at its first and last 10 operations and at 30
    in between; each time the next boot finishes the job and a purchase
    lands once. (A 384k heap: the harness boots again and again in one
    process, where a board restarts on an empty heap; a cut flash's mount
    wants two 4 KB buffers to look for a blank device.)"""
    with Rig([meter_state(METER), meter_state("000000000002")], mpy=mpy, heap="384k") as rig:
        blank = rig.snapshot("blank.img")
        rig.boot()
        n = rig.term.cmd("status")["ops"]
        ks = sorted(set(range(10)) | set(range(n - 10, n)) | set(range(0, n, max(1, n // 30))))
        bricked = []
        for k in ks:
            rig.restore(blank)
            rig.reset_meters()
            since = rig.term.mark()
            rig.boot(cut_after=k, settle=False)
            rig.wait_down(since)
            try:
                rig.boot()
            except AssertionError as e:  # collect them all: which cuts brick it
                bricked.append((k, str(e)))
                continue
            for m in (METER, "000000000002"):
                p = rig.sell(m)
                rig.session(p)
            rig.check()
        print("first boot: %d operations, cut at %d of them" % (n, len(ks)))
        assert not bricked, ("%d of %d cuts of the first boot (of %d operations) leave a "
                             "terminal that cannot boot: %s"
                             % (len(bricked), len(ks), n, bricked))
