"""A card in the slot, from insertion to the pull. Reads top to bottom.

serve(app, reader) is called by the app's card task for every card
inserted. The promise: every purchase reaches its meter exactly once, and
nothing else does, through card pulls, power cuts and a lying bus.

  1. read the card: genuine (internal authenticate), purse untampered
  2. refuse what the terminal must not top up (no meter frame yet)
  3. the meter record: managed, same customer, sellable, current card
  4. the resident confirms on the keypad
  5. the meter session, owning the bus: settle any unfinished top-up of
     this meter first; account opened; then credit(), which writes the
     journal's intent before the top-up frame and decides the outcome only
     by a MAC-checked read-back showing the card's count on the meter
  6. the journal's result, the card's return file, the journal's "done"
  7. the outcome on screen until the card is pulled
"""
from micropython import const

import card_files as cf
import dlt645
import journal
import keypad
import meter_items
import recovery
import records
import refusals
import user_card
from card_reader import CardRemoved
from meter_credit import ALREADY, Refused, Unconfirmed, credit
from meter_security import CountError

_CONFIRM_MS = const(30000)  # a resident who walks away: the card is not used
_PULLED_MS = const(3000)  # "put the card back" stays up this long (config "pulled_ms")


async def serve(app, reader):
    log = app.log
    app.show("reading")

    # 1. Read the card: genuine (internal authenticate), purse untampered.
    try:
        atr = await reader.power_up()
        log("card: inserted (ATR %s)" % atr.raw.hex())
        card = user_card.UserCard(reader, app.keystore)
        info = await card.read()
    except CardRemoved:
        return await _pulled(app)
    except Exception as e:  # noqa: BLE001 - every card fault has its screen
        return await _refuse(app, reader, refusals.screen_for(e), e)  # nothing known yet
    for line in info.lines():
        log(line)
    if info.card_type == cf.TECHNICIAN:  # technician mode (firmware/technician.py)
        import technician
        return await technician.serve(app, reader, card, info)

    # 2. Opening cards (a first purchase is made at the meter), meters this
    #    terminal does not manage, cards with nothing to credit.
    why = refusals.card_refusal(info, app.records)
    if why:
        return await _refuse(app, reader, why, info=info)

    # A card showing a later purchase will never need an older write-back.
    app.journal.supersede(info.serial, info.count)

    # 3. The meter's record: same customer, sellable, this card current.
    rec = app.records.get(info.meter)
    why = _record_refusal(rec, info)
    if why:
        return await _refuse(app, reader, why, info=info)

    # 4. The resident confirms the purchase on the keypad.
    key = await app.ask("card_info", (keypad.OK, keypad.CANCEL), _CONFIRM_MS,
                        customer=info.customer, meter=info.meter, amount=info.amount)
    if key != keypad.OK:
        log("card: not confirmed (%s)" % key)
        return await app.until_pulled(reader, "cancelled")
    log("card: confirmed")
    if app.client is None:  # a terminal with no meter bus sells nothing
        return await _refuse(app, reader, "out_of_service", info=info)

    # 5. The meter session. The bus is ours from its first frame to its
    #    last; what the resident sees comes after it is released.
    app.show("progress", percent=30)
    entry = None

    def intent(before):  # just before the top-up frame: on flash, or no sale
        nonlocal entry
        e = journal.Entry(info.meter, info.customer, info.serial, info.amount, info.count)
        entry = app.journal.begin(e, before)

    c = err = None
    relay_open = False
    async with app.bus_owner:
        try:
            await recovery.settle_meter(app, rec)  # an unfinished top-up first
            word = await app.client.read_item(rec.address, meter_items.STATUS_WORD_3)
            relay_open = bool(word & meter_items.RELAY_OPEN)
            if word & meter_items.ACCOUNT_NOT_OPENED:
                err = "meter_not_opened"
            else:
                _opened(app, rec)  # its account was opened at the meter since re-registration
                c = await credit(app.client, rec.address, app.keystore.meter_key(rec.address),
                                 info.amount, info.count, info.customer,
                                 app.keystore.operator_code, before_send=intent)
        except Exception as e:  # noqa: BLE001 - sorted out below, off the bus
            err = e
    app.poll_soon()  # the poll table shows the meter as it is now
    if err is not None:
        return await _meter_refused(app, card, reader, info, entry, err)

    # 6. What the meter's MAC-checked read-back said, on flash, then on the card.
    if c.result == ALREADY:
        log("meter: purchase %d already there" % info.count)
        entry = app.journal.awaiting_write_back(info.serial, info.count)
        return await _write_back(app, card, reader, c.after, cf.RET_ALREADY, entry,
                                 "already_credited")
    app.journal.settle(entry, journal.CREDITED, c.after, relay_open)
    _adopt(app, rec, info)
    log("meter: credited %d fen, balance %d" % (info.amount, c.after.balance))
    # 7. The terminal never closes a relay: a card at the meter does.
    if relay_open:
        return await _write_back(app, card, reader, c.after, cf.RET_CREDITED, entry,
                                 "relay_tripped", amount=info.amount)
    return await _write_back(app, card, reader, c.after, cf.RET_CREDITED, entry, "success",
                             amount=info.amount, balance=c.after.balance)


