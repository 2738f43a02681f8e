"""The meter security client against the independent meter simulator over a
real byte stream (TCP): the session, then every attack and fault, each
checking the meter's own balance and count afterwards.

CPython drives the firmware modules (MeterClient, MeterSession, credit())
through the real RS-485 driver (drivers/rs485.py) on a TCP UART stand-in
(host_tests/shim/mp_compat.py); the session also runs under MicroPython
(test_meter_security_mp.py). Attacks on the wire go through Mitm, a man in
the middle between the terminal and the simulator."""
import asyncio

import pytest

import dlt645
import meter_credit as mc
import meter_security as ms
import sm4
from meter import MeterClient
from meter_sim_ctl import MeterSim
from mp_compat import TcpUart
from rs485 import RS485, BusClosed

BAUD = 9600
MK_M = bytes.fromhex("0123456789abcdeffedcba9876543210")
M1 = "000000000001"
M2 = "000000000002"
CUST1 = "100000000001"
OP = bytes.fromhex("99000000")  # terminal 000000000099's low four bytes
TOPUP = ms.DI_TOPUP.to_bytes(4, "little")


def km(address, master=MK_M):
    return sm4.kdf(master, ms.dispersion(address))


def is_topup(frame):
    if isinstance(frame, (bytes, bytearray)):
        frame = dlt645.decode(bytes(frame))
    return frame.function == dlt645.CTRL_SECURITY and frame.data[0:4] == TOPUP


class RecordingBus(RS485):
    """The real driver, keeping every request it sends (for replay tests)."""

    def __init__(self, uart):
        # A 200-character inter-byte gap (about 0.2 s): the simulator is a
        # process on a busy test machine, and a pause there is not the end
        # of a reply (a board's 20 characters is for a real line).
        super().__init__(uart, baudrate=BAUD, gap_chars=200)
        self.uart = uart
        self.frames = []

    async def transact(self, frame, decoder, timeout_ms):
        self.frames.append(bytes(frame))
        return await super().transact(frame, decoder, timeout_ms)


PASS, DROP, CLOSE, CUT = "pass", "drop", "close", "cut"


class Mitm:
    """A man in the middle on the wire between the terminal and the simulator.
    request(frame) -> PASS; DROP (the meter never sees it); bytes (dropped,
    and these answer it); CLOSE (passed on, then both links cut); CUT (both
    links cut before it reaches the meter). reply(frame) -> PASS, DROP,
    bytes (sent instead) or a float (passed on that many seconds late).
    Without a hook bytes flow untouched (garbled too)."""

    def __init__(self, sim, request=None, reply=None):
        self.sim, self.request, self.reply = sim, request, reply
        self.writers = []

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.spec = "tcp:127.0.0.1:%d" % self.server.sockets[0].getsockname()[1]

    def close(self):
        self.server.close()
        for w in self.writers:
            w.close()

    async def _serve(self, tr, tw):
        mr, mw = await asyncio.open_connection(self.sim.host, self.sim.port)
        self.writers += [tw, mw]
        back = asyncio.ensure_future(self._pipe(mr, tw, tw, self.reply))
        try:
            await self._pipe(tr, mw, tw, self.request)
        except (asyncio.CancelledError, ConnectionError):
            pass  # the test is over
        finally:
            back.cancel()
            tw.close()
            mw.close()

    async def _pipe(self, src, dst, terminal, hook):
        dec = dlt645.Decoder()
        while True:
            data = await src.read(512)
            if not data:
                return
            if hook is None:
                dst.write(data)
                continue
            frame = dec.feed(data)
            while frame is not None:
                act = hook(frame)
                if act in (PASS, CLOSE):
                    dst.write(dlt645.encode(frame.address, frame.control, frame.data))
                if act == CLOSE:
                    await dst.drain()
                    await asyncio.sleep(0.3)  # the meter acts on it
                if act in (CLOSE, CUT):
                    return
                if isinstance(act, bytes):
                    terminal.write(act)
                if isinstance(act, float):  # passed on that many seconds late
                    asyncio.get_running_loop().call_later(
                        act, dst.write, dlt645.encode(frame.address, frame.control, frame.data))
                frame = dec.feed()


