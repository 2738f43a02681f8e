"""Issue 12, the terminal's side: every journal record reaches a real MQTT
broker (Debian's mosquitto) once, in sequence order, signed under K_r; a
broker that is down, silent or refusing never touches a top-up; a kill or a
power cut at any step of publishing loses nothing and duplicates nothing
the head-end cannot drop by (t, seq). The head-end stand-in
(broker_ctl.HeadEnd) checks every MAC with OpenSSL's SM4."""
import json
import os
import signal
import socket
import subprocess
import threading

import pytest

import card_sim
from broker_ctl import MK_R, HeadEnd
from card_sim_ctl import Output, free_port, make_card
from headend_rig import Mosquitto, make_certs
from meter_sim_ctl import MeterSim
from mp_runner import MICROPYTHON, MP_PATH, ROOT
from topup_ctl import Rig, meter_state

METER = "000000000001"
# The harness loads the .mpy modules into the heap; a board freezes them (no
# heap). Reporting's modules take ~20 KB more than 256k leaves: 320k.
HEAP = "320k"




def reporting(port, **kw):
    conf = {"host": "127.0.0.1", "port": port}
    conf.update(kw)
    return {"mk_r": MK_R.hex(), "mqtt": conf}


def make_rig(mpy, setup, heap=HEAP):
    r = Rig([meter_state(METER)], mpy=mpy, heap=heap)
    r.setup = setup
    return r


def topup_records(got, count):
    return [d for d in got.values() if d["kind"] == "topup" and d["count"] == count]


def test_one_topup_arrives_once_with_good_macs(mpy, broker):
    he = HeadEnd(broker.port)
    try:
        with make_rig(mpy, reporting(broker.port)) as rig:
            rig.boot()
            p = rig.sell(METER, amount=2345)
            logs = rig.session(p)
            assert "screen: success" in logs, "\n".join(logs)
            rig.check()
            he.wait(lambda h: len(topup_records(h.check(), p.count)) == 3)
            he.wait(lambda h: any(g[0].endswith("/heartbeat") for g in h.got))
            got = he.check()
            steps = topup_records(got, p.count)
            assert [d["step"] for d in sorted(steps, key=lambda d: d["seq"])] == \
                ["intent", "result", "done"]
            for d in steps:
                assert d["meter"] == METER and d["amount"] == 2345
                assert d["card"] == p.serial.hex() and d["time"] == "261129200000"
            res = next(d for d in steps if d["step"] == "result")
            assert res["result"] == "credited" and res["after"][1] == p.count
            assert [d for d in got.values() if d["kind"] == "boot"]
            # once at the head-end, in order: QoS 1 may deliver twice (a PUBACK
            # late on a loaded machine: the terminal reconnects and sends it
            # again), check() found any repeat the same bytes, dropped by (t, seq)
            assert list(dict.fromkeys(he.seqs())) == sorted(got)
    finally:
        he.close()


def test_broker_down_during_ten_topups_then_back(mpy, broker):
    """All ten arrive once the broker is back, in sequence order, once each."""
    he = HeadEnd(broker.port)  # its persistent session outlives the broker's restart
    try:
        with make_rig(mpy, reporting(broker.port)) as rig:
            rig.boot()
            he.wait(lambda h: h.seqs())  # the boot record: reporting works
            broker.down()
            cards = []
            serial = rig.next_serial()  # one customer's card, bought ten times
            for _ in range(10):
                p = rig.sell(METER, amount=100, serial=serial)
                assert "screen: success" in rig.session(p)
                cards.append(p)
            rig.check()
            top = rig.term.cmd("status")["next_seq"] - 1
            assert not set(range(2, top + 1)) & set(he.seqs())  # nothing got out
            broker.start()
            he.wait(lambda h: h.has_through(top), 300)  # back-off: up to 60 s
            got = he.check()
            for p in cards:
                assert [d["step"] for d in topup_records(got, p.count)] == \
                    ["intent", "result", "done"]
            # in order, and once at the head-end: QoS 1 is at least once (the
            # broker stopped may deliver the boot record again), and check()
            # above found any repeat the same bytes, which it drops by (t, seq)
            firsts = list(dict.fromkeys(he.seqs()))
            assert firsts == list(range(1, top + 1)), he.seqs()
    finally:
        he.close()


def _screens(logs):
    # the idle screen after the pull may log before or after the session ends
    return [line for line in logs if line.startswith("screen: ") and line != "screen: idle"]


