"""The terminal side of DL/T 645 control 03 (security-profile.md): identity
authentication with the meter's ESAM, the MAC-checked status read-back, the
top-up and the end of the session.

    s = MeterSession(client, "000000000001", keystore.meter_key(addr),
                     operator=keystore.operator_code)
    await s.authenticate()
    st = await s.read_back()           # Status; the meter is now authenticated
    r = await s.top_up(10000, st.count + 1, st.customer)   # "credited" / "already"
    await s.end()

or all of it, with the no-reply recovery, in credit(...).

Trust: the meter's identity reply proves nothing by itself; the terminal
trusts a meter (and its balance and count) only once a read-back's MACs,
computed under the session key, check out. top_up() refuses to run before
that. The operator code sent in every 03 frame is the terminal id's low
four bytes as sent (KeyStore.operator_code); zeros if none is given.

Every SERR bit becomes a typed error (subclasses of dlt645.SecurityError,
so .serr and .reasons stay), except "repeat top-up": the credit is already
on the meter, so top_up() returns ALREADY instead of raising.
"""
import os

from micropython import const

import bcd
import dlt645
import sm4

DI_AUTH = const(0x070000FF)
DI_READBACK = const(0x078102FF)
DI_TOPUP = const(0x070102FF)
DI_END = const(0x070002FF)
_TIMEOUT_MS = const(1000)  # a meter may take up to 1 s over a 03 command

SERR_OTHER = const(0x01)  # also: account not opened
SERR_REPEAT = const(0x02)
SERR_MAC = const(0x04)
SERR_AUTH = const(0x08)
SERR_CUSTOMER = const(0x10)
SERR_COUNT = const(0x20)
SERR_HOARD = const(0x40)

CREDITED = "credited"
ALREADY = "already"


class AuthFailed(dlt645.SecurityError):
    """SERR bit 3: wrong key or factor, session expired, or too many
    failures today. Authenticate again (tomorrow, after 15 failures)."""


class NotOpened(dlt645.SecurityError):
    """SERR bit 0: account not opened (or another error): first purchase at the meter."""


class MacRejected(dlt645.SecurityError):
    """SERR bit 2: the meter's ESAM rejected our MACs."""


class CustomerMismatch(dlt645.SecurityError):
    """SERR bit 4: the customer number is not the meter's."""


class CountError(dlt645.SecurityError):
    """SERR bit 5: the purchase count is not the meter's count + 1."""


class OverLimit(dlt645.SecurityError):
    """SERR bit 6: balance + amount would pass the hoarding limit."""


class RepeatTopUp(dlt645.SecurityError):
    """SERR bit 1 outside a top-up (a top-up returns ALREADY instead)."""


class NotAuthenticated(dlt645.DLTError):
    """The meter did not prove it holds the key: a read-back MAC is wrong,
    or credit was asked for before a good read-back. No credit may move."""


class Unconfirmed(dlt645.DLTError):
    """The top-up got no reply and the meter could not be asked afterwards:
    whether it landed is unknown. Ask again later (read-back), never resend blindly."""


# The top-up frame went out but no good reply came back: it may have landed.
_OUTCOME_UNKNOWN = (dlt645.NoReply, dlt645.FrameError, dlt645.WrongAddress,
                    dlt645.WrongDI, dlt645.UnexpectedReply)

# Most telling first, in the order the meter checks them.
_SERR_CLASSES = ((SERR_AUTH, AuthFailed), (SERR_OTHER, NotOpened), (SERR_MAC, MacRejected),
                 (SERR_CUSTOMER, CustomerMismatch), (SERR_REPEAT, RepeatTopUp),
                 (SERR_COUNT, CountError), (SERR_HOARD, OverLimit))


def typed_error(serr):
    """SERR word -> the matching exception instance."""
    for bit, cls in _SERR_CLASSES:
        if serr & bit:
            return cls(serr)
    return dlt645.SecurityError(serr)


def dispersion(address):
    """F = meter number as sent (6 bytes, low byte first) || 00 00."""
    return dlt645.address_bytes(address) + b"\x00\x00"


def _u32(v, what):
    if not isinstance(v, int) or v < 0 or v > 0xFFFFFFFF:
        raise ValueError("%s must be an integer in 0..4294967295" % what)
    return v.to_bytes(4, "little")


def _s32(b):
    v = int.from_bytes(b, "little")
    return v - 0x100000000 if v & 0x80000000 else v


def _same(a, b):
    # Compare MACs without stopping at the first differing byte.
    d = len(a) ^ len(b)
    for i in range(min(len(a), len(b))):
        d |= a[i] ^ b[i]
    return d == 0


def _not(b):
    return bytes(x ^ 0xFF for x in b)


class Status:
    """A MAC-checked read-back: balance (signed fen), purchase count, customer
    (12 digits; customer_raw as sent), key info (4 bytes)."""

    def __init__(self, balance, count, customer_raw, key_info):
        self.balance = balance
        self.count = count
        self.customer_raw = customer_raw
        self.customer = bcd.to_digits(customer_raw)
        self.key_info = key_info

    def __repr__(self):
        return "Status(balance=%d, count=%d, customer=%s)" % (self.balance, self.count, self.customer)