def forged(control, data):
    return dlt645.encode(M1, control, data)


DONE = forged(0x83, TOPUP)  # "credited", as the meter would answer
REPEAT = forged(0xC3, bytes((ms.SERR_REPEAT, 0)))


def run(sim, body, mitm=None):
    """Run body(client, bus) as a coroutine against the simulator (through
    mitm when given)."""
    async def main():
        spec = sim.bus
        if mitm is not None:
            await mitm.start()
            spec = mitm.spec
        bus = RecordingBus(TcpUart(spec, BAUD))
        try:
            return await body(MeterClient(bus), bus)
        finally:
            bus.uart.close()
            if mitm is not None:
                mitm.close()
    return asyncio.run(main())


def credit(amount, count, customer=CUST1, address=M1, **kw):
    """A body running credit() with the test keys."""
    async def body(client, bus):
        return await mc.credit(client, address, km(address), amount, count, customer, **kw)
    return body


@pytest.fixture
def sim():
    with MeterSim(count=2, baud=BAUD) as s:
        yield s


def state(sim, address=M1):
    m = sim.meter(address)
    return m["balance"], m["count"]


def topups_at_meter(sim):
    """Top-up frames that reached the simulator."""
    return [f for f in sim.control("log")["frames"] if is_topup(bytes.fromhex(f))]


def session(client, address=M1, key=None):
    return ms.MeterSession(client, address, key or km(address), operator=OP)


def test_full_session(sim):
    async def body(client, bus):
        s = session(client)
        serial = await s.authenticate()
        before = await s.read_back()
        assert await s.send_top_up(10000, before.count + 1, before.customer) is None
        after = await s.read_back()
        await s.end()
        return serial, before, after
    serial, before, after = run(sim, body)
    assert len(serial) == 8
    assert (before.balance, before.count, before.customer) == (10000, 1, CUST1)
    assert (after.balance, after.count) == (20000, 2)
    assert state(sim) == (20000, 2)


def test_credit_flow_and_the_operator_code_on_the_wire(sim):
    async def body(client, bus):
        r = await mc.credit(client, M1, km(M1), 2550, 2, CUST1, operator=OP)
        return r, bus.frames
    c, frames = run(sim, body)
    assert c.result == ms.CREDITED and c.before.balance == 10000
    assert (c.after.balance, c.after.count) == (12550, 2)
    assert state(sim) == (12550, 2)
    assert len([f for f in frames if is_topup(f)]) == 1
    for f in frames:
        d = dlt645.decode(f).data
        assert d[4:8] == OP


def test_negative_balance_is_signed(sim):
    sim.set(M1, balance=-350)
    sim.set(M2, balance=-0x80000000)

    async def body(client, bus):
        out = []
        for a in (M1, M2):
            s = session(client, a)
            await s.authenticate()
            out.append((await s.read_back()).balance)
        return out
    assert run(sim, body) == [-350, -0x80000000]


def test_repeat_top_up_is_already_and_sends_nothing(sim):
    async def body(client, bus):
        s = session(client)
        await s.authenticate()
        await s.read_back()
        await s.send_top_up(500, 2, CUST1)
        await s.authenticate()
        await s.read_back()
        with pytest.raises(ms.RepeatTopUp):  # the meter's word, no proof
            await s.send_top_up(500, 2, CUST1)
        sent = len(bus.frames)
        c = await mc.credit(client, M1, km(M1), 500, 2, CUST1)
        return c, [f for f in bus.frames[sent:] if is_topup(f)]
    c, topups = run(sim, body)
    assert c.result == ms.ALREADY and c.after.count == 2 and c.after.balance == 10500
    assert topups == []  # the MAC-checked read-back showed the count: nothing to send
    assert state(sim) == (10500, 2)


