"""Issue 10, the flash: full (ENOSPC) before a top-up, and dead under a
running terminal (every write raises OSError, the app runs on). Nothing
may be sent that the journal could not record; what was sent is settled
once the flash works again; the journal is never half-written."""
import pytest

from topup_ctl import Rig, meter_state

METER = "000000000001"



def screens(logs):
    return [line[len("screen: "):] for line in logs if line.startswith("screen: ")]


@pytest.mark.parametrize("first_card", [False, True], ids=["known_card", "first_card"])
def test_full_flash_refuses_clearly_and_keeps_the_journal_whole(mpy, first_card):
    with Rig([meter_state(METER)], mpy=mpy, mitm=True) as rig:
        rig.boot()
        serial = None
        if not first_card:
            p = rig.sell(METER)
            rig.session(p)
            rig.check()
            serial = p.serial
        before = rig.term.cmd("status")
        fill = rig.term.cmd("fill")
        assert 28 in fill["errno"] and fill["bytes"] > 0, fill  # ENOSPC
        # purchases until the flash refuses one: none may land unrecorded
        refusal = None
        for _ in range(80):  # the journal's directory fills its metadata pair first
            p = rig.sell(METER, serial=serial)
            serial = p.serial
            rig.mitm.set_plan({})
            logs = rig.session(p)
            sent = [di for _, _, di in rig.mitm.requests].count("070102ff")
            if "out_of_service" in screens(logs):
                refusal = logs
                assert sent == 0, (rig.mitm.requests, logs)  # no journal, no frame
                rig.sold[METER].pop()
                rig.check(settled=False)
                break
            rig.check()
        assert refusal is not None, "the full flash never refused a top-up"
        assert not any(line.startswith("meter: credited") for line in refusal)
        # reboot: the journal scans clean, nothing half-written is open
        rig.term.cmd("halt")
        rig.boot()
        st = rig.term.cmd("status")
        assert st["open_n"] == 0, st
        entries = rig.term.journal()
        assert all(e["result"] in (1, 2) and e["written_back"] for e in entries), entries
        assert st["next_seq"] >= before["next_seq"]
        # space again: the refused card is credited, once
        rig.term.cmd("unfill")
        rig.sold[METER].append(p)
        rig.settle_card(p)
        rig.check()


def test_dead_flash_under_a_running_terminal(mpy):
    """Mode "flash": the flash dies after k operations of a top-up but the
    terminal runs on. The same card again while it is dead, then a
    restart with the flash back, then the card again: once, every k."""
    with Rig([meter_state(METER)], mpy=mpy, mode="flash") as rig:
        rig.boot()
        p = rig.sell(METER)
        rig.session(p)
        rig.check()
        rig.term.cmd("halt")
        image = rig.snapshot("prepared.img")
        st0 = rig.sim.meter(METER)
        start = (st0["balance"], st0["count"])
        n = None
        k = 0
        while n is None or k <= n:
            rig.restore(image)
            rig.sim.set(METER, balance=start[0], count=start[1])
            rig.initial[METER] = start
            rig.sold[METER] = []
            q = rig.sell(METER, serial=p.serial)
            rig.boot(cut_after=None if n is None else k)
            logs = rig.session(q)
            status = rig.term.cmd("status")
            if n is None:
                n = status["ops"]
                rig.check()
                continue
            assert status["cut"] == (k < n), (k, n, status)
            rig.check(settled=False)
            logs += rig.session(q)  # again, the flash still dead
            rig.check(settled=False)
            rig.term.cmd("halt")
            rig.boot()
            rig.settle_card(q)
            rig.check()
            k += 1
        print("dead flash at each of %d operations" % n)
