"""Issue 10, the long run: the journal's ring (journal.SLOTS entries) must
fit the flash it was sized for (journal.py: the unix board's 1 MB, 256
blocks of 4 KB, beside the records' tables) and wrap, reusing its slots:
a terminal whose flash fills stops selling (every top-up refused
out_of_service)."""

import journal
from topup_ctl import Rig, meter_state

METER = "000000000001"



def test_the_journal_ring_wraps_on_the_flash_it_was_sized_for(mpy):
    """SLOTS + 10 % clean top-ups on 256 x 4 KB: every one credited, none
    refused for a full flash, and room left once the ring has wrapped."""
    n = journal.SLOTS + journal.SLOTS // 10
    with Rig([meter_state(METER)], mpy=mpy, blocks=256, display=False) as rig:
        rig.boot()
        free0 = rig.term.cmd("status")["blocks_free"]
        serial = None
        for i in range(n):
            p = rig.sell(METER, amount=1, serial=serial)
            serial = p.serial
            logs = rig.session(p)
            assert "meter: credited 1 fen" in " ".join(logs), (
                "top-up %d of %d refused (free blocks at start %d): %s"
                % (i + 1, n, free0, [line for line in logs if line.startswith("meter:")]))
        rig.check()
        st = rig.term.cmd("status")
        assert st["blocks_free"] >= free0 // 4, (free0, st["blocks_free"])
        print("%d top-ups: %d of %d free blocks used" % (n, free0 - st["blocks_free"], free0))
