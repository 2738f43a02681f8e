"""Issue 10, a small soak in the suite (the 10,000-purchase one is `make
soak`, tools/soak_topup.py): purchases over a building of 32 simulated
meters with random card pulls, a lying or silent bus, power cuts and
restarts; per meter, the purchases sold equal the credit on the meter, to
the fen, and every card's return file agrees."""
import soak_topup
from topup_ctl import build_mpy


def test_soak_32_meters(tmp_path):
    meters = ["%012d" % i for i in range(1, 33)]
    got = soak_topup.soak(200, meters, seed=7, mpy=build_mpy(str(tmp_path / "mpy")))
    assert got["sold"] == 200 and got["fen_sold"] == got["fen_credited"], got
    assert got["cuts"] > 0 and got["mitm"] > 0 and got["pull"] > 0, got
    assert got["journal_open"] <= 16, got  # journal.MAX_AWAITING: no pile-up
