"""tools/bench_topup.py runs and prints its table (small sizes: two record
counts, one card each, a journal of 20 slots, no heap search). Speed is not
checked here: a busy machine is no place for it (`make bench` is)."""
import os
import re
import subprocess
import sys

import bench_topup
from mp_runner import ROOT


def test_the_bench_runs_and_prints_its_table():
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench_topup.py"),
                        "--quick"], capture_output=True, text=True, timeout=600, check=False)
    out = p.stdout
    assert p.returncode in (0, 1), out + p.stderr  # 1: a target missed, not a failure
    assert "figure" in out and "measured" in out and "target" in out, out
    for n in (4, 8):
        line = re.search(r"top-up, %d records: card in -> success screen +(\d+) ms "
                         r"\(floor (\d+) ms\)" % n, out)
        assert line, out
        measured, floor = int(line.group(1)), int(line.group(2))
        assert 0 < floor <= measured, out  # nothing beats the wire
    assert len(re.findall(r"ratio to the wire floor +\d+\.\d\d", out)) == 2, out
    assert re.search(r"a new card's first +\d+ \(\d+ erases\)", out), out
    assert re.search(r"growth 4 -> 8 records +x \d+\.\d\d", out), out
    assert re.search(r"boot, journal of 20 slots \(10 open\) +\d+ ms", out), out
    assert re.search(r"recovery: settle 2 unsettled .* 0 unsettled left", out), out
    assert "top-up after it" in out and "FAILED" not in out, out
    for phase in ("card read", "meter session", "write-back + screen"):
        assert re.search(r"  %s +\d+ ms  floor +\d+ ms" % re.escape(phase), out), out
    assert "Journal.begin" in out, out  # the flash writes of a top-up, each with its cost
    if p.returncode == 1:
        assert "missed: " in out, out


def test_heap_held_by_modules_is_measured(tmp_path):
    path = bench_topup.compile_mpy(str(tmp_path))
    assert os.path.exists(tmp_path / "journal.mpy")
    total, per = bench_topup.code_heap(["bcd", "journal"], path)
    assert total > 0 and dict(per)["journal"] > 0
