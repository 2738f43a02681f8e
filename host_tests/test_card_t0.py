"""Terminal side of the card slot under CPython: the T=0 driver and the
user card operations against the card simulator over TCP."""
import asyncio
import socket
import threading

import pytest

import card_files as cf
import card_model
import refusals
import user_card as uc
from card_reader import Atr, BadAtr, CardMute, CardReader, CardRemoved, ProtocolError, parse_atr
from card_sim_ctl import CUSTOMER, METER, MK_C, SERIAL, make_card, run_with_card

WHEN = (26, 11, 24, 19, 30)
READ_PARAM = b"\x00\xb0\x81\x00\x10"
NEW_RETURN = bytes.fromhex("983a00000200000000990000000000301924112600000000")


async def read_card(reader, sim=None):
    await reader.power_up()
    return await uc.UserCard(reader, MK_C).read()


async def read_and_write(reader, sim=None):
    await reader.power_up()
    card = uc.UserCard(reader, MK_C)
    await card.read()
    await card.write_return(15000, 2, cf.RET_CREDITED, "000000000099", WHEN)
    return reader


# -- ATR --

def test_atr_parse_interface_bytes_and_tck():
    # 3B: direct; T0=0xE2 TB1 TC1 TD1 + 2 hist; TD1=0x81 -> T=1 and TD2 follows
    raw = bytes.fromhex("3b" "d2" "18" "00" "81" "31" "fe" "45") + b"\x41\x42"
    x = 0
    for b in raw[1:]:
        x ^= b
    atr = parse_atr(raw + bytes((x,)))
    assert atr.ta1 == 0x18 and atr.protocols == [1, 1] and atr.historical == b"AB"


def test_atr_defaults_t0():
    atr = parse_atr(card_model.ATR)
    assert isinstance(atr, Atr) and atr.protocols == [0] and atr.wi == 10
    assert atr.historical == b"PPCARD"


@pytest.mark.parametrize("raw,why", [
    (b"", "TS missing"), (b"\x12\x34", "TS 12"), (b"\x3b\x06PP", "length"),
    (bytes.fromhex("3b8001") + b"\x00", "TCK"), (bytes.fromhex("3b10"), "truncated"),
])
def test_atr_bad(raw, why):
    with pytest.raises(BadAtr, match=why):
        parse_atr(raw)


def test_garbage_atr_refused():
    card = make_card()
    card.atr = b"\x12\x34\x56"
    with pytest.raises(BadAtr):
        run_with_card(card, read_card)


def test_atr_without_t0_refused():
    card = make_card()
    card.atr = bytes.fromhex("3b8001") + bytes((0x80 ^ 0x01,))  # T=1 only, TCK right
    with pytest.raises(BadAtr, match="no T=0"):
        run_with_card(card, read_card)


# -- procedure bytes --

@pytest.mark.parametrize("kw", [{}, {"nulls": 60}, {"ack_each": True},
                                {"nulls": 3, "ack_each": True}])
def test_read_and_write_back_procedure_variants(kw):
    card = make_card()
    reader = run_with_card(card, read_and_write, **kw)
    assert card.files[cf.SFI_RETURN] == NEW_RETURN
    # select, 3 reads, internal authenticate + GET RESPONSE (61 08), challenge, update
    assert reader.apdus == 8


def test_61xx_answered_by_get_response():
    card = make_card()

    async def fn(reader, sim):
        await reader.power_up()
        await reader.transmit(b"\x00\xa4\x00\x00\x02\xdf\x01")
        return await reader.transmit(b"\x00\x88\x00\x01\x08" + bytes(range(1, 9)))

    data, sw = run_with_card(card, fn)
    kc = card_model.kdf(MK_C, SERIAL)
    assert sw == 0x9000 and data == card_model.sm4_block(kc, bytes(range(1, 9)) + bytes(
        b ^ 0xFF for b in range(1, 9)))[:8]
    assert [h[1] for h in card.log[-2:]] == [0x88, 0xC0]


