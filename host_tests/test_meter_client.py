"""The firmware's meter client and RS-485 driver, under real MicroPython,
over real byte streams (TCP and PTY) to the independent meter simulator."""
import asyncio
import json
import os
import subprocess

import pytest

import dlt645
from meter import MeterClient
from meter_sim_ctl import MeterSim
from mp_runner import MICROPYTHON, MP_PATH, ROOT, run_mp_json

BAUD = 9600  # tests run fast; the benchmark runs 2400

ITEMS = {
    "00000000": "energy",
    "00900200": "balance",
    "00900201": "overdraft",
    "03330201": "count",
    "04000402": "meter_number",
    "0400040E": "customer",
    "04000503": "status",
}


def run_ops_full(sim, ops, baud=BAUD, timeout=120, echo=False):
    args = [sim.bus, baud] + (["echo"] if echo else [])
    return run_mp_json("host_tests/mp/meter_ops.py", *args, stdin=json.dumps(ops),
                       heap="96k", timeout=timeout)


def run_ops(sim, ops, baud=BAUD, timeout=120):
    return run_ops_full(sim, ops, baud, timeout)["results"]


def expected(meter, item):
    if item == "energy":
        return meter["energy"]
    if item == "balance":
        return max(meter["balance"], 0)
    if item == "overdraft":
        return max(-meter["balance"], 0)
    if item == "count":
        return meter["count"] % 10000
    if item == "meter_number":
        return meter["meter_number"]
    if item == "customer":
        return meter["customer"]
    return (16 if meter["relay_open"] else 0) | (1 << 14 if not meter["opened"] else 0)


@pytest.mark.parametrize("transport", ["tcp", "pty"])
def test_reads_every_item_from_several_meters(transport):
    with MeterSim(count=3, transport=transport, baud=BAUD) as sim:
        sim.set("000000000002", balance=-1234, relay_open=True, count=7, energy=31776)
        sim.set("000000000003", opened=False)
        meters = {m["address"]: m for m in sim.control("list")["meters"]}
        ops = [["read_item", a, di] for a in meters for di in ITEMS]
        results = run_ops(sim, ops)
    for op, r in zip(ops, results):
        assert "ok" in r, (op, r)
        assert r["ok"] == expected(meters[op[1]], ITEMS[op[2]]), (op, r)


def test_status_of_overdrawn_tripped_and_unopened_meters():
    with MeterSim(count=3, baud=BAUD) as sim:
        sim.set("000000000001", balance=12345, count=3)
        sim.set("000000000002", balance=-350)
        sim.control("trip", address="000000000002")
        sim.set("000000000003", opened=False)
        r = run_ops(sim, [["status", "00000000000%d" % i] for i in (1, 2, 3)])
    assert r[0]["ok"] == {"balance": 12345, "count": 3, "relay_open": False, "opened": True}
    assert r[1]["ok"]["balance"] == -350 and r[1]["ok"]["relay_open"] is True
    assert r[2]["ok"]["opened"] is False


def test_follow_up_frames_are_joined():
    with MeterSim(count=1, baud=BAUD) as sim:
        sim.set("000000000001", max_data=6, energy=123456)
        sim.control("reset_stats")
        r = run_ops(sim, [["read", "000000000001", "0001FF00"],
                          ["read_item", "000000000001", "0001FF00"]])
        stats = sim.control("stats")
    value = bytes.fromhex(r[0]["ok"])
    assert len(value) == 20
    block = r[1]["ok"]
    assert block[0] == 123456 and sum(block[1:]) == 123456
    assert stats["requests"] == 8  # 20 bytes in 6-byte parts: 4 frames per read


