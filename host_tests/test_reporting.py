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
        with Rig([meter_state(METER)], mpy=mpy, setup=reporting(broker.port)) as rig:
            rig.boot()
            p = rig.sell(METER, amount=2345)
            logs = rig.session(p)
            assert "screen: success" in logs, logs
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
