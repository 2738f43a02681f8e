# Run meter client operations under MicroPython through the real RS-485
# driver and the unix board's UART; print one JSON line of results.
#   micropython meter_ops.py BUS BAUD [echo] < OPS_JSON
# (ops on stdin: this port crashes on an argv string over 255 bytes)
# OPS_JSON: [["status", addr], ["read_item", addr, di], ["read", addr, di],
#            ["write", addr, di, hex, password], ["read_address"],
#            ["broadcast_time", [y, mo, d, h, mi, s]], ["sleep_ms", n]]
import sys
import json
import time
import asyncio
from binascii import hexlify, unhexlify

from meter import MeterClient
from rs485 import RS485
from uart import UART, Pin


async def one(client, op):
    name = op[0]
    if name == "status":
        return await client.status(op[1])
    if name == "read_item":
        return await client.read_item(op[1], int(op[2], 16))
    if name == "read":
        return hexlify(await client.read(op[1], int(op[2], 16))).decode()
    if name == "write":
        await client.write(op[1], int(op[2], 16), unhexlify(op[3]), op[4])
        return None
    if name == "read_address":
        return await client.read_address()
    if name == "broadcast_time":
        await client.broadcast_time(op[1])
        return None
    if name == "sleep_ms":
        await asyncio.sleep_ms(op[1])
        return None
    raise ValueError(name)


async def ticker(state):
    # Runs beside the exchanges: proves the driver yields to the event loop.
    last = time.ticks_ms()
    while True:
        await asyncio.sleep_ms(2)
        now = time.ticks_ms()
        state["ticks"] += 1
        state["max_gap"] = max(state["max_gap"], time.ticks_diff(now, last))
        last = now


async def main(bus_spec, baud, ops, echo):
    # The unix board's bus, built here so the script does not depend on board.py's API.
    bus = RS485(UART(bus_spec, baud), de=Pin(), baudrate=baud, echo=echo)
    client = MeterClient(bus)
    results = []
    tick = {"ticks": 0, "max_gap": 0}
    task = asyncio.create_task(ticker(tick))
    t0 = time.ticks_ms()
    for op in ops:
        t = time.ticks_ms()
        try:
            r = {"ok": await one(client, op)}
        except Exception as e:
            r = {"error": type(e).__name__, "msg": str(e)}
        r["ms"] = time.ticks_diff(time.ticks_ms(), t)
        results.append(r)
    ms = time.ticks_diff(time.ticks_ms(), t0)
    task.cancel()
    return {"results": results, "ms": ms, "tx": bus.tx_bytes, "rx": bus.rx_bytes,
            "de_changes": bus._de.changes, "de_level": bus._de.value(),
            "ticks": tick["ticks"], "max_gap": tick["max_gap"]}


print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2]), json.loads(sys.stdin.read()),
                                  sys.argv[3:4] == ["echo"]))))
