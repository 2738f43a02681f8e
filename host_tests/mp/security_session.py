# Under MicroPython, through the real RS-485 driver and the unix board's
# UART: a full security session on meter 1, then credit() on meter 2 (the
# test arms drop_reply_after_topup there first), then the signed balances
# of meters 3 and 4. Keys from a key store file.
#   micropython security_session.py BUS BAUD KEYSTORE
# Last line: JSON of what happened (never a key).
import asyncio
import json
import sys
import time

import board
import keystore
import meter_security as ms
from meter import MeterClient


def st(s):
    return {"balance": s.balance, "count": s.count, "customer": s.customer}


async def main(spec, baud, path):
    ks = keystore.KeyStore.load(path)
    client = MeterClient(board.rs485_bus(spec, baud))
    out = {}
    t0 = time.ticks_ms()
    s = ms.MeterSession(client, "000000000001", ks.meter_key("000000000001"),
                        operator=ks.operator_code)
    out["serial"] = len(await s.authenticate())
    before = await s.read_back()
    out["before"] = st(before)
    out["result"] = await s.top_up(12345, before.count + 1, before.customer)
    out["after"] = st(await s.read_back())
    await s.end()
    out["session_ms"] = time.ticks_diff(time.ticks_ms(), t0)
    try:
        await s.top_up(1, 3, before.customer)
        out["after_end"] = "accepted"
    except ms.NotAuthenticated:
        out["after_end"] = "NotAuthenticated"
    r, b, a = await ms.credit(client, "000000000002", ks.meter_key("000000000002"),
                              700, 2, "100000000002", ks.operator_code)
    out["credit"] = [r, st(b), st(a)]
    try:
        await ms.credit(client, "000000000002", ks.meter_key("000000000002"),
                        700, 4, "100000000002", ks.operator_code)
    except ms.CountError as e:
        out["count_error"] = e.serr
    neg = []
    for a in ("000000000003", "000000000004"):  # set to overdrafts by the test
        s = ms.MeterSession(client, a, ks.meter_key(a))
        await s.authenticate()
        neg.append((await s.read_back()).balance)
        await s.end()
    out["negative"] = neg
    bad = ms.MeterSession(client, "000000000001", bytes(range(16)))
    try:
        await bad.authenticate()
    except ms.AuthFailed as e:
        out["wrong_key"] = e.serr
    return out


print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))))
