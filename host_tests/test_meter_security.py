"""The meter security client against the independent meter simulator over a
real byte stream (TCP): the session, then every attack and fault, each
checking the meter's own balance and count afterwards.

CPython drives the firmware modules here (MeterClient, MeterSession) through
a small asyncio TCP bus with the RS-485 driver's transact() contract; the
full session also runs under MicroPython through the real driver
(test_meter_security_mp.py)."""
import asyncio

import pytest

import dlt645
import meter_security as ms
import sm4
from meter import MeterClient
from meter_sim_ctl import MeterSim

BAUD = 9600
MK_M = bytes.fromhex("0123456789abcdeffedcba9876543210")
M1 = "000000000001"
M2 = "000000000002"
CUST1 = "100000000001"
OP = bytes.fromhex("99000000")  # terminal 000000000099's low four bytes


def km(address, master=MK_M):
    return sm4.kdf(master, ms.dispersion(address))


class TcpBus:
    """transact(frame, decoder, timeout_ms) over asyncio streams, as drivers/rs485.py does it."""

    def __init__(self, spec):
        _, host, port = spec.split(":")
        self.host, self.port = host, int(port)
        self.frames = []  # every request sent, for replay tests

    async def open(self):
        self.r, self.w = await asyncio.open_connection(self.host, self.port)

    def close(self):
        self.w.close()

    async def send(self, frame):
        self.w.write(frame)
        await self.w.drain()

    async def transact(self, frame, decoder, timeout_ms):
        while True:  # drop a late reply to an earlier request
            try:
                await asyncio.wait_for(self.r.read(512), 0.001)
            except asyncio.TimeoutError:
                break
        self.frames.append(bytes(frame))
        await self.send(frame)
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_ms / 1000
        while True:
            left = end - loop.time()
            if left <= 0:
                return None
            try:
                chunk = await asyncio.wait_for(self.r.read(256), left)
            except asyncio.TimeoutError:
                return None
            if not chunk:
                return None
            got = decoder.feed(chunk)
            if got is not None:
                return got
            end = max(end, loop.time() + 0.2)  # bytes are flowing: inter-byte gap


def run(sim, body):
    """Run body(client, bus) as a coroutine against the simulator."""
    async def main():
        bus = TcpBus(sim.bus)
        await bus.open()
        try:
            return await body(MeterClient(bus), bus)
        finally:
            bus.close()
    return asyncio.run(main())


@pytest.fixture
def sim():
    with MeterSim(count=2, baud=BAUD) as s:
        yield s


def state(sim, address=M1):
    m = sim.meter(address)
    return m["balance"], m["count"]


def session(client, address=M1, key=None):
    return ms.MeterSession(client, address, key or km(address), operator=OP)


def test_full_session(sim):
    async def body(client, bus):
        s = session(client)
        serial = await s.authenticate()
        before = await s.read_back()
        result = await s.top_up(10000, before.count + 1, before.customer)
        after = await s.read_back()
        await s.end()
        return serial, before, result, after
    serial, before, result, after = run(sim, body)
    assert len(serial) == 8
    assert (before.balance, before.count, before.customer) == (10000, 1, CUST1)
    assert result == ms.CREDITED
    assert (after.balance, after.count) == (20000, 2)
    assert state(sim) == (20000, 2)


def test_credit_flow_and_the_operator_code_on_the_wire(sim):
    async def body(client, bus):
        r = await ms.credit(client, M1, km(M1), 2550, 2, CUST1, operator=OP)
        return r, bus.frames
    (result, before, after), frames = run(sim, body)
    assert result == ms.CREDITED and before.balance == 10000 and after.balance == 12550
    assert state(sim) == (12550, 2)
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


def test_repeat_top_up_is_already_not_a_failure(sim):
    async def body(client, bus):
        s = session(client)
        await s.authenticate()
        await s.read_back()
        first = await s.top_up(500, 2, CUST1)
        await s.authenticate()
        await s.read_back()
        second = await s.top_up(500, 2, CUST1)
        third = await ms.credit(client, M1, km(M1), 500, 2, CUST1)
        return first, second, third[0]
    assert run(sim, body) == (ms.CREDITED, ms.ALREADY, ms.ALREADY)
    assert state(sim) == (10500, 2)


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
                await s.top_up(100, 2, CUST1)  # no credit without a good read-back
    e = expect(sim, body, ms.NotAuthenticated)
    assert "MAC" in str(e)


def test_top_up_needs_a_good_read_back_first(sim):
    async def body(client, bus):
        s = session(client)
        with pytest.raises(ms.NotAuthenticated):
            await s.read_back()
        await s.authenticate()
        await s.top_up(100, 2, CUST1)
    expect(sim, body, ms.NotAuthenticated)


def _find_topup(frames):
    for f in frames:
        d = dlt645.decode(f).data
        if d[0:4] == ms.DI_TOPUP.to_bytes(4, "little"):
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
        assert await s.top_up(3000, 2, CUST1) == ms.CREDITED
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
        await s.top_up(100, st.count + 2, CUST1)
    e = expect(sim, body, ms.CountError)
    assert e.serr == ms.SERR_COUNT


