"""A card in the slot, from insertion to the pull. Reads top to bottom.

serve(app, reader) is called by the app's card task for every card
inserted; it owns the screen's questions and the card until it returns
(the card task then releases the slot and shows the idle screen).
"""
from micropython import const

import keypad
import refusals
import user_card
from card_reader import CardRemoved

_CONFIRM_MS = const(30000)  # a resident who walks away: the card is not used
_PULLED_MS = const(3000)  # "put the card back" stays up this long


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
        log("card: removed")
        app.show("card_pulled")
        await app.drawn()
        await _sleep_ms(_PULLED_MS)
        return
    except Exception as e:  # noqa: BLE001 - every card fault has its screen
        return await _refuse(app, reader, refusals.screen_for(e), e)
    for line in info.lines():
        log(line)

    # 2. Refuse what the terminal must not top up: opening cards (a first
    #    purchase is made at the meter), meters it does not manage, ...
    why = refusals.card_refusal(info, app.managed)
    if why:
        return await _refuse(app, reader, why)

    # 3. The resident confirms the purchase on the keypad.
    key = await app.ask("card_info", (keypad.OK, keypad.CANCEL), _CONFIRM_MS,
                        customer=info.customer, meter=info.meter, amount=info.amount)
    if key != keypad.OK:
        log("card: not confirmed (%s)" % key)
        return await _done(app, reader, "cancelled")
    log("card: confirmed")
    return await _done(app, reader, "card_info", customer=info.customer, meter=info.meter,
                       amount=info.amount)


async def _refuse(app, reader, screen, error=None):
    if error is not None:
        app.log("card: refused %s: %s" % (type(error).__name__, error))
    else:
        app.log("card: refused %s" % screen)
    return await _done(app, reader, screen)


async def _done(app, reader, screen, **fields):
    """Leave the outcome up until the card is pulled."""
    app.show(screen, **fields)
    await app.drawn()
    app.log("card: shown; waiting for the pull")
    await reader.wait_removed()
    app.log("card: removed")


async def _sleep_ms(ms):
    import asyncio
    await asyncio.sleep_ms(ms)