def test_before_send_runs_once_just_before_the_frame_and_can_stop_it(sim):
    seen, buses = [], []

    class Full(Exception):
        pass

    def journal_full(before):
        seen.append((before.count, len(buses[0].frames)))
        raise Full

    async def body(client, bus):
        buses.append(bus)
        with pytest.raises(Full):  # nothing sent: its exception, not a TopUpSent
            await mc.credit(client, M1, km(M1), 700, 2, CUST1, before_send=journal_full)
        stopped = [f for f in bus.frames if is_topup(f)]
        await mc.credit(client, M1, km(M1), 700, 2, CUST1, before_send=seen.append)
        await mc.credit(client, M1, km(M1), 700, 2, CUST1, before_send=seen.append)  # ALREADY
        return stopped
    assert run(sim, body) == []
    assert seen[0] == (1, 2)  # after authentication and read-back, before the top-up
    assert len(seen) == 2 and seen[1].count == 1  # not called for ALREADY
    assert state(sim) == (10700, 2)


# ---- a reply proves nothing: only a MAC-checked read-back decides -----------

@pytest.mark.parametrize("answer", [DONE, REPEAT], ids=["83", "C3-repeat"])
def test_a_forged_done_is_not_believed(sim, answer):
    # Every top-up frame swallowed, "done" answered: the count never moves.
    mitm = Mitm(sim, request=lambda f: answer if is_topup(f) else PASS)
    with pytest.raises(mc.Unconfirmed) as e:
        run(sim, credit(700, 2), mitm)
    assert state(sim) == (10000, 1) and topups_at_meter(sim) == []
    u = e.value
    assert u.count == 2 and u.before.count == 1 and u.after.count == 1
    assert isinstance(u, mc.TopUpSent) and not isinstance(u, dlt645.DLTError)


@pytest.mark.parametrize("answer", [DONE, REPEAT], ids=["83", "C3-repeat"])
def test_a_forged_done_once_then_the_resend_lands_once(sim, answer):
    swallowed = []

    def request(f):
        if is_topup(f) and not swallowed:
            swallowed.append(f)
            return answer
        return PASS
    c = run(sim, credit(700, 2), Mitm(sim, request=request))
    assert c.result == ms.CREDITED and c.after.count == 2
    assert state(sim) == (10700, 2) and len(topups_at_meter(sim)) == 1


def test_a_forged_refusal_is_checked_too(sim):
    # The top-up lands; the meter's 83 is replaced by "over the hoarding limit".
    over = forged(0xC3, bytes((ms.SERR_HOARD, 0)))
    mitm = Mitm(sim, reply=lambda f: over if f.data[0:4] == TOPUP else PASS)
    c = run(sim, credit(700, 2), mitm)
    assert c.result == ms.CREDITED and (c.after.balance, c.after.count) == (10700, 2)
    assert state(sim) == (10700, 2) and len(topups_at_meter(sim)) == 1


# ---- after the top-up frame, any failure is Unconfirmed ----------------------

def unconfirmed(sim, body, mitm=None):
    with pytest.raises(mc.Unconfirmed) as e:
        run(sim, body, mitm)
    assert e.value.count == 2 and e.value.before.count == 1
    assert not isinstance(e.value, dlt645.DLTError)
    return e.value


def test_bus_closed_after_the_top_up_is_unconfirmed(sim):
    mitm = Mitm(sim, request=lambda f: CLOSE if is_topup(f) else PASS)
    u = unconfirmed(sim, credit(700, 2), mitm)
    assert u.after is None and u.cause is not None
    assert state(sim) == (10700, 2)  # it did land: "unconfirmed" was right


