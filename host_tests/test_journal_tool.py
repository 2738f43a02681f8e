"""tools/journal_tool.py: the journal and the meter records, read back

- from the flash image the REAL terminal (boards/unix/terminal.py under
  micropython) wrote during a real top-up through the meter and card
  simulators, mounted by littlefs-python;
- from a board over mpremote: the MicroPython unix port on a PTY (socat),
  a littlefs at /flash inside it holding a journal made by the firmware;
- and bad inputs: one line, exit 2, never a traceback.
"""
import json
import os
import pty
import subprocess
import sys

import pytest

import card_sim
import journal_tool
from card_sim_ctl import Output, free_port, make_card
from meter_sim_ctl import MeterSim
from mp_runner import MICROPYTHON, MP_PATH, ROOT
from unix_board import UnixBoard

TOOL = os.path.join(ROOT, "tools", "journal_tool.py")
MPREMOTE = os.path.join(ROOT, ".venv", "bin", "mpremote")
KEYS = {"terminal_id": "000000000099", "mk_m": "0123456789abcdeffedcba9876543210",
        "mk_c": "fedcba98765432100123456789abcdef"}  # the profile's test keys
METER = {"address": "000000000001", "customer": "112233445566", "balance": 11234,
         "count": 1, "opened": True}


def tool(*args, timeout=60):
    return subprocess.run([sys.executable, TOOL] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout)


def rows(out):
    """The journal's rows -> {seq: (mark, line)}."""
    got = {}
    for line in out.splitlines():
        head = line[1:8].strip()
        if line[:1] in " *+" and head.isdigit() and line[8:10] == "  ":
            got[int(head)] = (line[0], line)
    return got


def test_image_written_by_the_real_terminal_after_a_top_up(tmp_path):
    state = tmp_path / "state"
    (tmp_path / "keys.json").write_text(json.dumps(KEYS))
    (tmp_path / "meters.json").write_text(json.dumps(
        [{"address": METER["address"], "customer": METER["customer"]}]))
    slot = free_port()
    with MeterSim(meters=[METER]) as sim:
        term = subprocess.Popen(
            [MICROPYTHON, os.path.join(ROOT, "boards/unix/terminal.py"), "--bus", sim.bus,
             "--meters", str(tmp_path / "meters.json"), "--state", str(state),
             "--keys", str(tmp_path / "keys.json"), "--auto-ok", "--display", "none",
             "--card-slot", "tcp:127.0.0.1:%d" % slot, "--interval", "3600"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, MICROPYPATH=MP_PATH))
        out = Output(term.stdout)
        try:
            out.wait("card slot: listening on 127.0.0.1:%d" % slot)
            card = card_sim.T0Sim("127.0.0.1", slot, make_card(amount=5000, count=2))
            card.insert()
            out.wait("card: shown; waiting for the pull")
            card.pull()
            out.wait("card: removed")
            assert sim.meter(METER["address"])["count"] == 2
        finally:
            term.terminate()
            term.wait(10)
            out.close()
    p = tool("image", state / "flash.img")
    assert p.returncode == 0, p.stderr
    got = rows(p.stdout)
    assert list(got) == [1], p.stdout
    mark, line = got[1]
    assert "000000000001  112233445566      2        50.00  credited" in line, line
    assert "112.34 -> 162.34" in line
    assert mark == " " and "open" not in line, line  # written back: closed
    assert "1 entry, 0 open" in p.stdout
    # the record, with the card adopted as the customer's current one
    rec = [x for x in p.stdout.splitlines() if x.startswith("000000000001  112233445566")]
    assert rec and "active" in rec[0] and "8800000000000001" in rec[0], p.stdout
    assert rec[0].split()[6] == "2"  # the last count credited here, from the journal
    assert "problems" not in p.stdout


# -- over mpremote, against the unix port on a PTY ----------------------------

