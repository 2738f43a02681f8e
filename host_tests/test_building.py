"""tools/building.py (`make run`): its command line, the card keys and the
card_sim command each inserts, the key filter and output tracker of its pty
relay, and one run end to end on a pseudo-terminal."""
import fcntl
import json
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time

import pytest

import building
from card_sim_ctl import free_port

ROOT = building.ROOT


def _run(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "building.py"),
                           *args],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


# -- command line --------------------------------------------------------------

def test_meters_without_a_value_is_one_line_exit_2():
    p = _run("--meters")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and "--meters needs a value" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("content,says", [
    (None, "cannot read the meters file"),
    ("{", "is not JSON"),
    ('{"address": "000000000001"}', "must be a JSON list"),
    ("[]", "must be a JSON list"),
    ('[{"address": "12"}]', "meter 1: \"address\" must be 12 digits"),
])
def test_bad_meters_file_is_one_line_exit_2(tmp_path, content, says):
    path = tmp_path / "meters.json"
    if content is not None:
        path.write_text(content)
    p = _run("--meters", str(path))
    assert p.returncode == 2 and says in p.stderr and p.stderr.count("\n") == 1
    assert "Traceback" not in p.stderr


def test_options_of_its_own_and_the_terminals():
    opts, rest = building.parse_args(["--once", "--meters", "m.json", "--slot", "h:1",
                                      "--interval", "3"])
    assert opts["meters"] == "m.json" and opts["slot"] == "h:1"
    assert rest == ["--once", "--interval", "3"]
    with pytest.raises(building.Usage):
        building.parse_args(["--slot", "--once"])


# -- card keys -> card_sim command lines ---------------------------------------------

METER = {"address": "000000000004", "customer": "100000000004", "count": 4}


def _opts(cmd):
    """card_sim's options as a dict (flags without a value map to True)."""
    assert cmd[:3] == [sys.executable, building.CARD_SIM, "t0"]
    out, i = {}, 3
    while i < len(cmd):
        out[cmd[i]] = cmd[i + 1]
        i += 2
    return out


@pytest.mark.parametrize("key,card_type,extra", [
    ("p", "purchase", {}),
    ("o", "opening", {}),
    ("r", "reissued", {}),
    ("x", "purchase", {"--fault": "clone"}),
    ("f", "purchase", {"--fault": "forged"}),
    ("e", "purchase", {"--pull-after": str(building.PULL_EARLY)}),
])
def test_card_key_gives_the_card_sim_command(key, card_type, extra):
    kind = building.CARD_KEYS[key][0]
    o = _opts(building.card_command(kind, METER, 5, "127.0.0.1:7816"))
    want = {"--connect": "127.0.0.1:7816", "--mk-c": building.DEV_MK_C,
            "--serial": "8800000000000004", "--type": card_type, "--meter": "000000000004",
            "--customer": "100000000004", "--amount": "10000", "--count": "5",
            "--hold": str(building.HOLD_S)}
    want.update(extra)
    assert o == want


def test_card_keys_stay_clear_of_the_terminals_keys():
    ours = set(building.CARD_KEYS) | {"m", "u", "h", "n", "N", "a"}
    assert not ours & set("0123456789cClL*#")
    for key, (_, label) in building.CARD_KEYS.items():
        assert "%s %s" % (key, label.replace(" ", "-")) in building.HINT
    assert len(building.HINT) <= 79  # one line of an 80-column terminal


def test_card_sim_takes_every_command(monkeypatch):
    # card_sim's own parser and card maker take each command line; the card
    # is not inserted anywhere (its T=0 face is a stand-in).
    import card_sim
    made = []

    class FakeT0:
        def __init__(self, host, port, card, *a, **kw):
            made.append({"port": port, "card": card})
            self._thread = threading.Thread(target=lambda: None)
            self.wire = type("W", (), {"count": 0})()

        def insert(self, pull_after=None):
            made[-1]["pull_after"] = pull_after
            self._thread.start()

        def pull(self):
            pass

        def wait(self, timeout=None):
            pass

    monkeypatch.setattr(card_sim, "T0Sim", FakeT0)
    for kind, _ in building.CARD_KEYS.values():
        assert card_sim.main(building.card_command(kind, METER, 5, "127.0.0.1:7816")[2:]) == 0
    assert [m["pull_after"] for m in made] == [None] * 5 + [building.PULL_EARLY, None]
    assert {m["port"] for m in made} == {7816}