def test_bus_closed_before_the_top_up_is_bus_closed(sim):
    mitm = Mitm(sim, request=lambda f: CUT)
    with pytest.raises(BusClosed):
        run(sim, credit(700, 2), mitm)
    assert state(sim) == (10000, 1)


def test_bad_read_back_mac_after_the_top_up_is_unconfirmed(sim):
    def request(f):
        if is_topup(f):
            sim.fault(M1, "bad_readback_mac", times=-1)
        return PASS
    u = unconfirmed(sim, credit(700, 2), Mitm(sim, request=request))
    assert isinstance(u.cause, ms.NotAuthenticated)
    assert state(sim) == (10700, 2)


def test_no_reply_after_the_top_up_and_none_after_is_unconfirmed(sim):
    sent = []

    def request(f):
        sent.append(is_topup(f))
        return PASS
    mitm = Mitm(sim, request=request, reply=lambda f: DROP if any(sent) else PASS)
    u = unconfirmed(sim, credit(700, 2), mitm)
    assert isinstance(u.cause, dlt645.NoReply)
    assert state(sim) == (10700, 2)


@pytest.mark.parametrize("fault, exc", [("wrong_key", ms.AuthFailed),
                                        ("bad_readback_mac", ms.NotAuthenticated),
                                        ("no_reply", dlt645.NoReply)])
def test_failures_before_the_top_up_keep_their_type_and_send_nothing(sim, fault, exc):
    key = km(M1)
    if fault == "wrong_key":
        key = km(M1, bytes(range(16)))
    else:
        sim.fault(M1, fault, times=-1)

    async def body(client, bus):
        try:
            await mc.credit(client, M1, key, 700, 2, CUST1)
        finally:
            assert not [f for f in bus.frames if is_topup(f)]
    with pytest.raises(exc) as e:
        run(sim, body)
    assert not isinstance(e.value, mc.TopUpSent)
    assert state(sim) == (10000, 1)


def test_one_bad_read_back_before_the_top_up_is_read_again_in_a_new_session(sim):
    """A late reply (a stale R2) or a line that lied makes the first
    read-back's MACs fail: the meter accepted our C1, so credit() asks once
    more in a fresh session before anything is sent; the purchase lands
    once and the meter counted no failure."""
    sim.fault(M1, "bad_readback_mac", times=1)
    c = run(sim, credit(700, 2))
    assert c.result == mc.CREDITED and c.after.count == 2
    assert state(sim) == (10700, 2)
    assert len(topups_at_meter(sim)) == 1
    assert sim.meter(M1)["failures"] == 0


def test_a_late_identity_reply_does_not_answer_the_retry(sim):
    """The meter's first identity reply (R2a) comes after the terminal gave
    up on it; the retry makes the meter pick R2b. Taking the late R2a for
    the retry's answer would pair it with a session key the meter does not
    hold: the line is left to go quiet first, and the purchase lands once."""
    late = []

    def reply(f):
        if f.data[0:4] == bytes.fromhex("ff000007") and not late:  # DI 070000FF
            late.append(f)
            return 1.15  # after the 1 s timeout, inside the retry's wait
        return PASS
    c = run(sim, credit(700, 2), Mitm(sim, reply=reply))
    assert late and c.result == mc.CREDITED
    assert state(sim) == (10700, 2)
    assert len(topups_at_meter(sim)) == 1


def test_amount_zero_is_refused_before_anything_is_sent(sim):
    async def body(client, bus):
        with pytest.raises(ValueError):
            await mc.credit(client, M1, km(M1), 0, 2, CUST1)
        assert bus.frames == []  # not even an authentication
        s = session(client)
        await s.authenticate()
        await s.read_back()
        with pytest.raises(ValueError):
            await s.send_top_up(0, 2, CUST1)
        return [f for f in bus.frames if is_topup(f)]
    assert run(sim, body) == []
    assert state(sim) == (10000, 1)


# ---- attacks: each must leave balance and count as they were ----------------

