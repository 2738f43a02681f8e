# Run meter client operations under MicroPython through the real RS-485
# driver and the unix board's UART; print one JSON line of results.
#   micropython meter_ops.py BUS BAUD < OPS_JSON
# (ops on stdin: this port crashes on an argv string over 255 bytes)
# OPS_JSON: [["status", addr], ["read_item", addr, di], ["read", addr, di],
#            ["write", addr, di, hex, password], ["read_address"],
#            ["broadcast_time", [y, mo, d, h, mi, s]], ["sleep_ms", n]]
import sys
import json
import time
import asyncio
from binascii import hexlify, unhexlify

import board
from meter import MeterClient


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


async def main(bus_spec, baud, ops):
    bus = board.rs485_bus(bus_spec, baud)
    client = MeterClient(bus)
    results = []
    t0 = time.ticks_ms()
    for op in ops:
        t = time.ticks_ms()
        try:
            r = {"ok": await one(client, op)}
        except Exception as e:
            r = {"error": type(e).__name__, "msg": str(e)}
        r["ms"] = time.ticks_diff(time.ticks_ms(), t)
        results.append(r)
    return {"results": results, "ms": time.ticks_diff(time.ticks_ms(), t0),
            "tx": bus.tx_bytes, "rx": bus.rx_bytes}


print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2]), json.loads(sys.stdin.read())))))
