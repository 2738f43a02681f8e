"""DL/T 645-2007 codec: published frames, both interpreters, another
implementation (PyPI dlt645), and the errors a noisy bus produces."""
import json
import os
import subprocess
import sys

import pytest

import dlt645
import meter_items
from mp_runner import ROOT, run_mp_json

VECTORS = os.path.join(ROOT, "host_tests", "vectors", "dlt645_frames.json")
SCRIPT = os.path.join(ROOT, "host_tests", "mp", "dlt645_vectors.py")


def cpython_result():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        os.path.join(ROOT, p) for p in ("host_tests/shim", "firmware")))
    out = subprocess.run([sys.executable, SCRIPT, VECTORS], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_published_frames_decode_to_known_values():
    vec = json.load(open(VECTORS))
    for v in vec["frames"]:
        f = dlt645.decode(bytes.fromhex(v["hex"]))
        assert f.address == v["address"]
        assert f.control == v["control"]
        assert f.data.hex().upper() == v["data"].upper()
        if v["value"] is not None:
            assert meter_items.decode(f.di, f.data[4:]) == v["value"]


def test_read_address_reply_is_meter_one():
    f = dlt645.decode(bytes.fromhex("68010000000000689306343333333333" "9D16"))
    dlt645.check_reply(f, dlt645.ADDR_WILDCARD, dlt645.CTRL_READ_ADDRESS)
    assert dlt645.address_str(f.data) == "000000000001" == f.address


def test_same_answers_under_micropython_and_cpython():
    mp = run_mp_json("host_tests/mp/dlt645_vectors.py", VECTORS, heap="64k")
    assert mp == cpython_result()
    assert [r[3] for r in mp["frames"]] == [None, None, 31776, 120642]
    assert all(r[4] for r in mp["frames"])
    # A broadcast time frame to 999999999999, as a meter would see it.
    assert mp["encode"][2][0].startswith("FEFEFEFE68999999999999680806")


def test_encode_layout():
    raw = dlt645.encode("000000000001", 0x11, bytes.fromhex("00029000"))
    body = "680100000000006811043335C333"  # DI 00900200 low byte first, +33
    assert raw.hex().upper() == "FEFEFEFE" + body + "%02X16" % (sum(bytes.fromhex(body)) & 0xFF)


@pytest.mark.parametrize("mutate,error", [
    (lambda b: b[:-2] + bytes([(b[-2] + 1) & 0xFF]) + b[-1:], dlt645.ChecksumError),
    (lambda b: b[:-1] + b"\x17", dlt645.EndByteError),
    (lambda b: b[:-3], dlt645.TruncatedError),
    (lambda b: b"", dlt645.NoReply),
    (lambda b: b"\x01\x02\x03", dlt645.FrameError),
])
def test_bad_frames_give_typed_errors(mutate, error):
    good = dlt645.encode("000000000001", 0x91, bytes.fromhex("0002900000100000"))
    with pytest.raises(error):
        dlt645.decode(mutate(good))


def test_length_over_limit_is_refused():
    raw = bytearray(dlt645.encode("000000000001", 0x91, b"", preamble=False))
    raw[9] = 201
    with pytest.raises(dlt645.LengthError):
        dlt645.decode(bytes(raw) + bytes(210))
    with pytest.raises(dlt645.LengthError):
        dlt645.encode("000000000001", 0x91, bytes(201))


def test_frame_found_after_garbage_and_false_starts():
    good = dlt645.encode("000000000003", 0x91, bytes.fromhex("0002900000100000"))
    noise = bytes.fromhex("6800016868FF00") + bytes(range(0x10, 0x30))
    d = dlt645.Decoder()
    assert d.feed(noise) is None
    f = d.feed(good)
    assert f.address == "000000000003" and f.data[4:] == bytes.fromhex("00100000")
    assert d.skipped >= len(noise)


def test_false_start_whose_length_hides_the_real_frame():
    # Found by hypothesis: garbage 68 00 00 makes a candidate whose 'second
    # 68' and 'length' are bytes of the real frame behind it; it waits for
    # 16 bytes that never come. When the line goes quiet, flush() drops the
    # false start and finds the frame.
    good = dlt645.encode("000000001000", 0x91, b"")
    d = dlt645.Decoder()
    assert d.feed(b"\x68\x00\x00" + good) is None
    f = d.flush()
    assert (f.address, f.control, f.data) == ("000000001000", 0x91, b"")
    assert dlt645.decode(b"\x68\x00\x00" + good).address == "000000001000"
    assert d.flush() is None and isinstance(d.failure(), dlt645.DLTError)


def test_flush_of_a_truly_cut_frame_says_truncated():
    good = dlt645.encode("000000000001", 0x91, bytes.fromhex("0002900000100000"))
    d = dlt645.Decoder()
    assert d.feed(good[:-3]) is None
    assert d.flush() is None
    assert isinstance(d.failure(), dlt645.TruncatedError)


def test_decoder_byte_by_byte_and_back_to_back():
    a = dlt645.encode("000000000001", 0x91, b"\x00\x00\x00\x00\x01\x00\x00\x00")
    b = dlt645.encode("000000000002", 0x91, b"\x00\x00\x00\x00\x02\x00\x00\x00")
    d = dlt645.Decoder()
    got = []
    for byte in a + b:
        f = d.feed(bytes([byte]))
        if f:
            got.append(f.address)
    assert got == ["000000000001", "000000000002"]


def test_replies_only_drops_our_own_echo():
    req = dlt645.encode("000000000001", 0x11, bytes.fromhex("00029000"))
    rep = dlt645.encode("000000000001", 0x91, bytes.fromhex("0002900000100000"))
    d = dlt645.Decoder(replies_only=True)
    assert d.feed(req) is None
    assert d.feed(rep).control == 0x91


def test_check_reply_decodes_err_and_serr():
    f = dlt645.decode(dlt645.encode("000000000001", 0xD1, b"\x02"))
    with pytest.raises(dlt645.MeterError) as e:
        dlt645.check_reply(f, "000000000001", dlt645.CTRL_READ, 0x00900200)
    assert e.value.err == 2 and e.value.reasons == ["no such data"]
    f = dlt645.decode(dlt645.encode("000000000001", 0xC3, b"\x22\x00"))
    with pytest.raises(dlt645.SecurityError) as e:
        dlt645.check_reply(f, "000000000001", dlt645.CTRL_SECURITY)
    assert e.value.serr == 0x22
    assert e.value.reasons == ["repeat top-up", "purchase count error"]


def test_check_reply_wrong_address_di_and_function():
    f = dlt645.decode(dlt645.encode("000000000002", 0x91, bytes.fromhex("0002900000100000")))
    with pytest.raises(dlt645.WrongAddress):
        dlt645.check_reply(f, "000000000001", dlt645.CTRL_READ, 0x00900200)
    with pytest.raises(dlt645.WrongDI):
        dlt645.check_reply(f, "000000000002", dlt645.CTRL_READ, 0x00900201)
    with pytest.raises(dlt645.UnexpectedReply):
        dlt645.check_reply(f, "000000000002", dlt645.CTRL_WRITE)
    assert dlt645.check_reply(f, "000000000002", dlt645.CTRL_READ, 0x00900200) is f


def test_items_decode_and_refuse_bad_values():
    assert meter_items.decode(meter_items.BALANCE, bytes.fromhex("00100000")) == 1000  # 10.00 yuan
    assert meter_items.decode(meter_items.PURCHASE_COUNT, bytes.fromhex("1200")) == 12
    assert meter_items.decode(meter_items.CUSTOMER_NUMBER,
                              bytes.fromhex("665544332211")) == "112233445566"
    word = meter_items.decode(meter_items.STATUS_WORD_3, bytes([0x10, 0x40]))
    assert word & meter_items.RELAY_OPEN and word & meter_items.ACCOUNT_NOT_OPENED
    with pytest.raises(meter_items.BadValue):
        meter_items.decode(meter_items.BALANCE, bytes.fromhex("0010"))
    with pytest.raises(meter_items.BadValue):
        meter_items.decode(meter_items.BALANCE, bytes.fromhex("0A100000"))
    with pytest.raises(meter_items.BadValue):
        meter_items.decode(0x12345678, b"\x00")
    assert meter_items.hundredths(-5) == "-0.05" and meter_items.hundredths(31776) == "317.76"
