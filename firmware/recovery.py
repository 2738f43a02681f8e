"""Settling what a power cut, a pulled card or a silent meter left open.

A top-up whose journal entry has no result (the power went after the
intent) or an unconfirmed one (sent, no read-back since) is settled against
the meter's MAC-checked purchase count, never guessed:

  meter count >= the entry's count   it landed (CREDITED)
  meter count == the count before    it did not (NOT_CREDITED): the card
                                     still holds the purchase
  anything else                      the meter is not the one we spoke to
                                     (replaced?): left open, and that
                                     meter gets no new sale until it is

At boot (settle_all) every open entry is tried once, meter by meter; a
card for that meter settles it again first (settle_meter, called by the
top-up flow inside its bus session). A settled entry whose card has not
been written back stays open until that card comes back: the flow's
"already credited" path writes its return file.
"""
import journal
from meter_credit import first_read_back
from meter_security import MeterSession


class MeterMoved(Exception):
    """The meter's count is neither the entry's nor the one before it."""


async def settle_meter(app, rec):
    """Settle this meter's unfinished top-up, if it has one. The caller owns
    the bus. Raises (DLTError, MeterMoved, ...) if it cannot be settled:
    then nothing new may be sold to that meter."""
    e = app.journal.unsettled(rec.meter)
    if e is None:
        return None
    s = MeterSession(app.client, rec.address, app.keystore.meter_key(rec.address),
                     app.keystore.operator_code)
    try:
        st = await first_read_back(s)
    finally:
        await s.end()
    if st.count >= e.count:
        result = journal.CREDITED
    elif st.count == e.count - 1:
        result = journal.NOT_CREDITED
    else:
        raise MeterMoved("meter %s count %d, journal #%d was count %d"
                         % (rec.meter, st.count, e.seq, e.count))
    app.journal.settle(e, result, st, e.relay_open)
    app.log("recovery: journal #%d (meter %s count %d) %s"
            % (e.seq, e.meter, e.count, journal.RESULT_NAMES[result]))
    return result


async def settle_all(app):
    """At boot: try every unsettled entry once; what fails waits for its card."""
    for e in app.journal.open_entries():
        if e.settled:
            continue
        rec = app.records.get(e.meter)
        if rec is None:
            continue
        async with app.bus_owner:
            try:
                await settle_meter(app, rec)
            except Exception as err:  # noqa: BLE001 - the next card for it retries
                app.log("recovery: meter %s not settled: %s %s"
                        % (e.meter, type(err).__name__, err))