def test_6cxx_resends_with_right_le():
    card = make_card()

    async def fn(reader, sim):
        await reader.power_up()
        await reader.transmit(b"\x00\xa4\x00\x00\x02\xdf\x01")
        return await reader.transmit(b"\x00\xb0\x81\x00\x00")  # Le 0 = 256, wrong

    data, sw = run_with_card(card, fn)
    assert sw == 0x9000 and len(data) == 16 and data == card.files[cf.SFI_PARAM]
    assert [h[4] for h in card.log[-2:]] == [0, 16]


def test_bad_procedure_byte():
    with pytest.raises(ProtocolError, match="42"):
        asyncio.run(_fake_card(b"\x3b\x00" + b"\x42", lambda r: r.transmit(READ_PARAM)))


async def _fake_card(script, op, keep_open=True, detect=None):
    """A hand-written card: sends `script` after accepting; runs op(reader)."""
    srv_sock = socket.socket()
    srv_sock.bind(("127.0.0.1", 0))
    srv_sock.listen(1)
    r, w = await asyncio.open_connection(sock=socket.create_connection(srv_sock.getsockname()))
    conn, _ = srv_sock.accept()
    conn.sendall(script)
    try:
        reader = CardReader(r, w, detect=detect)
        await reader.power_up()
        return await op(reader)
    finally:
        w.close()
        conn.close()
        srv_sock.close()


# -- removal and silence --

def test_mute_card_times_out():
    t0 = asyncio.run(_timed(_fake_card(b"\x3b\x00", lambda r: r.transmit(READ_PARAM))))
    assert isinstance(t0[0], CardMute) and 0.9 < t0[1] < 3.0  # WWT 960*10 etu at 9600 baud


class _Switch:
    def __init__(self):
        self.v = 1

    def value(self):
        return self.v


def test_detect_switch_opening_mid_apdu():
    sw = _Switch()

    async def op(reader):
        asyncio.get_running_loop().call_later(0.1, setattr, sw, "v", 0)
        return await reader.transmit(b"\x00\xb0\x81\x00\x10")

    err, took = asyncio.run(_timed(_fake_card(b"\x3b\x00", op, detect=sw)))
    assert isinstance(err, CardRemoved) and took < 0.9  # not CardMute after the WWT


async def _timed(coro):
    loop = asyncio.get_running_loop()
    t = loop.time()
    try:
        await coro
        err = None
    except Exception as e:  # noqa: BLE001
        err = e
    return err, loop.time() - t


def _full_length(fn):
    card = make_card()
    reader = run_with_card(card, fn)
    return reader.bytes_on_wire if isinstance(reader, CardReader) else None


def test_pull_at_every_byte_of_a_read():
    async def fn(reader, sim):
        await read_card(reader)
        return reader

    total = _full_length(fn)
    assert total > 100
    for n in range(total):
        card = make_card()
        with pytest.raises(CardRemoved):
            run_with_card(card, fn, pull_after=n)


def test_pull_at_every_byte_of_a_write_back():
    async def fn(reader, sim):
        await read_and_write(reader)
        return reader

    async def read_only(reader, sim):
        await read_card(reader)
        return reader

    total = _full_length(fn)
    start = _full_length(read_only)
    old = make_card().files[cf.SFI_RETURN]
    for n in range(start, total):
        card = make_card()
        with pytest.raises(CardRemoved):
            run_with_card(card, fn, pull_after=n)
        got = card.files[cf.SFI_RETURN]
        assert got in (old, NEW_RETURN)
        # the card commits only after the last data byte and MAC reached it
        assert (got == NEW_RETURN) == (n >= total - 2), n


# -- card kinds and refusals --

@pytest.mark.parametrize("t,name,refuse", [
    (cf.OPENING, "opening", "opening_card"), (cf.PURCHASE, "purchase", None),
    (cf.REISSUED, "reissued", None)])
