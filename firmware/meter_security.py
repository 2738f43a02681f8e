"""The terminal side of DL/T 645 control 03 (security-profile.md): identity
authentication with the meter's ESAM, the MAC-checked status read-back, the
top-up frame and the end of the session.

    s = MeterSession(client, "000000000001", keystore.meter_key(addr),
                     operator=keystore.operator_code)
    await s.authenticate()
    st = await s.read_back()           # Status; the meter is now authenticated
    await s.send_top_up(10000, st.count + 1, st.customer)
    st = await s.read_back()           # only this says whether it landed
    await s.end()

Moving money safely (deciding the outcome, recovering a lost frame) is
meter_credit.credit(); this module is the session it is built on.

Trust: the meter's identity reply proves nothing by itself; the terminal
trusts a meter (and its balance and count) only once a read-back's MACs,
computed under the session key, check out. send_top_up() refuses to run
before that. Nor does the reply to a top-up prove anything (it carries no
MAC: a man in the middle can swallow the frame and answer 83 himself): only
a later MAC-checked read-back showing the count says the credit landed. The
operator code sent in every 03 frame is the terminal id's low four bytes as
sent (KeyStore.operator_code); zeros if none is given.

Every SERR bit becomes a typed error (subclasses of dlt645.SecurityError,
so .serr and .reasons stay).
"""
import os

from micropython import const

import bcd
import common
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

# credit()'s results (meter_credit.py); a MAC-checked read-back decides them.
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
    """SERR bit 1: the meter says it holds this purchase count already (a
    claim without a MAC: only a read-back shows it)."""


class NotAuthenticated(dlt645.DLTError):
    """The meter has not proved it holds the key: a read-back MAC is wrong,
    or a top-up was asked for before a good read-back in this session.
    Raised before a top-up frame, it means none was sent; after one,
    credit() reports it as meter_credit.Unconfirmed instead."""


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


def customer_bytes(customer):
    """12 digits (or the 6 bytes as sent) -> the 6 bytes as sent."""
    cust = bcd.from_digits(customer) if isinstance(customer, str) else bytes(customer)
    if len(cust) != 6:
        raise ValueError("customer number must be 6 bytes")
    return cust


def topup_fields(amount, count):
    """amount(4) || count(4), refusing what no purchase can be: an amount
    of 0 would use up a purchase count for nothing."""
    if amount == 0:
        raise ValueError("amount must be at least 1 fen")
    return common.u32(amount, "amount") + common.u32(count, "purchase count")


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
        return "Status(balance=%d, count=%d, customer=%s)" % (
            self.balance, self.count, self.customer)


class MeterSession:
    """One control-03 session with one meter; it owns the session key."""

    def __init__(self, client, address, meter_key, operator=b"\x00\x00\x00\x00"):
        if not isinstance(operator, (bytes, bytearray)) or len(operator) != 4:
            raise ValueError("operator code must be 4 bytes")
        self.client = client
        self.address = dlt645.check_meter_address(address)  # never a broadcast
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
        self._ks = sm4.Cipher(self._km.encrypt(r1 + r2 + common.inverted(r2)))
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
        if not (common.same(ks.mac(r3 + di + bal), mac_b)
                and common.same(ks.mac(r3 + di + cnt + cust), mac_c)):
            self._drop()
            raise NotAuthenticated("meter %s: read-back MAC wrong, meter not authenticated"
                                   % self.address)
        try:
            st = Status(common.get_s32(bal), common.get_u32(cnt), cust, rep[22:26])
        except ValueError:
            self._drop()
            raise NotAuthenticated("meter %s: customer number is not BCD" % self.address)
        self.verified = True
        return st

    def topup_payload(self, amount, count, customer):
        """amount(4) || count(4) || MAC1 || customer(6) || MAC2 under the session key."""
        self._need_session()
        ac = topup_fields(amount, count)
        cust = customer_bytes(customer)
        di = DI_TOPUP.to_bytes(4, "little")
        return ac + self._ks.mac(di + ac) + cust + self._ks.mac(di + cust + ac)

    async def send_top_up(self, amount, count, customer):
        """Send the top-up frame (070102FF) once, never retried. Returns
        None; raises the typed error of an SERR reply (RepeatTopUp too).
        A good reply is no proof and neither is a refusal: only a
        MAC-checked read_back() afterwards says whether the count landed.

        Before the frame is written (nothing sent): NotAuthenticated without
        a good read-back in this session, ValueError for bad arguments.
        After it, every error means the outcome is unknown until read back,
        and the next send needs a new read-back first."""
        self._need_session()
        if not self.verified:
            raise NotAuthenticated("meter %s: no good read-back in this session" % self.address)
        payload = self.topup_payload(amount, count, customer)
        self.verified = False
        try:
            await self.call(DI_TOPUP, payload, retries=0)
        except Exception:
            self._drop()  # the meter may still hold the session; we do not
            raise

    async def end(self):
        """End of session (070002FF). Best effort, whatever goes wrong (a
        closed bus too): the meter expires the session anyway."""
        if self._ks is None:
            return
        self._drop()
        try:
            await self.call(DI_END, b"", retries=0)
        except Exception:  # noqa: BLE001 - best effort, see above
            pass