def expect(sim, body, exc, address=M1):
    before = state(sim, address)
    with pytest.raises(exc) as e:
        run(sim, body)
    assert state(sim, address) == before
    return e.value


def test_wrong_key(sim):
    async def body(client, bus):
        s = session(client, key=km(M1, bytes(range(16))))
        await s.authenticate()
    e = expect(sim, body, ms.AuthFailed)
    assert e.serr & ms.SERR_AUTH and isinstance(e, dlt645.SecurityError)
    assert sim.meter(M1)["failures"] == 1


def test_another_meters_key(sim):
    async def body(client, bus):
        await session(client, M1, key=km(M2)).authenticate()
    expect(sim, body, ms.AuthFailed)


def test_wrong_dispersion_factor(sim):
    async def body(client, bus):
        s = session(client)
        s.factor = ms.dispersion(M2)  # right key, factor of another meter
        await s.authenticate()
    expect(sim, body, ms.AuthFailed)

    async def body2(client, bus):
        s = ms.MeterSession(client, M1, km(M2))
        s.factor = ms.dispersion(M2)  # a consistent pair, for the wrong meter
        await s.authenticate()
    expect(sim, body2, ms.AuthFailed)


def test_forged_c1(sim):
    async def body(client, bus):
        s = session(client)
        r1 = bytes(8)
        c1 = bytearray(sm4.encrypt(km(M1), r1 + s.factor)[:8])
        c1[7] ^= 1
        await s.call(ms.DI_AUTH, bytes(c1) + r1 + s.factor)
    expect(sim, body, ms.AuthFailed)


@pytest.mark.parametrize("where", [8, 11, 18, 21], ids=["mac1", "mac1b", "mac2", "mac2b"])
def test_forged_top_up_macs(sim, where):
    async def body(client, bus):
        s = session(client)
        await s.authenticate()
        await s.read_back()
        p = bytearray(s.topup_payload(90000, 2, CUST1))
        p[where] ^= 0x40
        try:
            await s.call(ms.DI_TOPUP, bytes(p), retries=0)
        finally:
            assert not s.active  # a refusal ends the session
    expect(sim, body, ms.MacRejected)


def test_forged_amount_under_good_macs_of_another_amount(sim):
    async def body(client, bus):
        s = session(client)
        await s.authenticate()
        await s.read_back()
        p = bytearray(s.topup_payload(100, 2, CUST1))
        p[0:4] = (900000).to_bytes(4, "little")
        await s.call(ms.DI_TOPUP, bytes(p), retries=0)
    expect(sim, body, ms.MacRejected)


def test_forged_read_back_mac(sim):
    sim.fault(M1, "bad_readback_mac")

    async def body(client, bus):
        s = session(client)
        await s.authenticate()
        try:
            await s.read_back()
        finally:
            with pytest.raises(ms.NotAuthenticated):
                await s.send_top_up(100, 2, CUST1)  # no credit without a good read-back
            assert not [f for f in bus.frames if is_topup(f)]
    e = expect(sim, body, ms.NotAuthenticated)
    assert "MAC" in str(e)


def test_top_up_needs_a_good_read_back_first(sim):
    async def body(client, bus):
        s = session(client)
        with pytest.raises(ms.NotAuthenticated):
            await s.read_back()
        await s.authenticate()
        await s.send_top_up(100, 2, CUST1)
    expect(sim, body, ms.NotAuthenticated)


def test_one_top_up_frame_per_read_back(sim):
    async def body(client, bus):
        s = session(client)
        await s.authenticate()
        await s.read_back()
        await s.send_top_up(100, 2, CUST1)
        with pytest.raises(ms.NotAuthenticated):
            await s.send_top_up(100, 3, CUST1)
        return (await s.read_back()).count
    assert run(sim, body) == 2 and state(sim) == (10100, 2)