class MeterSession:
    def __init__(self, client, address, meter_key, operator=b"\x00\x00\x00\x00"):
        if not isinstance(operator, (bytes, bytearray)) or len(operator) != 4:
            raise ValueError("operator code must be 4 bytes")
        self.client = client
        self.address = address
        self.factor = dispersion(address)
        self.operator = bytes(operator)
        self._km = sm4.Cipher(meter_key)
        self._ks = None  # Cipher under the session key
        self.verified = False  # a read-back's MACs checked out in this session
        self.esam_serial = None

    @property
    def active(self):
        return self._ks is not None

    async def call(self, di, payload, retries=None):
        """One 03 exchange; returns the reply data after the DI. A refusal
        ends the session (the profile says so) and raises its typed error."""
        data = di.to_bytes(4, "little") + self.operator + payload
        try:
            reply = await self.client.exchange(self.address, dlt645.CTRL_SECURITY, data,
                                               timeout_ms=_TIMEOUT_MS, retries=retries, di=di)
        except dlt645.SecurityError as e:
            self._drop()
            raise typed_error(e.serr)
        return reply.data[4:]

    def _drop(self):
        self._ks = None
        self.verified = False

    async def authenticate(self):
        """Identity authentication (070000FF): sets the session key; returns the ESAM serial."""
        self._drop()
        r1 = os.urandom(8)
        c1 = self._km.encrypt(r1 + self.factor)[0:8]
        rep = await self.call(DI_AUTH, c1 + r1 + self.factor)
        if len(rep) != 12:
            raise dlt645.LengthError("identity reply of %d bytes, want 12" % len(rep))
        r2 = rep[0:4]
        self._ks = sm4.Cipher(self._km.encrypt(r1 + r2 + _not(r2)))
        self.esam_serial = rep[4:12]
        return self.esam_serial

    def _need_session(self):
        if self._ks is None:
            raise NotAuthenticated("no session with meter %s: authenticate first" % self.address)

    async def read_back(self):
        """Status read-back (078102FF) with both MACs checked -> Status."""
        self._need_session()
        r3 = os.urandom(4)
        rep = await self.call(DI_READBACK, r3)
        if len(rep) != 26:
            self._drop()
            raise dlt645.LengthError("read-back of %d bytes, want 26" % len(rep))
        bal, mac_b, cnt, mac_c = rep[0:4], rep[4:8], rep[8:12], rep[12:16]
        cust = rep[16:22]
        di = DI_READBACK.to_bytes(4, "little")
        ks = self._ks
        if not (_same(ks.mac(r3 + di + bal), mac_b) and _same(ks.mac(r3 + di + cnt + cust), mac_c)):
            self._drop()
            raise NotAuthenticated("meter %s: read-back MAC wrong, meter not authenticated"
                                   % self.address)
        try:
            st = Status(_s32(bal), int.from_bytes(cnt, "little"), cust, rep[22:26])
        except ValueError:
            self._drop()
            raise NotAuthenticated("meter %s: customer number is not BCD" % self.address)
        self.verified = True
        return st

    def topup_payload(self, amount, count, customer):
        """amount(4) || count(4) || MAC1 || customer(6) || MAC2 under the session key."""
        self._need_session()
        ac = _u32(amount, "amount") + _u32(count, "purchase count")
        cust = bcd.from_digits(customer) if isinstance(customer, str) else bytes(customer)
        if len(cust) != 6:
            raise ValueError("customer number must be 6 bytes")
        di = DI_TOPUP.to_bytes(4, "little")
        return ac + self._ks.mac(di + ac) + cust + self._ks.mac(di + cust + ac)

    async def top_up(self, amount, count, customer):
        """Top-up (070102FF), sent once (never retried: after no reply or a
        garbled one, ask the meter what happened, see credit()). Returns
        CREDITED, or ALREADY when the meter holds this count already (the
        credit is there)."""
        self._need_session()
        if not self.verified:
            raise NotAuthenticated("meter %s: no good read-back in this session" % self.address)
        payload = self.topup_payload(amount, count, customer)
        try:
            await self.call(DI_TOPUP, payload, retries=0)
        except RepeatTopUp:
            return ALREADY
        except _OUTCOME_UNKNOWN:
            self._drop()  # the meter may still hold the session; we do not
            raise
        return CREDITED

    async def end(self):
        """End of session (070002FF). Best effort: the meter expires it anyway."""
        if self._ks is None:
            return
        self._drop()
        try:
            await self.call(DI_END, b"")
        except dlt645.DLTError:
            pass


async def credit(client, address, meter_key, amount, count, customer, operator=b"\x00\x00\x00\x00"):
    """Move `amount` fen as purchase `count` onto a meter, safely.
    -> (CREDITED or ALREADY, Status before, Status after).

    After no reply (or a garbled one) to the top-up frame the outcome is
    learnt, never guessed:
    a fresh authentication and read-back; if the count is there it landed
    (CREDITED), if it is still count - 1 the frame was lost and is sent
    once more in the new session (the count rule makes that safe).
    Raises the typed errors above for real failures (CustomerMismatch is
    raised before any top-up frame when the read-back shows another customer)."""
    s = MeterSession(client, address, meter_key, operator)
    await s.authenticate()
    before = await s.read_back()
    if before.customer != (customer if isinstance(customer, str) else bcd.to_digits(customer)):
        await s.end()
        raise CustomerMismatch(SERR_CUSTOMER)
    for attempt in range(2):
        try:
            result = await s.top_up(amount, count, customer)
            break
        except _OUTCOME_UNKNOWN:
            try:
                await s.authenticate()
                now = await s.read_back()
            except dlt645.DLTError:
                raise Unconfirmed("meter %s: no reply to the top-up and none after" % address)
            if now.count == count:
                result = CREDITED if before.count != count else ALREADY
                break
            if now.count != before.count or attempt:
                raise Unconfirmed("meter %s: count %d after a lost top-up of count %d"
                                  % (address, now.count, count))
    if not s.active:  # "repeat top-up" was an SERR reply: it ended the session
        await s.authenticate()
    after = await s.read_back()
    await s.end()
    return result, before, after