def test_card_types_recognised(t, name, refuse):
    info = run_with_card(make_card(card_type=t, amount=5000, count=3), read_card)
    assert (info.kind, info.meter, info.customer, info.amount, info.count, info.serial) == (
        name, METER, CUSTOMER, 5000, 3, SERIAL)
    # the one refusal table names the screen (firmware/refusals.py)
    assert refusals.card_refusal(info, {METER}) == refuse
    assert "card: %s" % name in info.lines()


def test_clone_refused():
    card = make_card()
    card._key = bytes(16)  # same files and serial, not the key
    with pytest.raises(uc.NotAuthentic):
        run_with_card(card, read_card)


def test_forged_purse_refused():
    card = make_card()
    p = bytearray(card.files[cf.SFI_PURSE])
    p[0:4] = cf.u32(1000000)
    card.files[cf.SFI_PURSE] = bytes(p)
    with pytest.raises(uc.ForgedPurse):
        run_with_card(card, read_card)


def test_forged_count_refused():
    card = make_card(count=2)
    p = bytearray(card.files[cf.SFI_PURSE])
    p[4:8] = cf.u32(3)
    card.files[cf.SFI_PURSE] = bytes(p)
    with pytest.raises(uc.ForgedPurse):
        run_with_card(card, read_card)


def test_unissued_refused():
    with pytest.raises(uc.Unissued) as e:
        run_with_card(card_model.Card.blank(MK_C, SERIAL), read_card)
    assert e.value.sw == 0x6B00


def test_bad_parameter_file_refused():
    card = make_card()
    card.files[cf.SFI_PARAM] = b"\x07" + card.files[cf.SFI_PARAM][1:]
    with pytest.raises(uc.BadCardData, match="card type"):
        run_with_card(card, read_card)


def test_wrong_write_back_mac_refused_and_file_unchanged():
    card = make_card()
    old = card.files[cf.SFI_RETURN]

    async def fn(reader, sim):
        await reader.power_up()
        c = uc.UserCard(reader, MK_C)
        await c.read()
        c._kc = bytes(16)  # terminal with the wrong key for the MAC
        await c.write_return(15000, 2, cf.RET_CREDITED, "000000000099", WHEN)

    with pytest.raises(uc.MacWrong) as e:
        run_with_card(card, fn)
    assert e.value.sw == 0x6988 and card.files[cf.SFI_RETURN] == old


def test_used_challenge_refused():
    card = make_card()
    card.power_up()
    card.apdu(b"\x00\xa4\x00\x00\x02\xdf\x01")
    kc = card_model.kdf(MK_C, SERIAL)
    rc = card.apdu(b"\x00\x84\x00\x00\x04")[:4]
    hdr = bytes.fromhex("04d685001c")
    cmd = hdr + NEW_RETURN + card_model.mac(kc, rc + hdr + NEW_RETURN)
    assert card.apdu(cmd) == b"\x90\x00"
    assert card.apdu(cmd) == b"\x69\x88"  # replay of the same challenge
    assert card.apdu(b"\x00\xd6\x85\x00\x18" + NEW_RETURN) == b"\x69\x82"  # no plain writes


def test_status_words_typed():
    for sw, cls in [(0x6A82, uc.FileNotFound), (0x6982, uc.SecurityNotSatisfied),
                    (0x6988, uc.MacWrong), (0x6B00, uc.Unissued),
                    (0x6D00, uc.UnknownInstruction), (0x6700, uc.CardStatusError)]:
        with pytest.raises(cls) as e:
            uc.check_sw(sw, "x")
        assert e.value.sw == sw
    uc.check_sw(0x9000)


def test_write_before_read_refused():
    async def fn(reader, sim):
        await reader.power_up()
        await uc.UserCard(reader, MK_C).write_return(1, 1, 0, "000000000099", WHEN)

    with pytest.raises(uc.SecurityNotSatisfied):
        run_with_card(make_card(), fn)