def _find_topup(frames):
    for f in frames:
        if is_topup(f):
            return f
    raise AssertionError("no top-up frame sent")


def _inject(sim, frame):
    reply = sim.control("inject", hex=bytes(frame).hex())["reply"]
    assert reply is not None
    return dlt645.decode(bytes.fromhex(reply))


def test_replayed_top_up_frame_same_session_and_new_session(sim):
    async def body(client, bus):
        s = session(client)
        await s.authenticate()
        await s.read_back()
        await s.send_top_up(3000, 2, CUST1)
        # the frame as the simulator logged it off the wire
        frame = _find_topup(bytes.fromhex(x) for x in sim.control("log", n=10)["frames"])
        assert frame in _find_topup(bus.frames)
        same = _inject(sim, frame)  # session still open: the count rule stops it
        await s.authenticate()
        await s.read_back()
        new = _inject(sim, frame)  # another session key: MACs fail
        return same, new
    same, new = run(sim, body)
    assert same.control == 0xC3 and (same.data[0] | same.data[1] << 8) & ms.SERR_REPEAT
    assert new.control == 0xC3 and (new.data[0] | new.data[1] << 8) & ms.SERR_MAC
    assert state(sim) == (13000, 2)  # credited once


def test_count_plus_two(sim):
    async def body(client, bus):
        s = session(client)
        await s.authenticate()
        st = await s.read_back()
        await s.send_top_up(100, st.count + 2, CUST1)
    e = expect(sim, body, ms.CountError)
    assert e.serr == ms.SERR_COUNT


def test_credit_refuses_a_count_the_meter_would_refuse_without_sending(sim):
    async def body(client, bus):
        try:
            await mc.credit(client, M1, km(M1), 100, 3, CUST1)
        finally:
            assert not [f for f in bus.frames if is_topup(f)]
    e = expect(sim, body, ms.CountError)
    assert e.status.count == 1 and not isinstance(e, mc.TopUpSent)


def test_customer_mismatch(sim):
    async def body(client, bus):
        s = session(client)
        await s.authenticate()
        await s.read_back()
        await s.send_top_up(100, 2, "100000000002")
    expect(sim, body, ms.CustomerMismatch)

    async def body2(client, bus):
        try:
            await mc.credit(client, M1, km(M1), 100, 2, "100000000002")
        finally:
            assert not [f for f in bus.frames if is_topup(f)]
    e = expect(sim, body2, ms.CustomerMismatch)
    assert e.status.customer == CUST1


def test_account_not_opened_is_a_confirmed_refusal(sim):
    sim.set(M1, opened=False)
    e = expect(sim, credit(100, 2), mc.Refused)
    assert isinstance(e.reason, ms.NotOpened) and isinstance(e, mc.TopUpSent)
    assert e.count == 2 and e.after.count == 1


def test_hoarding_limit(sim):
    sim.set(M1, hoarding_limit=15000)
    e = expect(sim, credit(5001, 2), mc.Refused)
    assert isinstance(e.reason, ms.OverLimit) and e.after.balance == 10000
    assert run(sim, credit(5000, 2)).result == ms.CREDITED
    assert state(sim) == (15000, 2)


def test_expired_session(sim):
    async def body(client, bus):
        s = session(client)
        await s.authenticate()
        await s.read_back()
        sim.control("expire_sessions")
        await s.send_top_up(100, 2, CUST1)
    expect(sim, body, ms.AuthFailed)


def test_sixteenth_failure_of_the_day(sim):
    bad = km(M1, bytes(range(16)))

    async def body(client, bus):
        for _ in range(15):
            with pytest.raises(ms.AuthFailed):
                await session(client, key=bad).authenticate()
        await session(client).authenticate()  # right key, refused all day
    expect(sim, body, ms.AuthFailed)
    sim.control("new_day")
    assert run(sim, credit(100, 2)).result == ms.CREDITED


