# Under MicroPython, through the real RS-485 driver and the unix board's
# UART: a full security session on meter 1, then credit() on meter 2 (the
# test arms drop_reply_after_topup there first), its repeat and a count the
# meter would refuse, an amount of 0, a confirmed refusal on meter 5 (not
# opened), then the signed balances of meters 3 and 4. Keys from a key
# store file.
#   micropython security_session.py BUS BAUD KEYSTORE
# Last line: JSON of what happened (never a key).
import asyncio
import json
import sys
import time

import keystore
import meter_credit as mc
import meter_security as ms
from meter import MeterClient
from rs485 import RS485
from uart import UART, Pin


def st(s):
    return {"balance": s.balance, "count": s.count, "customer": s.customer}


async def main(spec, baud, path):
    ks = keystore.KeyStore.load(path)
    # A 200-character inter-byte gap: the simulator is a process on a busy
    # test machine, where a pause is not the end of a reply.
    client = MeterClient(RS485(UART(spec, baud), de=Pin(), baudrate=baud, gap_chars=200))
    out = {}
    t0 = time.ticks_ms()
    s = ms.MeterSession(client, "000000000001", ks.meter_key("000000000001"),
                        operator=ks.operator_code)
    out["serial"] = len(await s.authenticate())
    before = await s.read_back()
    out["before"] = st(before)
    await s.send_top_up(12345, before.count + 1, before.customer)
    out["after"] = st(await s.read_back())
    await s.end()
    out["session_ms"] = time.ticks_diff(time.ticks_ms(), t0)
    try:
        await s.send_top_up(1, 3, before.customer)
        out["after_end"] = "accepted"
    except ms.NotAuthenticated:
        out["after_end"] = "NotAuthenticated"

    m2, k2 = "000000000002", ks.meter_key("000000000002")
    c = await mc.credit(client, m2, k2, 700, 2, "100000000002", ks.operator_code)
    out["credit"] = [c.result, st(c.before), st(c.after)]
    c = await mc.credit(client, m2, k2, 700, 2, "100000000002", ks.operator_code)
    out["again"] = c.result
    try:
        await mc.credit(client, m2, k2, 700, 4, "100000000002", ks.operator_code)
    except ms.CountError as e:
        out["count_error"] = [e.serr, e.status.count, isinstance(e, mc.TopUpSent)]
    try:
        await mc.credit(client, m2, k2, 0, 3, "100000000002", ks.operator_code)
    except ValueError:
        out["amount_0"] = "ValueError"
    m5 = "000000000005"
    try:
        await mc.credit(client, m5, ks.meter_key(m5), 100, 2, "100000000005", ks.operator_code)
    except mc.Refused as e:
        out["refused"] = [type(e.reason).__name__, e.count, e.after.count,
                          isinstance(e, mc.TopUpSent)]

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
