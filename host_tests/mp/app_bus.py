"""Bus arbitration under micropython: while a card's meter session holds
App.bus_owner, the poller sends nothing; its frames come before or after
the session's, never between. Prints one JSON line."""
import asyncio
import json

import app
import dlt645


class Bus:
    """Answers every read with a decodable 'no such item' refusal after a
    short delay, and records which meter each frame went to."""

    def __init__(self):
        self.frames = []

    async def transact(self, frame, decoder, timeout_ms):
        f = dlt645.Decoder().feed(bytes(frame))
        self.frames.append(f.address)
        await asyncio.sleep_ms(10)
        return decoder.feed(dlt645.encode(f.address, 0xD1, b"\x02"))  # ERR: no data

    async def send(self, frame):
        pass


class Board:
    def __init__(self):
        self.b = Bus()

    def bus(self, config):
        return self.b

    def card_slot(self, config):
        return None

    def display(self, config):
        return None

    def keys(self, config):
        return None

    def storage(self, config):
        return None

    def clock(self):
        return (2026, 11, 29, 20, 0, 0, 0, 0)

    def report(self, kind, text):
        pass


async def main():
    board = Board()
    polled = ["00000000000%d" % i for i in range(1, 9)]
    a = app.App(board, {"meters": polled, "interval": 1})
    await a.start()
    await asyncio.sleep_ms(20)  # the poller is mid-pass
    session = "000000000009"
    async with a.bus_owner:
        for _ in range(4):
            try:
                await a.client.read(session, 0x00900200)
            except dlt645.DLTError:
                pass
            await asyncio.sleep_ms(15)  # the session thinks between frames
    await asyncio.sleep_ms(150)
    a.stop()
    f = board.b.frames
    idx = [i for i, x in enumerate(f) if x == session]
    run = list(range(idx[0], idx[0] + len(idx)))
    print(json.dumps({"session_frames": len(idx), "contiguous": idx == run,
                      "polled_before": idx[0] > 0, "polled_after": idx[-1] < len(f) - 1}))


asyncio.run(main())
