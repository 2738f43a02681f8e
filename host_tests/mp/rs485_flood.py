# The RS-485 driver against a peer that never stops talking, under
# MicroPython with the unix board's UART: a ticker task must keep running
# while the driver discards and reads the noise, and every exchange must
# end in bounded time.
#   micropython rs485_flood.py tcp:HOST:PORT BAUD SECONDS
# Last line: JSON {"exchanges": [[result, ms], ...], "ticks", "max_gap", "ms"}.
import asyncio
import json
import sys
import time

import dlt645
from rs485 import RS485
from uart import UART, Pin


async def ticker(state):
    last = time.ticks_ms()
    while True:
        await asyncio.sleep_ms(2)
        now = time.ticks_ms()
        state["ticks"] += 1
        state["max_gap"] = max(state["max_gap"], time.ticks_diff(now, last))
        last = now


async def main(spec, baud, seconds):
    bus = RS485(UART(spec, baud), de=Pin(), baudrate=baud)
    frame = dlt645.encode("000000000001", dlt645.CTRL_READ, dlt645.di_bytes(0x00900200))
    tick = {"ticks": 0, "max_gap": 0}
    task = asyncio.create_task(ticker(tick))
    await asyncio.sleep_ms(50)  # let the noise pile up in the socket first
    t0 = time.ticks_ms()
    out = []
    while time.ticks_diff(time.ticks_ms(), t0) < seconds * 1000:
        t = time.ticks_ms()
        got = await bus.transact(frame, dlt645.Decoder(replies_only=True), 200)
        out.append([repr(got), time.ticks_diff(time.ticks_ms(), t)])
    ms = time.ticks_diff(time.ticks_ms(), t0)
    task.cancel()
    return {"exchanges": out, "ticks": tick["ticks"], "max_gap": tick["max_gap"], "ms": ms,
            "tx": bus.tx_bytes}


print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))))