def test_write_needs_the_password():
    with MeterSim(count=1, baud=BAUD) as sim:
        r = run_ops(sim, [["write", "000000000001", "04000102", "563412", "000000"],
                          ["write", "000000000001", "04000102", "000000", "123456"],
                          ["read", "000000000001", "04000102"]])
    assert r[0] == {"ok": None, "ms": r[0]["ms"]}
    assert r[1]["error"] == "MeterError" and "password" in r[1]["msg"]
    assert r[2]["ok"] == "563412"  # 12:34:56, unchanged by the refused write


def test_unknown_item_and_unknown_meter():
    with MeterSim(count=1, baud=BAUD) as sim:
        r = run_ops(sim, [["read", "000000000001", "12345678"],
                          ["read", "000000000099", "00900200"]])
    assert r[0]["error"] == "MeterError" and "no such data" in r[0]["msg"]
    assert r[1]["error"] == "NoReply"
    # three tries of 500 ms, then a clear error (slack for a busy machine)
    assert 3 * 500 <= r[1]["ms"] < 3 * 500 + 1500


def test_read_address_point_to_point_and_collision():
    with MeterSim(count=1, baud=BAUD) as sim:
        assert run_ops(sim, [["read_address"]])[0]["ok"] == "000000000001"
    with MeterSim(count=3, baud=BAUD) as sim:
        r = run_ops(sim, [["read_address"]])[0]
    assert "error" in r and r["error"] in ("ChecksumError", "FrameError", "EndByteError",
                                           "TruncatedError", "WrongAddress")


class OneReply:
    """A bus on which one meter answers read-address with `address`."""

    def __init__(self, address):
        self.raw = dlt645.encode(address, 0x93, dlt645.address_bytes(address))

    async def transact(self, frame, decoder, timeout_ms):
        return decoder.feed(self.raw)


@pytest.mark.parametrize("address", ["999999999999", "AAAAAAAAAAAA", "AAAAAAAA0001",
                                     "00000000001F"])
def test_read_address_refuses_what_is_no_meters_address(address):
    # Broadcast, wildcard, non-decimal: requests sent there would reach
    # every meter or none, never this one.
    with pytest.raises(dlt645.BadAddress):
        asyncio.run(MeterClient(OneReply(address)).read_address())
    assert asyncio.run(MeterClient(OneReply("000000000042")).read_address()) == "000000000042"


def test_broadcast_time_sets_every_clock_without_reply():
    with MeterSim(count=3, baud=BAUD) as sim:
        r = run_ops(sim, [["broadcast_time", [2026, 11, 24, 19, 30, 5]], ["sleep_ms", 100]])
        clocks = [m["clock"] for m in sim.control("list")["meters"]]
    assert r[0]["ok"] is None and r[0]["ms"] < 500  # never waits out a reply timeout
    assert clocks == [[26, 11, 24, 19, 30, 5]] * 3


# Each misbehaviour once: the client retries or resynchronises and reads the
# right value. Persistent: a clear typed error, within bounded time.
TRANSIENT = ["no_reply", "late", "bad_checksum", "garbage", "echo", "truncated"]
PERSISTENT = {
    "no_reply": "NoReply",
    "late": "NoReply",  # or the right value: a late reply may land in a retry's window
    "bad_checksum": "ChecksumError",
    "truncated": "TruncatedError",
    "garbage": None,  # noise before a good frame is only noise
    "echo": None,
}


@pytest.mark.parametrize("kind", TRANSIENT)
def test_transient_fault_is_retried_to_the_right_value(kind):
    with MeterSim(count=2, baud=BAUD) as sim:
        sim.set("000000000001", balance=4321)
        sim.fault("000000000001", kind, times=1)
        r = run_ops(sim, [["read_item", "000000000001", "00900200"],
                          ["read_item", "000000000002", "00900200"]])
    assert r[0].get("ok") == 4321, r
    assert r[1].get("ok") == 10000, r  # the next exchange is not confused by leftovers


