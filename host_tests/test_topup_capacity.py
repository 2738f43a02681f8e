"""Issue 10, the long run: the journal's ring (journal.SLOTS entries) must
fit the flash it was sized for. journal.py budgets 64 blocks of 4 KB; a
terminal that fills them stops selling (every top-up refused
out_of_service) long before its ring wraps."""
import pytest

from topup_ctl import Rig, build_mpy, meter_state

METER = "000000000001"


@pytest.fixture(scope="module")
def mpy(tmp_path_factory):
    return build_mpy(str(tmp_path_factory.mktemp("mpy")))


def test_the_journal_fits_the_64_block_flash_it_was_sized_for(mpy):
    """250 clean top-ups on 64 x 4 KB: every one credited, none refused for
    a full flash, and the flash not nearly full after them."""
    with Rig([meter_state(METER)], mpy=mpy, blocks=64, display=False) as rig:
        rig.boot()
        free0 = rig.term.cmd("status")["blocks_free"]
        serial = None
        for i in range(250):
            p = rig.sell(METER, amount=1, serial=serial)
            serial = p.serial
            logs = rig.session(p)
            assert "meter: credited 1 fen" in " ".join(logs), (
                "top-up %d of 250 refused (free blocks at start %d): %s"
                % (i + 1, free0, [line for line in logs if line.startswith("meter:")]))
        rig.check()
        st = rig.term.cmd("status")
        # 250 of the ring's 1,000 entries may take at most a quarter of the room
        assert free0 - st["blocks_free"] <= free0 // 4, (free0, st["blocks_free"])