def _blackhole():
    """A broker that accepts the connection and never says a word."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(s.accept()[0])
            except OSError:
                pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()

    def close():
        stop.set()
        t.join(2)
        for c in held + [s]:
            c.close()
    return s.getsockname()[1], close


def _run_topups(mpy, setup):
    with make_rig(mpy, setup) as rig:
        rig.boot()
        screens = []
        serial = rig.next_serial()
        for amount in (100, 200, 300):
            screens.append(_screens(rig.session(rig.sell(METER, amount=amount,
                                                         serial=serial))))
        rig.check()
        return screens, rig.term.logs()


def test_a_silent_or_refusing_broker_never_touches_a_topup(mpy):
    """The top-up path never awaits the network: with the broker a black
    hole or a closed port the top-ups end as they do without reporting."""
    base, _ = _run_topups(mpy, {})
    assert all("screen: success" in s for s in base), base
    port, close = _blackhole()
    try:
        silent, logs = _run_topups(mpy, reporting(port, timeout_ms=60000))
        assert silent == base
        assert not any("report: connected" in line for line in logs)
    finally:
        close()
    from card_sim_ctl import free_port
    refused, logs = _run_topups(mpy, reporting(free_port()))
    assert refused == base
    assert any("report: broker" in line and "retrying" in line for line in logs), logs


def test_unix_board_reports_a_topup(tmp_path, broker):
    """boards/unix/terminal.py --mqtt ... --mqtt-credentials: the real
    terminal's top-up reaches the head-end once, MACs checked."""
    meter = {"address": "000000000001", "customer": "112233445566", "balance": 11234,
             "count": 1, "opened": True}
    (tmp_path / "keys.json").write_text(json.dumps({
        "terminal_id": "000000000099", "mk_m": "0123456789abcdeffedcba9876543210",
        "mk_c": "fedcba98765432100123456789abcdef", "mk_r": MK_R.hex()}))
    (tmp_path / "meters.json").write_text(json.dumps(
        [{"address": meter["address"], "customer": meter["customer"]}]))
    (tmp_path / "creds.json").write_text(json.dumps({"username": "t99", "password": "pw"}))
    he = HeadEnd(broker.port)
    slot = free_port()
    with MeterSim(meters=[meter]) as sim:
        term = subprocess.Popen(
            [MICROPYTHON, os.path.join(ROOT, "boards/unix/terminal.py"), "--bus", sim.bus,
             "--meters", str(tmp_path / "meters.json"), "--state", str(tmp_path / "state"),
             "--keys", str(tmp_path / "keys.json"), "--auto-ok", "--display", "none",
             "--card-slot", "tcp:127.0.0.1:%d" % slot, "--interval", "3600",
             "--mqtt", "tcp:127.0.0.1:%d" % broker.port,
             "--mqtt-credentials", str(tmp_path / "creds.json")],
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
            assert sim.meter(meter["address"])["count"] == 2
            he.wait(lambda h: len(topup_records(h.check(), 2)) == 3)
            out.wait("report: connected to 127.0.0.1:%d" % broker.port)
        finally:
            term.terminate()
            term.wait(10)
            out.close()
            he.close()
    got = he.check()
    steps = sorted(topup_records(got, 2), key=lambda d: d["seq"])
    assert [d["step"] for d in steps] == ["intent", "result", "done"]
    assert steps[1]["result"] == "credited" and steps[1]["after"] == [16234, 2]
    assert steps[2]["written"] is True
    assert list(dict.fromkeys(he.seqs())) == sorted(got)


class MqttGate:
    """A TCP proxy between the terminal and the broker that reads MQTT's
    framing both ways. Closed, it drops every connection (the broker is
    down). Open, it forwards, and `kill_at` = (n, phase) kills the terminal
    (SIGKILL: a power cut) at the n-th journal PUBLISH: "before_send" (the
    broker never gets it), "before_puback" (the broker has it, the terminal
    never hears so), "after_puback" (the terminal has the PUBACK; its cursor
    is saved lazily, so not yet on flash)."""

    def __init__(self, broker_port, kill):
        self.up = broker_port
        self.kill = kill
        self.open = False
        self.kill_at = None
        self.n = 0
        self.killed = threading.Event()
        self.lock = threading.Lock()
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(8)
        self.port = self.s.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            if not self.open:
                c.close()
                continue
            u = socket.create_connection(("127.0.0.1", self.up))
            pid = {}
            threading.Thread(target=self._pump, args=(c, u, True, pid), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, False, pid), daemon=True).start()

    @staticmethod
    def _packet(sock):
        head = sock.recv(1)
        if not head:
            return None
        n, shift, raw = 0, 0, bytearray(head)
        while True:
            b = sock.recv(1)
            if not b:
                return None
            raw += b
            n |= (b[0] & 0x7F) << shift
            shift += 7
            if not b[0] & 0x80:
                break
        body = b""
        while len(body) < n:
            more = sock.recv(n - len(body))
            if not more:
                return None
            body += more
        return bytes(raw) + body, head[0] & 0xF0, body

    def _pump(self, src, dst, from_terminal, pid):
        try:
            while True:
                p = self._packet(src)
                if p is None:
                    break
                raw, kind, body = p
                action = None
                with self.lock:
                    if from_terminal and kind == 0x30:
                        tl = int.from_bytes(body[:2], "big")
                        if body[2:2 + tl].endswith(b"/journal"):
                            self.n += 1
                            if self.kill_at and self.kill_at[0] == self.n:
                                pid["watch"] = body[2 + tl:4 + tl]
                                action = "kill" if self.kill_at[1] == "before_send" else None
                    elif not from_terminal and kind == 0x40 and body == pid.get("watch"):
                        action = "kill" if self.kill_at[1] == "before_puback" else "after"
                if action == "kill":
                    self.kill()
                    self.killed.set()
                    break
                dst.sendall(raw)
                if action == "after":
                    self.kill()
                    self.killed.set()
                    break
        except OSError:
            pass
        for x in (src, dst):
            x.close()

    def close(self):
        self._stop = True
        self.s.close()


