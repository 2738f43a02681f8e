"""A hostile or broken card cannot hold the terminal: the T=0 driver bounds
every 61xx/6Cxx chain, the response size, the time of one APDU (whatever WI
and however many NULL bytes) and the card's time in one session. Over the real
byte stream to the card simulator's T=0 faults, under CPython and under the
MicroPython unix port with a 96 KB heap."""
import asyncio
import threading
import time

import pytest

import card_model
import card_reader as cr
import card_sim
from card_reader import ApduTimeout, CardMisbehaves, CardMute, CardReader, SessionTimeout
from card_sim_ctl import free_port, make_card, run_with_card
from mp_runner import run_mp_json

READ_PARAM = b"\x00\xb0\x81\x00\x10"
SELECT = b"\x00\xa4\x00\x00\x02\xdf\x01"


def _timed_transmit(apdu, **reader_kw):
    """fn for run_with_card: power up, then (error, seconds, reader) for one
    transmit that must fail."""

    async def fn(reader, sim):
        for k, v in reader_kw.items():
            setattr(reader, k, v)
        await reader.power_up()
        t = time.monotonic()
        try:
            await reader.transmit(apdu)
        except Exception as e:  # noqa: BLE001
            return e, time.monotonic() - t, reader
        return None, time.monotonic() - t, reader

    return fn


def test_defaults():
    r = CardReader(None, None)
    assert (r.apdu_ms, r.session_ms) == (cr.APDU_MS, cr.SESSION_MS) == (5000, 30000)
    assert (cr.MAX_CHAIN, cr.MAX_RESPONSE) == (6, 256)
    assert issubclass(ApduTimeout, CardMute) and issubclass(SessionTimeout, CardMute)
    assert issubclass(CardMisbehaves, cr.ProtocolError)


def test_endless_61xx_stops_at_the_response_cap():
    # 61 00 after every command: GET RESPONSE for 256 bytes, then 61 00 again
    err, _, reader = run_with_card(make_card(), _timed_transmit(READ_PARAM),
                                   t0_fault="endless-61xx")
    assert isinstance(err, CardMisbehaves) and "256" in str(err), err
    assert reader.apdus <= cr.MAX_CHAIN and reader.bytes_on_wire < 1000


def test_endless_6cxx_stops_at_the_chain_cap():
    # 6C 10 to every command, the resend with Le 10 included: no data ever
    err, _, reader = run_with_card(make_card(), _timed_transmit(READ_PARAM),
                                   t0_fault="endless-6cxx")
    assert isinstance(err, CardMisbehaves) and "chain" in str(err), err
    assert reader.apdus == cr.MAX_CHAIN


def test_nulls_forever_end_at_the_apdu_deadline():
    # a NULL every 0.2 s keeps the 1 s work waiting time alive for ever
    err, took, reader = run_with_card(make_card(), _timed_transmit(SELECT),
                                      t0_fault="nulls-forever", timeout=60)
    assert isinstance(err, ApduTimeout), err
    assert 4.9 <= took < 20  # the 5 s cap; 200 NULLs used to mean 40 s here, an hour at WI 255
    assert reader.apdus == 1


def test_wi_255_card_that_never_answers_ends_at_the_apdu_deadline():
    card = make_card()
    card.atr = card_model.ATR_WI_255
    err, took, reader = run_with_card(card, _timed_transmit(SELECT), t0_fault="mute", timeout=60)
    assert reader.atr.wi == 255 and reader.wwt_ms == 25501  # 960 x 255 etu at 9600 baud
    assert isinstance(err, ApduTimeout), err
    assert 4.9 <= took < 20  # not the 25.5 s work waiting time, let alone 200 of them


def test_apdu_deadline_is_the_callers_to_set():
    err, took, _ = run_with_card(make_card(), _timed_transmit(SELECT, apdu_ms=600),
                                 t0_fault="nulls-forever")
    assert isinstance(err, ApduTimeout) and "600" in str(err) and 0.59 <= took < 5


def test_session_deadline_ends_a_slow_card_mid_read():
    # every command answered, each after ~1 s of NULLs: each APDU is legal,
    # the session is not (7 commands for a read)
    async def fn(reader, sim):
        t = time.monotonic()
        with pytest.raises(SessionTimeout) as e:
            await reader.power_up()
            while True:
                await reader.transmit(SELECT)
        return time.monotonic() - t, e.value, reader

    took, err, reader = run_with_card(make_card(), fn, nulls=5, null_every=0.2,
                                      reader_kw={"session_ms": 2500}, timeout=60)
    assert 2.45 <= took < 10 and "2500" in str(err)
    assert reader.apdus >= 2  # earlier APDUs went through


