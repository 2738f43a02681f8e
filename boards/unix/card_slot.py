"""The unix board's card slot: a TCP listener standing in for the card
interface chip (security profile, last section).

A connection is a card being inserted (the detect switch closes and the card
sends its ATR at once); the connection closing is the card being pulled, at
whatever byte. Any card simulator following the profile plugs in here. One
card at a time: a second connection while a card is in is closed at once.
"""
import asyncio

from card_reader import CardReader, CardRemoved


def parse_spec(spec):
    """'tcp:HOST:PORT' -> (host, port); ValueError otherwise."""
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] != "tcp" or not parts[2].isdigit():
        raise ValueError("card slot wants tcp:HOST:PORT, got %r" % spec)
    port = int(parts[2])
    if not 0 < port < 65536:
        raise ValueError("port %d" % port)
    return parts[1] or "0.0.0.0", port


class _Detect:
    """The detect switch: closed while the connection is up."""

    def __init__(self):
        self.closed = True

    def value(self):
        return 1 if self.closed else 0


class CardSlot:
    """Calls `await on_card(reader)` for each inserted card, with a
    CardReader ready for power_up(). Whatever on_card raises ends that card's
    session (logged through `log`), never the slot."""

    def __init__(self, host, port, on_card, baud=9600, log=print):
        self.host = host
        self.port = port
        self._on_card = on_card
        self._baud = baud
        self._log = log
        self._server = None
        self.busy = False

    async def start(self):
        self._server = await asyncio.start_server(self._conn, self.host, self.port)
        return self

    def close(self):
        if self._server:
            self._server.close()

    async def _conn(self, r, w):
        if self.busy:
            w.close()
            return
        self.busy = True
        detect = _Detect()
        try:
            await self._on_card(CardReader(r, w, detect=detect, baud=self._baud))
        except CardRemoved:
            self._log("card: removed")
        except Exception as e:  # noqa: BLE001 - a bad card must not stop the slot
            self._log("card: error %s %s" % (type(e).__name__, e))
        finally:
            detect.closed = False
            # free before the first await: a card inserted once "removed"
            # is logged must find the slot empty
            self.busy = False
            try:
                w.close()
                await w.wait_closed()
            except (OSError, AttributeError):
                pass



def _screen_for(error):
    """The resident's screen for a card the terminal refuses."""
    import user_card
    if isinstance(error, (user_card.NotAuthentic, user_card.ForgedPurse, user_card.MacWrong)):
        return "card_invalid"
    return "card_unreadable"


async def show_card(reader, keys, log=print, ui=None):
    """What the terminal does with a card for now: read and authenticate it,
    show what it carries (or why it is refused), wait for the pull. (The
    top-up comes later.) `ui`, when there is a screen: hold()/release()."""
    import card_files
    import user_card

    if ui:
        ui.hold("reading")
    try:
        atr = await reader.power_up()
        log("card: inserted (ATR %s)" % atr.raw.hex())
        info = await user_card.UserCard(reader, keys).read()
    except CardRemoved:
        if ui:
            ui.hold("card_pulled")
            await asyncio.sleep(3)
            ui.release()
        raise
    except Exception as e:  # a bad card is shown, never fatal to the slot
        log("card: refused %s: %s" % (type(e).__name__, e))
        if ui:
            ui.hold(_screen_for(e))
    else:
        for line in info.lines():
            log(line)
        why = user_card.refuse_reason(info)
        log("card: %s" % (why or "ok"))
        if ui:
            if info.card_type == card_files.OPENING:
                ui.hold("opening_card")
            else:
                try:
                    ui.hold("card_info", customer=info.customer, meter=info.meter,
                            amount=info.amount)
                except ValueError:  # an amount no screen can show
                    ui.hold("card_unreadable")
    log("card: shown; waiting for the pull")
    try:
        await reader.wait_removed()
        log("card: removed")
    finally:
        if ui:
            ui.release()


async def serve(spec, keys, baud=9600, log=print, ui=None):
    """Open the slot given as tcp:HOST:PORT and show each card inserted."""
    host, port = parse_spec(spec)
    slot = CardSlot(host, port, lambda r: show_card(r, keys, log, ui), baud, log)
    await slot.start()
    log("card slot: listening on %s:%d" % (host, port))
    return slot
