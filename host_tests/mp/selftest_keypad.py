"""The factory self-test from the keypad, under micropython with a fake
board (app_flow's shape): `* * 0` on the idle screen, OK, the operator
answers the display and keypad checks; and on the out-of-service screen of
an unprovisioned board (selftest.offer). Prints one JSON line."""
import asyncio
import json

from null_display import NullDisplay

import app
import keypad
import selftest_ui


class EchoBus:
    """A bus with the loopback plug on: what is sent comes back."""

    def __init__(self):
        self.frames = 0

    async def transact(self, frame, decoder, timeout_ms):
        self.frames += 1
        return decoder.feed(bytes(frame))


class Slot:
    async def open(self):
        return self

    async def wait_card(self):
        await asyncio.Event().wait()


class Board:
    def __init__(self, mount, blocks=8):
        self.blocks = blocks
        self.lcd = NullDisplay()
        self.queue = keypad.KeyQueue()
        self.logs = []
        self.echo = EchoBus()
        self.mount = mount

    def bus(self, config):
        return self.echo

    def card_slot(self, config):
        return Slot()

    def display(self, config):
        return self.lcd

    def keys(self, config):
        return self.queue

    def storage(self, config):
        if not config.get("_root"):  # once, as the boards do
            import flash
            import storage
            storage.mount(flash.RAMBlockDev(4096, self.blocks), self.mount)
            config["_root"] = self.mount
        return self.mount

    def clock(self):
        return (2026, 11, 29, 20, 0, 0, 0, 0)

    def report(self, kind, text):
        self.logs.append(text)


async def until(cond, ms=10000):
    for _ in range(ms // 5):
        if cond():
            return True
        await asyncio.sleep_ms(5)
    return False


def report(b):
    return [s[len("selftest: "):] for s in b.logs if s.startswith("selftest: ")]


async def press(b, ui, keys, screen=None):
    for k in keys:
        b.queue.put_nowait(k)
        await asyncio.sleep_ms(20)


async def digits(b, ui, upto="1234567890", then=None):
    got = ""
    for d in upto:
        await until(lambda: ui._want == ("selftest_keys", {"digits": got}))
        b.queue.put_nowait(d)
        got += d
    if then:
        await until(lambda: ui._want == ("selftest_keys", {"digits": got}))
        b.queue.put_nowait(then)


async def main():
    out = {}
    b = Board("/t")
    a = app.App(b, {"meters": [], "keystore": None, "record_capacity": 10})
    await a.start()
    ui = a.ui
    await until(lambda: "screen: idle" in b.logs)

    # a passing run
    await press(b, ui, "**0")
    out["ready"] = await until(lambda: ui.current == "selftest_ready")
    pushes = b.lcd.pushes
    b.queue.put_nowait(keypad.OK)
    out["display_asked"] = await until(lambda: ui.current == "selftest_display")
    out["pattern_pushed"] = b.lcd.pushes - pushes
    b.queue.put_nowait(keypad.OK)
    await digits(b, ui)
    out["passed"] = await until(lambda: ui.current == "selftest_pass")
    out["report"] = report(b)
    out["bus_frames"] = b.echo.frames
    b.queue.put_nowait(keypad.OK)
    out["back_to_idle"] = await until(lambda: ui.current == "idle")

    # Cancel on the first question: nothing runs
    b.logs.clear()
    await press(b, ui, "**0")
    await until(lambda: ui.current == "selftest_ready")
    b.queue.put_nowait(keypad.CANCEL)
    out["cancel_idle"] = await until(lambda: ui.current == "idle")
    out["cancel_report"] = report(b)

    # a bad display and a keypad that stops at 1: two failures
    b.logs.clear()
    await press(b, ui, "*#")  # a broken sequence starts nothing (# opens the history)
    out["broken_sequence"] = ui.current
    b.queue.put_nowait(keypad.CANCEL)
    await until(lambda: ui.current == "idle")
    await press(b, ui, "**0")
    await until(lambda: ui.current == "selftest_ready")
    b.queue.put_nowait(keypad.OK)
    await until(lambda: ui.current == "selftest_display")
    b.queue.put_nowait(keypad.CANCEL)
    await digits(b, ui, "1", then=keypad.CANCEL)
    out["failed"] = await until(lambda: ui.current == "selftest_fail")
    out["fail_report"] = report(b)
    b.queue.put_nowait(keypad.OK)
    await until(lambda: ui.current == "idle")
    a.stop()

    # an unprovisioned board: out of service, the sequence still works
    import gc
    gc.collect()
    c = Board("/u")
    t = asyncio.create_task(selftest_ui.offer(c, {}, "out_of_service"))
    out["oos"] = await until(lambda: "screen: out_of_service" in c.logs)
    await press(c, None, "**0")
    out["oos_ready"] = await until(lambda: "screen: selftest_ready" in c.logs)
    c.queue.put_nowait(keypad.OK)
    await until(lambda: "screen: selftest_display" in c.logs)
    c.queue.put_nowait(keypad.OK)
    got = ""
    for d in "1234567890":
        await until(lambda: c.logs[-1] == "screen: selftest_keys" and
                    c.logs.count("screen: selftest_keys") == len(got) + 1)
        c.queue.put_nowait(d)
        got += d
    out["oos_passed"] = await until(lambda: "screen: selftest_pass" in c.logs)
    c.queue.put_nowait(keypad.OK)
    out["oos_back"] = await until(lambda: c.logs[-1] == "screen: out_of_service")
    out["oos_report"] = report(c)
    out["oos_notes"] = [s for s in c.logs if s.startswith("note")]
    t.cancel()
    print(json.dumps(out))


asyncio.run(main())