@pytest.mark.parametrize("phase", ["before_send", "before_puback", "after_puback"])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_kill_at_every_step_of_publishing(mpy, broker, n, phase):
    """A boot record and one top-up's three steps wait (the broker was
    down); the broker comes back and the terminal is killed at the n-th
    publish, at `phase`; after the restart every seq arrives, any twice
    only with the same body (dropped by (t, seq)), none missing."""
    he = HeadEnd(broker.port)
    gate = None
    try:
        with make_rig(mpy, {}) as rig:
            gate = MqttGate(broker.port, lambda: rig.term.proc.send_signal(signal.SIGKILL))
            rig.setup = reporting(gate.port)
            rig.term.close()
            rig.term = rig.start_terminal()
            rig.boot()
            p = rig.sell(METER)
            assert "screen: success" in rig.session(p)
            top = rig.term.cmd("status")["next_seq"] - 1
            assert top == 4 and he.seqs() == []
            gate.kill_at = (n, phase)
            gate.open = True
            assert gate.killed.wait(120), "the gate never saw publish %d" % n
            rig.term.proc.wait(10)
            rig.term.close()
            gate.kill_at = None
            rig.term = rig.start_terminal()
            rig.boot()
            top = rig.term.cmd("status")["next_seq"] - 1
            he.wait(lambda h: h.has_through(top), 300)
            got = he.check()  # every MAC good; a seq twice only with the same body
            assert sorted(got) == list(range(1, top + 1))
            if phase == "before_puback":  # the broker had it, the terminal did not know
                assert he.seqs().count(n) >= 2, he.seqs()
            assert [d["step"] for d in sorted(topup_records(got, p.count),
                                              key=lambda d: d["seq"])] == \
                ["intent", "result", "done"]
            rig.check()
    finally:
        he.close()
        if gate is not None:
            gate.close()


def test_power_cut_at_every_flash_operation_of_a_reported_topup(mpy, broker):
    """The harness's flash loses power after k program/erase operations of a
    top-up whose steps are being published (the journal, the event ring,
    the cursor's save), for every k until a top-up runs uncut; the terminal
    boots again each time and the card is re-inserted. In the end the
    head-end has every seq, each body once (a repeat is the same bytes),
    and the meter has every purchase once."""
    he = HeadEnd(broker.port)
    try:
        # 384k as test_topup_powercut: one process boots again and again, and
        # a fragmented heap refused a boot now and then at 320k
        with make_rig(mpy, reporting(broker.port), heap="384k") as rig:
            rig.boot()
            serial = rig.next_serial()
            cuts = 0
            for k in range(1, 40):
                p = rig.sell(METER, amount=100 + k, serial=serial)
                since = rig.term.mark()
                rig.term.cmd("arm", after=k)
                rig.session(p)
                if not rig.term.cmd("status")["cut"]:
                    rig.term.cmd("disarm")
                    rig.settle_card(p)
                    break
                cuts += 1
                rig.wait_down(since)
                rig.boot()
                rig.settle_card(p)
            else:
                raise AssertionError("a top-up never ran uncut in 40 operations")
            assert cuts >= 4
            rig.check()
            top = rig.term.cmd("status")["next_seq"] - 1
            he.wait(lambda h: h.has_through(top), 300)
            got = he.check()
            assert sorted(got) == list(range(1, top + 1))
            for p in rig.sold[METER]:  # every purchase reported as credited
                assert any(d.get("result") == "credited" for d in topup_records(got, p.count)), \
                    p.count
    finally:
        he.close()


def test_tls_to_a_broker_whose_certificate_is_checked(mpy, tmp_path):
    """--mqtt tls:...: a broker whose certificate chains to the configured
    CA gets the reports; one signed by another CA gets nothing, and the
    top-ups go on as ever."""
    with Mosquitto(tls=True) as broker:
        he = HeadEnd(broker.port)  # the head-end on the plain listener
        other_ca = make_certs(str(tmp_path))[0]
        try:
            for ca, good in ((other_ca, False), (broker.ca, True)):
                setup = reporting(broker.tls_port, tls=True, ca=ca)
                setup["mqtt"]["host"] = "localhost"
                with make_rig(mpy, setup) as rig:
                    rig.boot()
                    p = rig.sell(METER)
                    assert "screen: success" in rig.session(p)
                    if good:
                        he.wait(lambda h: len(topup_records(h.check(), p.count)) == 3)
                    else:
                        rig.term.wait_log("report: broker localhost:%d" % broker.tls_port)
                        assert he.got == []
                    rig.check()
        finally:
            he.close()