_SETUP = """
import flash, storage, journal, records
storage.mount(flash.RAMBlockDev(4096, 64), "/flash")
records.Records("/flash").seed([
    {"address": "000000000001", "meter_number": "000000000001", "customer": "100000000001"},
    {"address": "000000000002", "meter_number": "000000000002", "customer": "100000000002"}])
j = journal.Journal("/flash", "000000000099", lambda: (2026, 11, 29, 19, 5, 7))
class S:
    def __init__(s, b, c):
        s.balance, s.count = b, c
E = journal.Entry
e = j.begin(E("000000000001", "100000000001", b"\\x88" * 8, 5000, 2), S(10000, 1))
j.settle(e, journal.CREDITED, S(15000, 2))
j.done(e)                                           # 1..3 closed
e = j.begin(E("000000000001", "100000000001", b"\\x88" * 8, 2000, 3), S(15000, 2))
j.settle(e, journal.CREDITED, S(17000, 3))          # 4, 5 awaiting write-back
j.begin(E("000000000002", "100000000002", b"\\x89" * 8, 1000, 7), S(-350, 6))  # 6 pending
e = j.begin(E("000000000002", "100000000002", b"\\x89" * 8, 1000, 8), S(-350, 6))
j.settle(e, journal.UNCONFIRMED)                    # 7, 8 unconfirmed
with open("/flash/jrn/0500", "wb") as f:
    f.write(b"not a slot")
print("made", len(j.open_entries()))
"""


@pytest.fixture
def board(tmp_path):
    """micropython -i on a PTY (socat), as mpremote sees a board; the
    firmware from the source tree (tools/unix_board.py, from_source)."""
    with UnixBoard(tmp_path / "state", tmp_path / "dev", from_source=True) as b:
        yield b.device


def test_board_over_mpremote(board, tmp_path):
    setup = tmp_path / "setup.py"
    setup.write_text(_SETUP)
    p = subprocess.run([MPREMOTE, "connect", board, "resume", "run", str(setup)],
                       capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "made 3", p.stdout + p.stderr
    p = tool("board", board)
    assert p.returncode == 0, p.stderr
    got = rows(p.stdout)
    assert list(got) == [7, 6, 4, 1], p.stdout  # newest first
    assert got[1][0] == " " and "2026-11-29 19:05:07" in got[1][1]
    assert got[4][0] == "+" and "open: write-back" in got[4][1]
    assert "credited" in got[4][1] and "150.00 -> 170.00" in got[4][1]
    assert got[6][0] == "*" and "pending" in got[6][1] and "-3.50 -> ?" in got[6][1]
    assert got[7][0] == "*" and "unconfirmed" in got[7][1]
    assert "4 entries, 3 open" in p.stdout
    recs = [x.split() for x in p.stdout.splitlines() if x.startswith("00000000000")]
    assert [(r[0], r[1], r[6]) for r in recs] == [("000000000001", "100000000001", "3"),
                                                  ("000000000002", "100000000002", "-")]
    assert "/jrn/0500: not a journal slot" in p.stdout
    # the same board, where nothing is mounted
    p = tool("board", board, "--root", "/nowhere")
    assert p.returncode == 2 and "no /nowhere on the board" in p.stderr, p.stderr
    assert p.stdout == "" and len(p.stderr.splitlines()) == 1


# -- bad inputs: one line, exit 2 ----------------------------------------------

def _one_line(p, *words):
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stdout == "" and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.splitlines()) == 1, p.stderr
    for w in words:
        assert w in p.stderr, p.stderr


def test_bad_images(tmp_path):
    _one_line(tool("image", tmp_path / "nothing.img"), "No such file")
    short = tmp_path / "short.img"
    short.write_bytes(b"\xff" * 4096 * 8)
    _one_line(tool("image", short), "is 32768 bytes, not 256 blocks x 4096")
    blank = tmp_path / "blank.img"
    blank.write_bytes(b"\xff" * 4096 * 256)  # erased flash, never formatted
    _one_line(tool("image", blank), "holds no littlefs")
    _one_line(tool("image", blank, "--blocks", "0"), "positive")
    junk = tmp_path / "junk.img"
    junk.write_bytes(bytes(range(256)) * 16 * 8)
    _one_line(tool("image", junk, "--blocks", "8"), "holds no littlefs")


def test_a_device_that_does_not_answer(tmp_path):
    _one_line(tool("board", tmp_path / "no-such-tty"), "no such device")
    master, slave = pty.openpty()  # a line nobody answers on
    try:
        name = os.ttyname(slave)
        _one_line(tool("board", name, "--timeout", "4", timeout=60), name)
    finally:
        os.close(master)
        os.close(slave)


def test_a_board_answer_that_stops_short():
    with pytest.raises(journal_tool.Bad, match="stopped short"):
        journal_tool.parse_board("/dev/x", "/flash", 0, "J /jrn/0000 00\n", "")
    with pytest.raises(journal_tool.Bad, match="did not run the snippet"):
        journal_tool.parse_board("/dev/x", "/flash", 0,
                                 "Traceback (most recent call last):\nMemoryError:\n", "")