async def _meter_refused(app, card, reader, info, entry, err):
    """Everything but a confirmed credit: journal it, tell the card, say why."""
    log = app.log
    if isinstance(err, str):
        return await _refuse(app, reader, err, info=info)
    log("meter: %s: %s" % (type(err).__name__, err))
    if isinstance(err, Unconfirmed):  # sent, outcome unknown: settled later (journalled)
        if entry is not None:
            app.journal.settle(entry, journal.UNCONFIRMED)
        return await _refuse(app, reader, "topup_unconfirmed")
    if isinstance(err, Refused):  # sent, refused; a fresh read-back shows nothing landed
        app.journal.settle(entry, journal.NOT_CREDITED, err.after)
        screen = refusals.screen_for(err.reason)
        _journal_refusal(app, screen, info)
        return await _write_back(app, card, reader, err.after, cf.RET_REFUSED, None, screen)
    if isinstance(err, CountError):  # nothing sent: card and meter counts disagree
        _journal_refusal(app, "count_error", info)
        return await _write_back(app, card, reader, err.status, cf.RET_COUNT_ERROR, None,
                                 "count_error")
    if isinstance(err, journal.JournalFull):  # every slot waits for the head-end
        app.event("alarm", alarm="journal_full", detail=str(err))
    if isinstance(err, OSError) and not isinstance(err, dlt645.DLTError):
        return await _refuse(app, reader, "out_of_service", info=info)  # no journal, no sale
    return await _refuse(app, reader, refusals.screen_for(err), err, info=info)


def _opened(app, rec):
    """A meter awaiting its opening purchase at the meter has had it."""
    if rec.state == records.AWAITING_OPENING:
        rec.state = records.ACTIVE
        app.records.put(rec)


def _adopt(app, rec, info):
    """A card whose purchase just landed is the customer's current card (the
    first one seen, or a reissued one); the one it replaces is retired. Only
    a landed purchase counts: a stale reissued card whose purchase is long on
    the meter must not retire the card in use."""
    serial = info.serial.hex()
    if rec.serial != serial:
        if rec.serial:
            rec.retired = ([rec.serial] + rec.retired)[:records.RETIRED]
        rec.serial = serial
        try:
            app.records.put(rec)
        except OSError as e:  # the credit stands; the next purchase adopts it
            app.log("records: card %s not recorded: %r" % (serial, e))


def _record_refusal(rec, info):
    if rec is None:
        return "meter_unknown"
    if rec.customer != info.customer:
        return "card_mismatch"  # the meter would say Err-31/33
    why = rec.refusal()
    if why:
        return why
    if rec.serial and rec.serial != info.serial.hex():
        if info.card_type != cf.REISSUED or info.serial.hex() in rec.retired:
            return "card_superseded"  # a reissued card replaced this one
    return None


async def _write_back(app, card, reader, status, result, entry, screen, **fields):
    """The meter's answer onto the card's return file (返写), then the
    journal's "done". A card pulled first keeps the credit on the meter;
    the return file is written when the card comes back."""
    t = app.board.clock()
    try:
        await card.write_return(status.balance, status.count, result, app.terminal_id,
                                (t[0] % 100, t[1], t[2], t[3], t[4]))
    except CardRemoved:
        app.log("card: removed before the write-back")
        # the card is out: the screen stays a moment, then the next card
        return await _pulled(app, "card_not_updated" if entry is not None else "card_pulled")
    except Exception as e:  # noqa: BLE001 - the meter part stands; say so
        app.log("card: write-back failed %s %s" % (type(e).__name__, e))
        screen, fields = ("card_not_updated", {}) if entry is not None else (screen, fields)
    else:
        if entry is not None:
            app.journal.done(entry)
    return await app.until_pulled(reader, screen, **fields)


async def _pulled(app, screen="card_pulled"):
    app.show(screen)
    await app.drawn()
    await _sleep_ms(app.config.get("pulled_ms", _PULLED_MS))
    app.log("card: removed")


async def _refuse(app, reader, screen, error=None, info=None):
    if error is not None:
        app.log("card: refused %s: %s" % (type(error).__name__, error))
    else:
        app.log("card: refused %s" % screen)
    if screen != "topup_unconfirmed":  # that one is the journal entry's own result
        _journal_refusal(app, screen, info)
    return await app.until_pulled(reader, screen)


def _journal_refusal(app, screen, info):
    """A refusal reaches the head-end with what was known of the card."""
    if info is None:
        app.event("refusal", screen=screen)
    else:
        app.event("refusal", screen=screen, meter=info.meter, customer=info.customer,
                  card=info.serial.hex(), amount=info.amount, count=info.count)


async def _sleep_ms(ms):
    import asyncio
    await asyncio.sleep_ms(ms)