def _control_server(replies):
    """A stand-in for the simulator's control port: one JSON reply per line."""
    srv = socket.create_server(("127.0.0.1", 0))
    got = []

    def serve():
        conn, _ = srv.accept()
        with conn:
            f = conn.makefile("rwb")
            for reply in replies:
                line = f.readline()
                if not line:
                    break
                got.append(json.loads(line))
                f.write(json.dumps(reply).encode() + b"\n")
                f.flush()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv, got, t


def test_meter_count_asks_the_simulator():
    srv, got, t = _control_server([{"ok": True, "meter": {"address": "000000000004",
                                                          "count": 7}}])
    with srv:
        n = building.meter_count("tcp:127.0.0.1:%d" % srv.getsockname()[1], "000000000004")
        t.join(10)
    assert n == 7 and got == [{"cmd": "get", "address": "000000000004"}]


def test_meter_count_none_when_nobody_answers():
    assert building.meter_count("tcp:127.0.0.1:%d" % free_port(), "000000000004", 1) is None


def test_cards_insert_pull_and_meter_cycle(tmp_path, monkeypatch):
    started = []

    class FakeProc:
        def __init__(self, cmd, **kw):
            self.cmd, self.done = cmd, False
            started.append(self)

        def poll(self):
            return 0 if self.done else None

        def terminate(self):
            self.done = True

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(building.subprocess, "Popen", FakeProc)
    monkeypatch.setattr(building, "meter_count", lambda control, address: 4)
    said = []
    meters = [{"address": "000000000001", "customer": "100000000001", "count": 1}, METER]
    cards = building.Cards(meters, "tcp:127.0.0.1:1", "127.0.0.1:7816",
                           str(tmp_path / "cards.log"), said.append)
    assert cards.key("m") and "000000000004" in said[-1]
    assert cards.key("p")
    assert _opts(started[0].cmd)["--count"] == "5" and "card 1 in: purchase" in said[-1]
    assert cards.key("x")  # a new card pulls the one in the slot
    assert started[0].done and _opts(started[1].cmd)["--fault"] == "clone"
    assert cards.key("u") and started[1].done and said[-1] == "building: card pulled"
    assert not cards.key("5") and not cards.key("c")
    log = (tmp_path / "cards.log").read_text()
    assert log.count("--- card") == 2


# -- the relay's key filter and output tracker ---------------------------------------

@pytest.mark.parametrize("typed,passed,ours", [
    (b"p", b"", ["p"]),
    (b"12\rc", b"12\rc", []),
    (b"\x1b[A\x1bOP\x1b[15~", b"\x1b[A\x1bOP\x1b[15~", []),  # letters inside sequences
    (b"\x1b[1;5P", b"\x1b[1;5P", []),
    (b"\x1bp", b"\x1b", ["p"]),  # Esc then a card key
    (b"\x03", b"\x03", []),  # Ctrl-C goes to the terminal (its SIGINT)
    (b"xmue", b"", ["x", "m", "u", "e"]),
])
def test_key_filter(typed, passed, ours):
    f = building.KeyFilter(set(building.CARD_KEYS) | {"m", "u", "h"})
    assert f.feed(typed) == (passed, ours)


def test_key_filter_sequence_split_across_reads():
    f = building.KeyFilter({"p"})
    assert f.feed(b"\x1b") == (b"\x1b", [])
    assert f.feed(b"[") == (b"[", [])
    assert f.feed(b"1;2p") == (b"1;2p", [])  # 'p' ends the sequence: not ours
    assert f.feed(b"p") == (b"", ["p"])


def test_output_tracker_rests_only_between_drawings():
    t = building.OutTracker()
    assert t.at_rest and not t.cleared
    t.feed(b"\x1b[2J\x1b[18;24r\x1b[24;1H")
    assert t.cleared and t.at_rest
    t.feed(b"\x1b7\x1b[1;1H\xe2\x94\x82")
    assert not t.at_rest  # the panel is being drawn
    t.feed(b"\x1b8")
    assert t.at_rest
    t.feed(b"card: inserted")
    assert not t.at_rest  # mid-line
    t.feed(b"\r\n\x1b")
    assert not t.at_rest  # mid-sequence
    t.feed(b"[K")
    assert t.at_rest


# -- end to end, on a pseudo-terminal ------------------------------------------------

