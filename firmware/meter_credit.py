"""Moving a purchase onto a meter, safely: credit() decides what happened to
a top-up by a MAC-checked read-back (078102FF) showing the purchase count,
never by the reply to the top-up frame. That reply carries no MAC: a man in
the middle can swallow the frame and answer 83 ("done") or C3 "repeat
top-up" himself.

    c = await credit(client, address, meter_key, amount, count, customer, operator)
    c.result  # CREDITED (this call landed it) or ALREADY (the count was there before)
    c.before  # the MAC-checked Status before any top-up frame
    c.after   # the MAC-checked read-back that decided it

What an exception from credit() means is told by its type:

- Unconfirmed: a top-up frame left the terminal and nothing settled what it
  did (no reply and no read-back after it, a read-back MAC wrong, the bus
  closed, a meter that said "done" twice without the count moving...). The
  credit may be on the meter. Never resend blindly: call credit() again
  later with the same count; it answers ALREADY if the count is there.
- Refused: the meter refused the top-up frame (.reason: its typed SERR
  error, e.g. OverLimit, NotOpened) and a read-back in a fresh session shows
  the count did not move: no credit moved, and that frame can no longer land.
- anything else: no top-up frame left the terminal. ValueError (bad
  arguments, amount 0), AuthFailed, NotAuthenticated, CustomerMismatch and
  CountError (both with .status, the read-back that showed it; the count
  must be the meter's + 1), NoReply and other dlt645.DLTErrors,
  rs485.BusClosed, whatever before_send raised, ...

Unconfirmed and Refused are both TopUpSent.
"""
import dlt645
from meter_security import (ALREADY, CREDITED, SERR_COUNT, SERR_CUSTOMER, CountError,
                            CustomerMismatch, MeterSession, NotAuthenticated, RepeatTopUp,
                            customer_bytes, topup_fields)

_NO_OPERATOR = b"\x00\x00\x00\x00"


class Credit:
    """credit()'s answer: result CREDITED or ALREADY, Status before, and
    after: the MAC-checked read-back that decided the result."""

    def __init__(self, result, before, after):
        self.result = result
        self.before = before
        self.after = after

    def __repr__(self):
        return "Credit(%s, before=%r, after=%r)" % (self.result, self.before, self.after)


class TopUpSent(Exception):
    """A top-up frame left the terminal. .address, .amount, .count (the
    purchase count it was trying), .before (Status before the frame),
    .after (the last MAC-checked Status read after it, or None)."""

    def __init__(self, msg, address, amount, count, before, after):
        super().__init__("meter %s, purchase count %d: %s" % (address, count, msg))
        self.address = address
        self.amount = amount
        self.count = count
        self.before = before
        self.after = after


class Unconfirmed(TopUpSent):
    """Sent, outcome unknown: the credit may or may not be on the meter.
    .cause: the error that left it unsettled, or None."""

    def __init__(self, msg, address, amount, count, before, after=None, cause=None):
        if cause is not None:
            msg = "%s (%s: %s)" % (msg, type(cause).__name__, cause)
        super().__init__(msg, address, amount, count, before, after)
        self.cause = cause


class Refused(TopUpSent):
    """Sent and refused; a fresh read-back (.after) shows nothing landed.
    .reason: the meter's typed refusal (a dlt645.SecurityError)."""

    def __init__(self, reason, address, amount, count, before, after):
        super().__init__("refused: %s" % reason, address, amount, count, before, after)
        self.reason = reason


async def credit(client, address, meter_key, amount, count, customer, operator=_NO_OPERATOR,
                 before_send=None):
    """Move `amount` fen as purchase `count` onto the meter -> Credit.
    See the module docstring for what each exception means.
    before_send(before): called once just before the first top-up frame,
    with the MAC-checked Status before it (the journal's intent); if it
    raises, nothing is sent and its exception comes out of credit()."""
    topup_fields(amount, count)  # ValueError now, before anything is sent
    cust = customer_bytes(customer)
    s = MeterSession(client, address, meter_key, operator)
    try:
        before = await first_read_back(s)
        if before.customer_raw != cust:
            e = CustomerMismatch(SERR_CUSTOMER)
        elif before.count == count:  # MAC-checked: this purchase is on the meter
            return Credit(ALREADY, before, before)
        elif count != before.count + 1:  # the meter would refuse it: send nothing
            e = CountError(SERR_COUNT)
        else:
            if before_send is not None:
                before_send(before)
            # From here a top-up frame leaves: every failure is a TopUpSent.
            return await _top_up(s, amount, count, cust, before)
        e.status = before
        raise e
    finally:
        await s.end()


async def _top_up(s, amount, count, cust, before):
    # At most two frames: a frame lost (or a reply that lied) is sent once
    # more, in the fresh session that showed it did not land; the count
    # rule makes that safe.
    args = (s.address, amount, count, before)
    for attempt in range(2):
        try:
            await s.send_top_up(amount, count, cust)
            answer = None
        except Exception as e:  # noqa: BLE001 - a reply, or none, proves nothing
            answer = e
        try:
            after = await _read_back_after(s, count)
        except Exception as e:  # noqa: BLE001 - the frame may have landed
            raise Unconfirmed("no good read-back after the top-up", *args, cause=e)
        if after.count == count:
            return Credit(CREDITED, before, after)
        if after.count != before.count:
            raise Unconfirmed("the meter's count moved to %d" % after.count, *args, after=after)
        if isinstance(answer, dlt645.SecurityError) and not isinstance(answer, RepeatTopUp):
            raise Refused(answer, *args, after=after)
    raise Unconfirmed("the meter's count stays %d after two top-up frames" % after.count,
                      *args, after=after, cause=answer)


async def first_read_back(s):
    """Authenticate and read back, once more if the read-back's MACs fail:
    the meter accepted our C1, so its key is ours, and a wrong MAC means the
    session keys differ: a late reply to an earlier request (a stale R2) or
    a line that lied. Nothing is sent yet, and the meter counts no failure."""
    await s.authenticate()
    try:
        return await s.read_back()
    except NotAuthenticated:
        await s.authenticate()
        return await s.read_back()


async def _read_back_after(s, count):
    """The MAC-checked Status after a top-up frame. A count not there yet
    is read again in a fresh session: a meter keeps one session, so the new
    authentication ends the one the frame was sent in, and a frame held
    back by a man in the middle can no longer land: "not there" is final."""
    if s.active:
        st = await s.read_back()
        if st.count == count:
            return st
    await s.authenticate()
    return await s.read_back()