@pytest.mark.parametrize("kind", sorted(PERSISTENT))
def test_persistent_fault_gives_a_clear_error_never_a_wrong_value(kind):
    with MeterSim(count=2, baud=BAUD) as sim:
        sim.set("000000000001", balance=4321)
        sim.fault("000000000001", kind, times=-1, ms=1500)
        r = run_ops(sim, [["read_item", "000000000001", "00900200"],
                          ["sleep_ms", 1600],
                          ["read_item", "000000000002", "00900200"]])
    want = PERSISTENT[kind]
    if want is None or (kind == "late" and "ok" in r[0]):
        assert r[0].get("ok") == 4321, r
    else:
        assert r[0].get("error") == want, r
        assert r[0]["ms"] < 4000
    assert r[2].get("ok") == 10000, r


@pytest.mark.parametrize("transport", ["tcp", "pty"])
def test_terminal_once_contract(transport, tmp_path):
    with MeterSim(count=3, baud=2400, transport=transport) as sim:
        sim.set("000000000002", balance=-350)
        sim.control("trip", address="000000000002")
        cfg = str(tmp_path / "meters.json")
        with open(cfg, "w") as f:
            json.dump([{"address": "00000000000%d" % i} for i in (1, 2, 3)]
                      + [{"address": "000000000042"}], f)
        proc = subprocess.run([MICROPYTHON, "-X", "heapsize=128k",
                               os.path.join(ROOT, "boards", "unix", "terminal.py"),
                               "--bus", sim.bus, "--meters", cfg, "--once"],
                              capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, MICROPYPATH=MP_PATH))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    row = {l.split()[0]: l.split()[1:] for l in lines[1:]}
    assert row["000000000001"][:3] == ["100.00", "1", "closed"]
    assert row["000000000002"][:3] == ["-3.50", "1", "OPEN"]
    assert row["000000000042"][0].startswith("NoReply")


def test_terminal_refuses_bad_configuration(tmp_path):
    cfg = tmp_path / "m.json"
    cfg.write_text(json.dumps([{"address": "12AB"}]))
    proc = subprocess.run([MICROPYTHON, os.path.join(ROOT, "boards", "unix", "terminal.py"),
                           "--bus", "tcp:127.0.0.1:1", "--meters", str(cfg), "--once"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "12 digits" in proc.stdout


def test_transceiver_echo_is_dropped_by_the_driver():
    # A transceiver with /RE held low hears every byte we send: the driver,
    # told so, drops exactly our own bytes before it reads the reply.
    with MeterSim(count=2, baud=BAUD) as sim:
        sim.fault("000000000001", "echo", times=-1)
        sim.fault("000000000002", "echo", times=-1)
        out = run_ops_full(sim, [["read_item", "000000000001", "00900200"],
                                 ["read_item", "000000000002", "03330201"]], echo=True)
    assert [r.get("ok") for r in out["results"]] == [10000, 1]
    # Our 2 x 20 echoed bytes never reached the decoder: it saw exactly the
    # two replies (4 FE + 12 + DI + value).
    assert out["tx"] == 40
    assert out["rx"] == (4 + 12 + 4 + 4) + (4 + 12 + 4 + 2)


def test_direction_pin_and_event_loop_during_exchanges():
    with MeterSim(count=2, baud=2400) as sim:
        out = run_ops_full(sim, [["status", "000000000001"], ["status", "000000000002"]],
                           baud=2400)
    assert all("ok" in r for r in out["results"])
    assert out["de_changes"] == 2 * 6  # DE up and down around each of 6 requests
    assert out["de_level"] == 0  # released: the bus is free for the meters
    # Six exchanges take well over a second at 2400 baud; a ticker every
    # 2 ms must have run throughout, so the driver never held the loop.
    assert out["ms"] > 1000
    assert out["ticks"] > out["ms"] // 20


def test_terminal_help_under_micropython():
    proc = subprocess.run([MICROPYTHON, os.path.join(ROOT, "boards", "unix", "terminal.py"),
                           "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert "--bus tcp:HOST:PORT" in proc.stdout and "--card-slot" in proc.stdout