class _Pty:
    def __init__(self, cmd, cols=100, rows=40):
        self.m, s = pty.openpty()
        fcntl.ioctl(s, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.s = s
        self.before = termios.tcgetattr(s)
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        self.proc = subprocess.Popen(cmd, stdin=s, stdout=s, stderr=s, start_new_session=True,
                                     env=env)
        self.out = b""

    def wait_for(self, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        while pattern not in self.out:
            left = deadline - time.monotonic()
            assert left > 0, "no %r in:\n%s" % (pattern, self.out[-3000:].decode(errors="replace"))
            r, _, _ = select.select([self.m], [], [], min(left, 1))
            if not r and self.proc.poll() is not None:
                raise AssertionError("building.py exited %d before %r:\n%s" % (
                    self.proc.returncode, pattern, self.out[-3000:].decode(errors="replace")))
            if r:
                try:
                    data = os.read(self.m, 65536)
                except OSError:
                    data = b""
                assert data, "output ended before %r" % pattern
                self.out += data

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.m)
        os.close(self.s)


def test_make_run_card_key_inserts_a_purchase_card(tmp_path):
    log = tmp_path / "cards.log"
    t = _Pty([sys.executable, os.path.join(ROOT, "tools", "building.py"),
              "--slot", "127.0.0.1:%d" % free_port(), "--card-log", str(log)])
    try:
        t.wait_for(b"card keys insert cards for meter 000000000001")
        os.write(t.m, b"p")
        # Meter 1's count is 1 in the simulator: the card carries 2.
        t.wait_for(b"card 1 in: purchase, meter 000000000001, count 2, 100.00 yuan")
        cmd = log.read_text().splitlines()[0]
        assert "--count 2" in cmd and "--type purchase" in cmd
        os.write(t.m, b"\x03")  # Ctrl-C: to the terminal, which stops; then building
        assert t.proc.wait(60) == 0
        after = termios.tcgetattr(t.s)
        assert after[3] == t.before[3]  # the tty's line mode is back (raw mode undone)
        # The console left the cursor on the last line, with scrolling restored.
        t.out += _drain(t.m)
        assert b"\x1b[r\x1b[40;1H" in t.out
    finally:
        t.close()


def _children(pid):
    """Pids of the processes whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


def _gone(pids, timeout=30):
    deadline = time.monotonic() + timeout
    while any(os.path.exists("/proc/%d" % p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_make_run_sigterm_restores_the_tty_and_stops_everything(tmp_path):
    t = _Pty([sys.executable, os.path.join(ROOT, "tools", "building.py"),
              "--slot", "127.0.0.1:%d" % free_port(), "--card-log", str(tmp_path / "c.log")],
             cols=80, rows=24)
    try:
        t.wait_for(b"card keys insert cards")
        os.write(t.m, b"p")
        t.wait_for(b"card 1 in")
        kids = _children(t.proc.pid)
        assert len(kids) >= 2, kids  # the simulator, the terminal (and the card)
        t.proc.send_signal(signal.SIGTERM)
        assert t.proc.wait(60) == 143
        assert termios.tcgetattr(t.s)[3] == t.before[3]
        assert _gone(kids), [p for p in kids if os.path.exists("/proc/%d" % p)]
        t.out += _drain(t.m)
        assert t.out.endswith(b"\x1b[r\x1b[24;1H\x1b[K")  # scrolling back, prompt below
    finally:
        t.close()


def _drain(fd):
    out = b""
    while select.select([fd], [], [], 0)[0]:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        out += data
    return out


def test_make_run_once_polls_every_meter_and_exits():
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "building.py"), "--once"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert "000000000012" in p.stdout


def test_technician_card_key_and_meter_swap(tmp_path):
    """`t` inserts a technician card with the hint's PIN; `N` swaps the
    selected meter in the simulator and puts the office's key package for
    the new meter in the terminal's inbox."""
    o = _opts(building.card_command("technician", METER, 1, "127.0.0.1:7816"))
    assert (o["--type"], o["--customer"], o["--pin"]) == ("technician", building.TECH_ID,
                                                           building.TECH_PIN)
    assert building.TECH_PIN in building.HINT
    srv, got, t = _control_server([{"ok": True}])
    said = []
    cards = building.Cards([dict(METER)], "tcp:127.0.0.1:%d" % srv.getsockname()[1],
                           "127.0.0.1:7816", str(tmp_path / "c.log"), said.append,
                           str(tmp_path / "inbox"))
    try:
        assert cards.key("N")
        t.join(5)
    finally:
        srv.close()
    assert got == [{"cmd": "replace", "address": "000000000004",
                    "new_address": "000000000904", "key": building.OTHER_BATCH_KM}]
    assert cards.meters[0]["address"] == "000000000904"
    sealed = bytes.fromhex((tmp_path / "inbox" / "000000000904.key").read_text())
    import keystore
    ks = keystore.KeyStore("000000000099", bytes(range(1, 17)), bytes(range(2, 18)),
                           bytes.fromhex(building.DEV_TRANSPORT))
    assert ks.open_sealed(sealed) == ("000000000904", bytes.fromhex(building.OTHER_BATCH_KM))
    assert "swapped for new meter 000000000904" in said[-1]


def _wait_from(t, pattern, pos, timeout=120):
    """Like _Pty.wait_for, but only output after `pos`; -> the new position."""
    deadline = time.monotonic() + timeout
    while True:
        i = t.out.find(pattern, pos)
        if i >= 0:
            return i + len(pattern)
        left = deadline - time.monotonic()
        assert left > 0, "no %r in:\n%s" % (pattern, t.out[pos:][-3000:].decode(errors="replace"))
        r, _, _ = select.select([t.m], [], [], min(left, 1))
        if r:
            try:
                t.out += os.read(t.m, 65536)
            except OSError:
                pass
        elif t.proc.poll() is not None:
            raise AssertionError("building.py exited before %r" % pattern)


def test_make_run_readme_walk_through_re_registers_a_meter(tmp_path):
    """README "Re-registering a replaced meter", key by key, on `make run`:
    marked replaced, the resident refused, the meter swapped, re-registered
    (address typed, meter number read from the bus, derived keys), refused
    until opened at the meter, then credited."""
    t = _Pty([sys.executable, os.path.join(ROOT, "tools", "building.py"),
              "--slot", "127.0.0.1:%d" % free_port(), "--card-log", str(tmp_path / "c.log")])
    steps = [
        (b"card keys insert cards for meter 000000000001", b""),
        # 1. mark meter 1 replaced
        (None, b"t"), (b"screen: tech_pin", b"246810\r"), (b"screen: tech_menu", b"1"),
        (b"screen: tech_customer", b"100000000001\r"), (b"screen: tech_mark_confirm", b"\r"),
        (b"screen: tech_marked", b"u"), (b"screen: idle", b"p"),
        # 2. the resident is refused
        (b"screen: meter_replaced", b"u"), (b"screen: idle", b"n"),
        # 3. the new meter, 4. re-registered
        (b"swapped for new meter 000000000901", b"t"), (b"screen: tech_pin", b"246810\r"),
        (b"screen: tech_menu", b"2"), (b"screen: tech_customer", b"100000000001\r"),
        (b"screen: tech_address", b"000000000901\r"), (b"screen: tech_meter_number", b"\r"),
        (b"screen: tech_key_kind", b"1"), (b"screen: tech_confirm", b"\r"),
        (b"screen: tech_done", b"u"),
        # 5. refused until opened at the meter, then credited
        (b"screen: idle", b"p"), (b"screen: card_info", b"\r"),
        (b"screen: meter_not_opened", b"u"), (b"screen: idle", b"a"),
        (b"account opened", b"p"), (b"screen: card_info", b"\r"), (b"screen: success", b"u"),
    ]
    pos = 0
    try:
        for wait, keys in steps:
            if wait:
                pos = _wait_from(t, wait, pos)
            if keys:
                os.write(t.m, keys)
        os.write(t.m, b"\x03")
        assert t.proc.wait(60) == 0
    finally:
        t.close()


def test_make_run_reports_to_a_head_end_that_knows_the_sales(tmp_path):
    """make run's fleet: mosquitto and the head-end beside the building. A
    card the office sold is in the head-end's ledger before it reaches the
    slot, so the page shows it sold; the page answers."""
    import urllib.request

    import building_fleet
    assert building_fleet.available() is None  # CI installs mosquitto
    fleet = building_fleet.Fleet(str(tmp_path), str(tmp_path / "headend.log"))
    try:
        assert fleet.mqtt.startswith("tcp:127.0.0.1:")
        fleet.sold("8800000000000001", "100000000001", "000000000001", 2, 10000)
        fleet.sold("8800000000000001", "100000000001", "000000000001", 2, 10000)  # again: once
        out = subprocess.run([sys.executable, "-m", "headend", "report", "--db", fleet.db,
                              "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
        waiting = json.loads(out.stdout)["waiting"]
        assert len(waiting) == 1 and waiting[0]["count"] == 2, waiting  # sold, not yet credited
        with urllib.request.urlopen(fleet.page, timeout=30) as r:
            assert r.status == 200 and b"Head-end" in r.read()
    finally:
        fleet.stop()
    assert fleet.headend.poll() is not None and fleet.broker.proc.poll() is not None
