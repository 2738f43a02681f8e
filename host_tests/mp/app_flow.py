"""The app's tasks under micropython with a fake board: keys reach the
screen that shows them, a language change redraws the current screen, a
card whose meter is not managed is refused at read time, the poller never
interleaves with a card's bus session. Prints one JSON line of findings."""
import asyncio
import json

from null_display import NullDisplay

import app
import card_files as cf
import keypad
import user_card



class Reader:
    """A card the fake UserCard reads (no bytes: routing is under test)."""

    def __init__(self, info):
        self.info = info
        self.removed = asyncio.Event()

    async def power_up(self):
        class Atr:
            raw = b"\x3b\x00"
        return Atr()

    async def wait_removed(self):
        await self.removed.wait()


class Slot:
    def __init__(self):
        self.cards = []
        self.arrived = asyncio.Event()
        self.released = 0

    async def open(self):
        return self

    async def wait_card(self):
        while not self.cards:
            self.arrived.clear()
            await self.arrived.wait()
        return self.cards.pop(0)

    async def release(self, reader):
        self.released += 1


class FakeCard:
    def __init__(self, reader, keys):
        self.reader = reader

    async def read(self):
        return self.reader.info


class Board:
    def __init__(self):
        self.lcd = NullDisplay()
        self.queue = keypad.KeyQueue()
        self.slot = Slot()
        self.logs = []

    def bus(self, config):
        return None

    def card_slot(self, config):
        return self.slot

    def display(self, config):
        return self.lcd

    def keys(self, config):
        return self.queue

    def storage(self, config):
        import flash
        import storage
        storage.mount(flash.RAMBlockDev(4096, 32), "/t")
        return "/t"

    def clock(self):
        return (2026, 11, 29, 20, 0, 0, 0, 0)

    def report(self, kind, text):
        self.logs.append(text)


def info(meter="000000000001", card_type=cf.PURCHASE, amount=5000, count=2):
    return user_card.CardInfo(card_type, meter, "100000000001", amount, count, b"\x88" * 8)


async def until(cond, ms=3000):
    for _ in range(ms // 5):
        if cond():
            return True
        await asyncio.sleep_ms(5)
    return False


async def main():
    user_card.UserCard = FakeCard
    b = Board()
    a = app.App(b, {"meters": ["000000000001"], "keystore": None, "record_capacity": 10,
                    "seed": [{"address": "000000000001", "customer": "100000000001"}]})
    await a.start()
    out = {}
    ui = a.ui
    await until(lambda: "screen: idle" in b.logs)

    # idle: OK opens the about page (version), Cancel goes back
    b.queue.put_nowait(keypad.OK)
    out["about"] = await until(lambda: ui.current == "about")
    b.queue.put_nowait(keypad.CANCEL)
    out["about_back"] = await until(lambda: ui.current == "idle")

    # a purchase card: the card_info question takes OK from the keypad
    r = Reader(info())
    b.slot.cards.append(r)
    b.slot.arrived.set()
    out["asked"] = await until(lambda: ui.current == "card_info")
    n = ui.shown
    b.queue.put_nowait(keypad.LANG)  # the question stays, redrawn in English
    out["lang_redraw"] = await until(lambda: ui.shown == n + 1 and ui.lang == "en")
    out["still_asking"] = ui.current == "card_info"
    b.queue.put_nowait("5")  # a key the question does not take
    b.queue.put_nowait(keypad.OK)
    out["confirmed"] = await until(lambda: "card: confirmed" in b.logs)
    r.removed.set()
    out["released"] = await until(lambda: b.slot.released == 1 and ui.current == "idle")

    # Cancel on the question: nothing sent, "cancelled"
    r = Reader(info())
    b.slot.cards.append(r)
    b.slot.arrived.set()
    await until(lambda: ui.current == "card_info")
    b.queue.put_nowait(keypad.CANCEL)
    out["cancelled"] = await until(lambda: ui.current == "cancelled")
    r.removed.set()
    await until(lambda: b.slot.released == 2)

    # refused at read time, before any question
    for name, card in (("unknown", info(meter="000000000099")),
                       ("opening", info(card_type=cf.OPENING)),
                       ("zero", info(amount=0)),
                       ("count0", info(count=0))):
        r = Reader(card)
        b.slot.cards.append(r)
        b.slot.arrived.set()
        await until(lambda: "card: shown; waiting for the pull" in b.logs[-1:])
        out[name] = ui.current
        r.removed.set()
        await until(lambda: ui.current == "idle")
    a.stop()
    print(json.dumps(out))


asyncio.run(main())