def test_customer_mismatch(sim):
    async def body(client, bus):
        s = session(client)
        await s.authenticate()
        await s.read_back()
        await s.top_up(100, 2, "100000000002")
    expect(sim, body, ms.CustomerMismatch)

    async def body2(client, bus):
        await ms.credit(client, M1, km(M1), 100, 2, "100000000002")
    expect(sim, body2, ms.CustomerMismatch)


def test_account_not_opened(sim):
    sim.set(M1, opened=False)

    async def body(client, bus):
        await ms.credit(client, M1, km(M1), 100, 2, CUST1)
    expect(sim, body, ms.NotOpened)


def test_hoarding_limit(sim):
    sim.set(M1, hoarding_limit=15000)

    async def body(client, bus):
        await ms.credit(client, M1, km(M1), 5001, 2, CUST1)
    expect(sim, body, ms.OverLimit)

    async def body2(client, bus):
        return await ms.credit(client, M1, km(M1), 5000, 2, CUST1)
    assert run(sim, body2)[0] == ms.CREDITED
    assert state(sim) == (15000, 2)


def test_expired_session(sim):
    async def body(client, bus):
        s = session(client)
        await s.authenticate()
        await s.read_back()
        sim.control("expire_sessions")
        await s.top_up(100, 2, CUST1)
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

    async def body2(client, bus):
        return await ms.credit(client, M1, km(M1), 100, 2, CUST1)
    assert run(sim, body2)[0] == ms.CREDITED


def test_no_reply_after_top_up_is_credited_once(sim):
    sim.fault(M1, "drop_reply_after_topup")

    async def body(client, bus):
        return await ms.credit(client, M1, km(M1), 700, 2, CUST1)
    result, before, after = run(sim, body)
    assert result == ms.CREDITED and after.count == 2 and after.balance == 10700
    assert state(sim) == (10700, 2)


@pytest.mark.parametrize("kind", ["truncated", "bad_checksum"])
def test_garbled_reply_to_the_top_up_is_checked_not_resent(sim, kind):
    class ArmingBus(TcpBus):
        """Arms the simulator fault just before each top-up frame goes out."""

        async def transact(self, frame, decoder, timeout_ms):
            if dlt645.decode(frame).data[0:4] == ms.DI_TOPUP.to_bytes(4, "little"):
                sim.fault(M1, kind)
            return await TcpBus.transact(self, frame, decoder, timeout_ms)

    async def main():
        bus = ArmingBus(sim.bus)
        await bus.open()
        client = MeterClient(bus)
        try:
            s = session(client)
            await s.authenticate()
            await s.read_back()
            with pytest.raises(dlt645.FrameError):
                await s.top_up(700, 2, CUST1)
            assert not s.active
            r = await ms.credit(client, M1, km(M1), 300, 3, CUST1)
            return r, bus.frames
        finally:
            bus.close()
    (result, before, after), frames = asyncio.run(main())
    assert result == ms.CREDITED and (before.count, after.count) == (2, 3)
    assert state(sim) == (11000, 3)
    topups = [f for f in frames if dlt645.decode(f).data[0:4] == ms.DI_TOPUP.to_bytes(4, "little")]
    assert len(topups) == 2  # one each, never resent


def test_no_reply_raises_at_session_level_and_is_never_resent(sim):
    sim.fault(M1, "drop_reply_after_topup")

    async def body(client, bus):
        s = session(client)
        await s.authenticate()
        await s.read_back()
        with pytest.raises(dlt645.NoReply):
            await s.top_up(700, 2, CUST1)
        sent = [f for f in bus.frames if dlt645.decode(f).data[0:4] == ms.DI_TOPUP.to_bytes(4, "little")]
        return len(sent)
    assert run(sim, body) == 1
    assert state(sim) == (10700, 2)


def test_lost_top_up_frame_is_sent_again_after_the_read_back_shows_nothing_landed(sim):
    class LosingBus(TcpBus):
        """Drops the first top-up frame on the floor (never reaches the meter)."""
        lost = False

        async def transact(self, frame, decoder, timeout_ms):
            if not self.lost and dlt645.decode(frame).data[0:4] == ms.DI_TOPUP.to_bytes(4, "little"):
                self.lost = True
                self.frames.append(bytes(frame))
                await asyncio.sleep(timeout_ms / 1000)
                return None
            return await TcpBus.transact(self, frame, decoder, timeout_ms)

    async def main():
        bus = LosingBus(sim.bus)
        await bus.open()
        try:
            return await ms.credit(MeterClient(bus), M1, km(M1), 700, 2, CUST1)
        finally:
            bus.close()
    result, before, after = asyncio.run(main())
    assert result == ms.CREDITED and state(sim) == (10700, 2)


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
    assert ms.dispersion(M1).hex() == "0100000000000000"
    assert ms._s32(bytes.fromhex("ffffffff")) == -1
    assert ms._s32(bytes.fromhex("ffffff7f")) == 0x7FFFFFFF
    assert ms._s32(bytes.fromhex("00000080")) == -0x80000000
