"""The card side under the real MicroPython unix port (limited heap): the
profile's card vectors, the driver + user card operations against the card
simulator over TCP, and terminal.py --card-slot end to end."""
import os
import subprocess
import threading

import pytest

import card_files as cf
import card_model
import card_sim
import sm4
from card_sim_ctl import MK_C, SERIAL, Output, free_port, make_card
from mp_runner import MICROPYTHON, MP_PATH, ROOT, run_mp_json

HEAP = "128k"  # sources compile on the device heap here; frozen .mpy needs far less

VECTORS = {
    "kc": "abda29639f7c41bb08b19986a484c1a8",
    "auth": "9bfb8b0670768b7a",
    "param13": "02010000000000665544332211",
    "s": "75e8f6fb",
    "data": "983a00000200000000990000000000301924112600000000",
    "m": "67234f26",
}


def _cpython_vectors(kdf, block, mac):
    kc = kdf(MK_C, SERIAL)
    rt = bytes.fromhex("0102030405060708")
    param = cf.pack_param(cf.PURCHASE, "000000000001", "112233445566")
    data = cf.pack_return(15000, 2, cf.RET_CREDITED, "000000000099", (26, 11, 24, 19, 30))
    return {
        "kc": kc.hex(),
        "auth": block(kc, rt + bytes(b ^ 0xFF for b in rt))[0:8].hex(),
        "param13": param[0:13].hex(),
        "s": mac(kc, cf.sale_mac_input(param, 10000, 2)).hex(),
        "data": data.hex(),
        "m": mac(kc, bytes.fromhex("1122334404d685001c") + data).hex(),
    }


def test_card_vectors_cpython_firmware_sm4():
    assert _cpython_vectors(sm4.kdf, sm4.encrypt, sm4.mac) == VECTORS


def test_card_vectors_cpython_openssl_card_model():
    assert _cpython_vectors(card_model.kdf, card_model.sm4_block, card_model.mac) == VECTORS


def test_card_vectors_micropython():
    got = run_mp_json("host_tests/mp/card_vectors.py", heap="64k")
    assert {k: got[k] for k in VECTORS} == VECTORS
    # signed balance by hand (no signed= on MicroPython)
    assert got["neg"] == -1234 and got["neg_hex"] == "2efbffff"
    # card_files on common.py's helpers, technician type, range errors typed
    assert got["tech"] == [4, "000000000000", "000012345678"]
    assert got["range_errors"] == ["CardDataError"] * 4
    assert (got["u32_max"], got["s32_min"]) == ("ffffffff", "00000080")


def _mp_card_rw(card, write, pull_after=None, **sim_kw):
    port = free_port()
    sim = card_sim.T0Sim("127.0.0.1", port, card, **sim_kw)
    t = threading.Thread(target=sim.insert, args=(pull_after,))
    t.start()
    try:
        return run_mp_json("host_tests/mp/card_rw.py", port, MK_C.hex(), int(write), heap=HEAP,
                           timeout=60)
    finally:
        t.join()
        sim.pull()


def test_mp_read_authenticate_write_back():
    card = make_card(amount=10000, count=2)
    got = _mp_card_rw(card, True)
    assert "error" not in got, got
    assert (got["kind"], got["meter"], got["customer"], got["amount"], got["count"],
            got["serial"]) == ("purchase", "000000000001", "112233445566", 10000, 2, SERIAL.hex())
    assert got["read_apdus"] == 6 and got["write_apdus"] == 2
    ret = cf.parse_return(card.files[cf.SFI_RETURN])
    assert ret == {"balance": -1234, "count": 2, "result": cf.RET_CREDITED,
                   "terminal": "000000000099", "time": (26, 11, 24, 19, 30)}


def test_mp_procedure_bytes_nulls_and_single_byte_acks():
    card = make_card()
    got = _mp_card_rw(card, True, nulls=5, ack_each=True)
    assert "error" not in got and card.files[cf.SFI_RETURN][0:4] == cf.s32(-1234)


def _faulty(kind):
    card = make_card()
    if kind == "clone":
        card._key = bytes(16)
    elif kind == "forged":
        card.files[cf.SFI_PURSE] = cf.u32(999999) + card.files[cf.SFI_PURSE][4:]
    elif kind == "garbage":
        card.atr = b"\x12\x34\x56"
    elif kind == "unissued":
        card = card_model.Card.blank(MK_C, SERIAL)
    return card


@pytest.mark.parametrize("kind,err", [("clone", "NotAuthentic"), ("forged", "ForgedPurse"),
                                      ("garbage", "BadAtr"), ("unissued", "Unissued")])
def test_mp_bad_cards_refused(kind, err):
    assert _mp_card_rw(_faulty(kind), False).get("error") == err


@pytest.mark.parametrize("n", [0, 5, 40, 77, 109, 112, 140, 157])
def test_mp_pull_mid_apdu(n):
    # 110 bytes for a read, 48 for the write-back: pulls in ATR, read, write
    card = make_card()
    old = card.files[cf.SFI_RETURN]
    got = _mp_card_rw(card, True, pull_after=n)
    assert got.get("error") == "CardRemoved", got
    new = cf.pack_return(-1234, 2, cf.RET_CREDITED, "000000000099", (26, 11, 24, 19, 30))
    assert card.files[cf.SFI_RETURN] in (old, new)


def test_terminal_card_slot_end_to_end(tmp_path):
    import keystore

    ks = tmp_path / "keys.bin"
    keystore.KeyStore("000000000099", bytes(range(1, 17)), MK_C, bytes(range(2, 18))).save(str(ks))
    port = free_port()
    env = dict(os.environ, MICROPYPATH=MP_PATH)
    proc = subprocess.Popen(
        [MICROPYTHON, "-X", "heapsize=256k", os.path.join(ROOT, "boards/unix/terminal.py"),
         "--card-slot", "tcp:127.0.0.1:%d" % port, "--keystore", str(ks), "--display", "none",
         "--state", str(tmp_path / "state")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    said = Output(proc.stdout)
    try:
        said.wait("card slot: listening on 127.0.0.1:%d" % port)  # before any card comes
        for n, card in enumerate((make_card(amount=12345, count=7), _faulty("clone"),
                                  make_card(card_type=cf.OPENING, count=1)), 1):
            sim = card_sim.T0Sim("127.0.0.1", port, card)
            sim.insert()
            said.wait("card: shown; waiting for the pull", n)
            sim.pull()
            said.wait("card: removed", n)
    finally:
        proc.terminate()
        proc.wait(10)
    lines = said.close()
    out = "\n".join(lines)
    assert "card slot: listening on 127.0.0.1:%d" % port in lines, out
    # what the card carries, read through the real driver (the top-up that
    # follows is test_card_screens.py's: no bus here, so no meter to credit)
    for want in ("card: purchase", "customer: 112233445566", "meter: 000000000001",
                 "amount: 123.45", "count: 7", "card: opening", "amount: 100.00"):
        assert want in lines, out
    assert lines.count("card: inserted (ATR 3b06505043415244)") == 3, out
    assert any(x.startswith("card: refused NotAuthentic") for x in lines), out
    assert lines.count("card: removed") == 3, out
