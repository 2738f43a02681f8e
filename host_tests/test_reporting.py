"""Issue 12, the terminal's side: every journal record reaches a real MQTT
broker (Debian's mosquitto) once, in sequence order, signed under K_r; a
broker that is down, silent or refusing never touches a top-up; a kill or a
power cut at any step of publishing loses nothing and duplicates nothing
the head-end cannot drop by (t, seq). The head-end stand-in
(broker_ctl.HeadEnd) checks every MAC with OpenSSL's SM4."""
import os
import signal
import socket
import threading

import pytest

from broker_ctl import MK_R, Broker, HeadEnd
from topup_ctl import Rig, build_mpy, meter_state

METER = "000000000001"
# The harness loads the .mpy modules into the heap; a board freezes them (no
# heap). Reporting's modules take ~20 KB more than 256k leaves: 320k.
HEAP = "320k"


@pytest.fixture(scope="module")
def mpy(tmp_path_factory):
    return build_mpy(str(tmp_path_factory.mktemp("mpy")))


@pytest.fixture()
def broker():
    with Broker() as b:
        yield b


def reporting(port, **kw):
    conf = {"host": "127.0.0.1", "port": port, "timeout_ms": 3000}
    conf.update(kw)
    return {"mk_r": MK_R.hex(), "mqtt": conf}


def topup_records(got, count):
    return [d for d in got.values() if d["kind"] == "topup" and d["count"] == count]


def test_one_topup_arrives_once_with_good_macs(mpy, broker):
    he = HeadEnd(broker.port)
    try:
        with Rig([meter_state(METER)], mpy=mpy, heap=HEAP, setup=reporting(broker.port)) as rig:
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
            res = [d for d in steps if d["step"] == "result"][0]
            assert res["result"] == "credited" and res["after"][1] == p.count
            assert [d for d in got.values() if d["kind"] == "boot"]
            # once: nothing arrived twice
            seqs = he.seqs()
            assert len(seqs) == len(set(seqs)) and seqs == sorted(seqs)
    finally:
        he.close()


def test_broker_down_during_ten_topups_then_back(mpy, broker):
    """All ten arrive once the broker is back, in sequence order, once each."""
    he = HeadEnd(broker.port)  # its persistent session outlives the broker's restart
    try:
        with Rig([meter_state(METER)], mpy=mpy, heap=HEAP, setup=reporting(broker.port)) as rig:
            rig.boot()
            he.wait(lambda h: h.seqs())  # the boot record: reporting works
            broker.stop()
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
            seqs = he.seqs()
            assert seqs == sorted(set(seqs)), seqs  # in order, once
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
    with Rig([meter_state(METER)], mpy=mpy, heap=HEAP, setup=setup) as rig:
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