def test_no_reply_after_top_up_is_credited_once(sim):
    sim.fault(M1, "drop_reply_after_topup")
    c = run(sim, credit(700, 2))
    assert c.result == ms.CREDITED and c.after.count == 2 and c.after.balance == 10700
    assert state(sim) == (10700, 2) and len(topups_at_meter(sim)) == 1


@pytest.mark.parametrize("kind", ["truncated", "bad_checksum"])
def test_garbled_reply_to_the_top_up_is_checked_not_resent(sim, kind):
    def arm(f):  # the simulator's fault, armed just before each top-up frame
        if is_topup(f):
            sim.fault(M1, kind)
        return PASS

    async def body(client, bus):
        s = session(client)
        await s.authenticate()
        await s.read_back()
        with pytest.raises(dlt645.FrameError):
            await s.send_top_up(700, 2, CUST1)
        assert not s.active
        return await mc.credit(client, M1, km(M1), 300, 3, CUST1), bus.frames
    c, frames = run(sim, body, Mitm(sim, request=arm))
    assert c.result == ms.CREDITED and (c.before.count, c.after.count) == (2, 3)
    assert state(sim) == (11000, 3)
    assert len([f for f in frames if is_topup(f)]) == 2  # one each, never resent


def test_no_reply_raises_at_session_level_and_is_never_resent(sim):
    sim.fault(M1, "drop_reply_after_topup")

    async def body(client, bus):
        s = session(client)
        await s.authenticate()
        await s.read_back()
        with pytest.raises(dlt645.NoReply):
            await s.send_top_up(700, 2, CUST1)
        return len([f for f in bus.frames if is_topup(f)])
    assert run(sim, body) == 1
    assert state(sim) == (10700, 2)


def test_lost_top_up_frame_is_sent_again_after_the_read_back_shows_nothing_landed(sim):
    lost = []

    def request(f):  # the first top-up frame never reaches the meter
        if is_topup(f) and not lost:
            lost.append(f)
            return DROP
        return PASS
    c = run(sim, credit(700, 2), Mitm(sim, request=request))
    assert c.result == ms.CREDITED and state(sim) == (10700, 2)
    assert len(topups_at_meter(sim)) == 1


def test_typed_errors_for_every_serr_bit():
    cases = [(0x01, ms.NotOpened), (0x02, ms.RepeatTopUp), (0x04, ms.MacRejected),
             (0x08, ms.AuthFailed), (0x10, ms.CustomerMismatch), (0x20, ms.CountError),
             (0x40, ms.OverLimit), (0x0C, ms.AuthFailed), (0x24, ms.MacRejected),
             (0x80, dlt645.SecurityError)]
    for serr, cls in cases:
        e = ms.typed_error(serr)
        assert type(e) is cls and e.serr == serr and isinstance(e, dlt645.SecurityError)
        assert e.reasons


def test_bad_inputs():
    s = ms.MeterSession(None, M1, km(M1))
    s._ks = sm4.Cipher(bytes(16))
    for amount, count in ((-1, 2), (1 << 32, 2), (1, -1), (1, 1 << 32), (1.5, 2)):
        with pytest.raises(ValueError):
            s.topup_payload(amount, count, CUST1)
    with pytest.raises(ValueError):
        s.topup_payload(1, 2, "12345")
    with pytest.raises(ValueError):
        ms.MeterSession(None, M1, km(M1), operator=b"\0\0\0")
    with pytest.raises(ValueError):
        ms.MeterSession(None, M1, b"short")
    for address in ("999999999999", "AAAAAAAAAAAA", "00000000000A"):
        with pytest.raises(dlt645.BadAddress):
            ms.MeterSession(None, address, km(M1))
    for amount, count in ((0, 2), (True, 2)):  # 0 would use up a purchase count
        with pytest.raises(ValueError):
            s.topup_payload(amount, count, CUST1)
    assert ms.dispersion(M1).hex() == "0100000000000000"