def test_sim_threads_end():
    before = threading.active_count()
    run_with_card(make_card(), read_card)
    assert threading.active_count() <= before + 1


def test_detect_switch_active_low():
    class Low:
        v = 0

        def value(self):
            return self.v

    pin = Low()

    async def op(reader):
        assert reader.present()
        pin.v = 1  # switch to ground opens: card gone
        return await reader.transmit(b"\x00\xb0\x81\x00\x10")

    async def run():
        srv_sock = socket.socket()
        srv_sock.bind(("127.0.0.1", 0))
        srv_sock.listen(1)
        r, w = await asyncio.open_connection(sock=socket.create_connection(srv_sock.getsockname()))
        conn, _ = srv_sock.accept()
        conn.sendall(b"\x3b\x00")
        try:
            reader = CardReader(r, w, detect=pin, detect_level=0)
            await reader.power_up()
            await op(reader)
        finally:
            w.close()
            conn.close()
            srv_sock.close()

    with pytest.raises(CardRemoved):
        asyncio.run(run())


def test_card_model_importable_by_debian_python():
    import subprocess
    import os
    tools = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
    p = subprocess.run(["/usr/bin/python3", "-c",  # cwd tools/: card_model is on the path
                        ("import card_model;"
                         "print(card_model.kdf(bytes.fromhex('fedcba98765432100123456789abcdef'),"
                         "bytes.fromhex('8800000000000001')).hex())")],
                       capture_output=True, text=True, cwd=tools)
    assert p.stdout.strip() == "abda29639f7c41bb08b19986a484c1a8", p.stderr


def test_sim_process_control_socket_insert_pull_swap():
    from card_sim_ctl import SimProcess

    async def main():
        q = asyncio.Queue()
        srv = await asyncio.start_server(lambda r, w: q.put_nowait((r, w)), "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        sim = await loop.run_in_executor(None, SimProcess, port, "--mk-c", MK_C.hex(),
                                         "--count", "4")
        try:
            st = await loop.run_in_executor(None, lambda: sim.cmd(cmd="insert"))
            assert st["ok"] and st["inserted"]
            r, w = await asyncio.wait_for(q.get(), 5)
            reader = CardReader(r, w)
            await reader.power_up()
            info = await uc.UserCard(reader, MK_C).read()
            assert (info.count, info.amount) == (4, 10000)
            st = await loop.run_in_executor(None, lambda: sim.cmd(cmd="pull"))
            assert not st["inserted"] and st["bytes"] == reader.bytes_on_wire
            with pytest.raises(CardRemoved):
                await reader.transmit(b"\x00\xa4\x00\x00\x02\xdf\x01")
            w.close()
            clone = make_card()
            clone._key = bytes(16)
            st = await loop.run_in_executor(
                None, lambda: sim.cmd(cmd="swap", card=clone.to_json()))
            assert st["inserted"]
            r, w = await asyncio.wait_for(q.get(), 5)
            reader = CardReader(r, w)
            await reader.power_up()
            with pytest.raises(uc.NotAuthentic):
                await uc.UserCard(reader, MK_C).read()
            w.close()
            st = await loop.run_in_executor(None, lambda: sim.cmd(cmd="bogus"))
            assert not st["ok"] and "unknown command" in st["error"]
        finally:
            await loop.run_in_executor(None, sim.close)
            srv.close()
        assert sim.proc.returncode == 0

    asyncio.run(main())


def test_half_duplex_echo_dropped():
    card = make_card()
    reader = run_with_card(card, read_and_write, echo=True, reader_kw={"echo": True})
    assert card.files[cf.SFI_RETURN] == NEW_RETURN and reader.bytes_on_wire == 158


def test_card_refusing_the_write_back_mac():
    card = make_card()
    card.refuse_mac = True  # card_sim --fault wrong-mac
    old = card.files[cf.SFI_RETURN]
    with pytest.raises(uc.MacWrong):
        run_with_card(card, read_and_write)
    assert card.files[cf.SFI_RETURN] == old