def test_session_counts_the_cards_time_not_the_terminals_waits():
    # a resident at the keypad, a meter on the bus: between APDUs, not the card's
    async def fn(reader, sim):
        await reader.power_up()
        await reader.transmit(SELECT)
        await asyncio.sleep(2.5)  # the terminal's own wait, longer than the budget
        _, sw = await reader.transmit(SELECT)
        return sw

    assert run_with_card(make_card(), fn, reader_kw={"session_ms": 2000}) == 0x9000


def test_start_session_restarts_the_clock_and_sets_the_length():
    async def fn(reader, sim):
        await reader.power_up()
        reader.start_session(100000)
        assert reader.session_ms == 100000
        await reader.transmit(SELECT)
        reader.start_session(0)  # the session is over before the next APDU
        with pytest.raises(SessionTimeout):
            await reader.transmit(SELECT)
        reader.start_session(30000)
        _, sw = await reader.transmit(SELECT)
        return sw

    assert run_with_card(make_card(), fn) == 0x9000


def test_foreign_cancel_passes_through_and_leaves_no_watchdog():
    # the caller's own timeout stays the caller's: asyncio.TimeoutError, and
    # nothing of the reader cancels the task afterwards
    async def fn(reader, sim):
        await reader.power_up()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(reader.transmit(SELECT), 0.1)
        await asyncio.sleep(1.5)  # past the 1 s WWT the watchdog would have fired at
        return "still running"

    assert run_with_card(make_card(), fn, t0_fault="mute") == "still running"


def test_a_stalled_event_loop_is_not_a_mute_card():
    # the card answers at once while the loop is blocked past the 1 s WWT
    # (a flash erase, a long computation): its bytes wait in the buffer
    async def fn(reader, sim):
        await reader.power_up()

        async def stall():
            await asyncio.sleep(0)
            time.sleep(1.3)  # noqa: ASYNC251 - blocking the loop is the point

        t = asyncio.create_task(stall())
        took = time.monotonic()
        _, sw = await reader.transmit(SELECT)
        took = time.monotonic() - took
        await t
        return sw, took

    sw, took = run_with_card(make_card(), fn)
    assert sw == 0x9000 and took >= 1.3  # the stall was inside the APDU


def test_normal_card_unaffected_by_deadlines():
    async def fn(reader, sim):
        await reader.power_up()
        return await reader.transmit(b"\x00\x88\x00\x01\x08" + bytes(8))  # 61 08 + GET RESPONSE

    data, sw = run_with_card(make_card(), fn, nulls=3)
    assert sw == 0x9000 and len(data) == 8


# -- the same under MicroPython, 96 KB heap --

def _mp_hostile(card, apdu, session_ms=0, stall_ms=0, **sim_kw):
    port = free_port()
    sim = card_sim.T0Sim("127.0.0.1", port, card, **sim_kw)
    t = threading.Thread(target=sim.insert)
    t.start()
    try:
        return run_mp_json("host_tests/mp/card_hostile.py", port, apdu.hex(), session_ms,
                           stall_ms, heap="96k", timeout=90)
    finally:
        t.join()
        sim.pull()


@pytest.mark.parametrize("fault,why", [("endless-61xx", "256"), ("endless-6cxx", "chain")])
def test_mp_endless_chains_end_in_card_misbehaves(fault, why):
    got = _mp_hostile(make_card(), READ_PARAM, t0_fault=fault)
    assert got["error"] == "CardMisbehaves" and got["protocol"] and why in got["msg"], got
    assert got["apdus"] <= 6 and got["ok"] == 0


def test_mp_nulls_forever_end_at_the_apdu_deadline():
    got = _mp_hostile(make_card(), SELECT, t0_fault="nulls-forever")
    assert got["error"] == "ApduTimeout" and got["mute"], got
    assert 4900 <= got["ms"] < 20000


def test_mp_wi_255_mute_card_ends_at_the_apdu_deadline():
    card = make_card()
    card.atr = card_model.ATR_WI_255
    got = _mp_hostile(card, SELECT, t0_fault="mute")
    assert got["wwt_ms"] == 25501 and got["error"] == "ApduTimeout", got
    assert 4900 <= got["ms"] < 20000


def test_mp_session_deadline():
    got = _mp_hostile(make_card(), SELECT, session_ms=2500, nulls=5, null_every=0.2)
    assert got["error"] == "SessionTimeout" and got["mute"] and got["ok"] >= 1, got
    assert 2450 <= got["ms"] < 10000


def test_mp_a_stalled_event_loop_is_not_a_mute_card():
    # 50 SELECTs; the loop blocked 1.3 s (past the 1 s WWT) in the middle
    got = _mp_hostile(make_card(), SELECT, stall_ms=1300)
    assert "error" not in got and got["ok"] == 50, got
    assert got["ms"] >= 1300
