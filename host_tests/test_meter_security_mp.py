"""The meter security client under real MicroPython, through the RS-485
driver and the unix board's TCP UART, against the meter simulator."""
from keystore import KeyStore
from meter_sim_ctl import MeterSim
from mp_runner import run_mp_json

MK_M = bytes.fromhex("0123456789abcdeffedcba9876543210")
MK_C = bytes.fromhex("fedcba98765432100123456789abcdef")


def test_full_session_and_credit_under_micropython(tmp_path):
    path = str(tmp_path / "keystore.bin")
    KeyStore("000000000099", MK_M, MK_C, bytes(range(1, 17))).save(path)
    with MeterSim(count=5, baud=9600) as sim:
        sim.fault("000000000002", "drop_reply_after_topup")
        sim.set("000000000003", balance=-1)
        sim.set("000000000004", balance=-0x80000000)
        sim.set("000000000005", opened=False)
        # 160k: here every module is compiled from source into the heap
        # (about 60 KB of code objects); frozen on a board that is ROM.
        r = run_mp_json("host_tests/mp/security_session.py", sim.bus, 9600, path,
                        heap="160k", timeout=120)
        m1, m2, m5 = (sim.meter("00000000000%d" % i) for i in (1, 2, 5))
    assert r["serial"] == 8
    assert r["before"] == {"balance": 10000, "count": 1, "customer": "100000000001"}
    assert r["after"] == {"balance": 22345, "count": 2, "customer": "100000000001"}
    assert r["after_end"] == "NotAuthenticated"
    assert r["credit"] == ["credited", {"balance": 10000, "count": 1, "customer": "100000000002"},
                           {"balance": 10700, "count": 2, "customer": "100000000002"}]
    assert r["negative"] == [-1, -0x80000000]  # two's complement by hand
    assert r["again"] == "already"
    # refused before any top-up frame: nothing sent, the meter's count attached
    assert r["count_error"] == [0x20, 2, False] and r["wrong_key"] == 0x08
    assert r["amount_0"] == "ValueError"
    assert r["refused"] == ["NotOpened", 2, 1, True]
    assert (m1["balance"], m1["count"]) == (22345, 2)
    assert (m2["balance"], m2["count"]) == (10700, 2)  # credited once despite the lost reply
    assert (m5["balance"], m5["count"]) == (10000, 1)
