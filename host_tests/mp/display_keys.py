"""The keypad driver and the console key decoder under MicroPython: fake
pins, a bouncing press, a held key, and the asyncio task feeding the queue.
Prints one JSON line."""
import asyncio
import json

import console_keys
import keypad

down = set()
levels = [1, 1, 1, 1]


def row(i):
    def pin(v=None):
        if v is None:
            return levels[i]
        levels[i] = v
    return pin


def col(j):
    def pin():
        for i in range(4):
            if levels[i] == 0 and (i, j) in down:
                return 0
        return 1
    return pin


async def main():
    kp = keypad.Keypad([row(i) for i in range(4)], [col(j) for j in range(4)], period_ms=2)
    task = kp.start()
    got = []
    for closed in (1, 0, 1, 0, 1):  # chatter then closed, one scan period each
        if closed:
            down.add((3, 3))  # ok
        else:
            down.discard((3, 3))
        await asyncio.sleep_ms(2)
    got.append(await asyncio.wait_for(kp.queue.get(), 1))
    await asyncio.sleep_ms(100)  # held
    down.clear()
    await asyncio.sleep_ms(20)
    down.add((0, 1))  # 2
    got.append(await asyncio.wait_for(kp.queue.get(), 1))
    task.cancel()
    dec = console_keys.KeyDecoder()
    typed = dec.feed(b"12\r\x1b[Ac\x7fl\x1b") + dec.flush()
    return {"keys": got, "left": len(kp.queue), "typed": typed}

print(json.dumps(asyncio.run(main())))
