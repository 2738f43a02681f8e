"""A scripted day for the head-end: a ledger and terminals' journals that
produce every reconciliation category once (test_headend_reconcile.py, the
web page test, the README screenshots)."""
import time

import fake_terminals as ft
from headend import ledger
from headend.ingest import Ingest
from headend.reportmac import Verifier

DEV_MK_R = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
A, B, C = "000000000011", "000000000012", "000000000013"
DAY = 86400


def m(n):
    return "%012d" % (700000 + n)


def cust(n):
    return "%012d" % (100000 + n)


def card(n):
    return "88000000000000%02x" % n


SALES = (  # (card n, count, meter/customer n, fen, days ago)
    (1, 2, 1, 10000, 5),       # credited at A: good
    (2, 3, 2, 5000, 10),       # never credited, 10 days: call the customer
    (3, 4, 3, 2000, 0.05),     # sold an hour ago: waiting
    (5, 7, 5, 3000, 4),        # credited at A and at B: credited twice
)


def write_ledger(path, now):
    with open(path, "w") as f:
        for c, count, n, fen, ago in SALES:
            f.write(ledger.sale_line(card(c), count, cust(n), m(n), fen, now - ago * DAY) + "\n")


def play(store, now):
    """Every terminal's reports into the store, as the MQTT worker would."""
    recent = Ingest(store, Verifier(DEV_MK_R), clock=lambda: now - 60)
    old = Ingest(store, Verifier(DEV_MK_R), clock=lambda: now - 2 * 3600)
    a, b, c = ft.FakeTerminal(A), ft.FakeTerminal(B), ft.FakeTerminal(C)
    msgs = [a.record("boot", reason="power_on", open=0)]
    msgs += a.topup(m(1), cust(1), card(1), 10000, 2)
    msgs += a.topup(m(4), cust(4), card(4), 3000, 9)  # no sale: a forged card?
    msgs += a.topup(m(5), cust(5), card(5), 3000, 7)
    msgs += b.topup(m(5), cust(5), card(5), 3000, 7)  # the same purchase again
    msgs.append(a.heartbeat({m(1): [10000, 2, False, True], m(7): "silent",
                             m(8): [-350, 4, True, True], m(9): [5000, 0, False, False]}))
    msgs.append(b.record("refusal", screen="meter_replaced", meter=m(10), customer=cust(10),
                         card=card(10), amount=1000, count=3))
    msgs.append(b.record("refusal", screen="meter_replaced", meter=m(11), customer=cust(11),
                         card=card(11), amount=1000, count=3))
    msgs.append(b.record("technician", card="99000000000001", tech="0007",
                         action="registered", meter=m(11), old_meter=m(11),
                         address=m(11), key="derived"))
    msgs.append(b.record("alarm", alarm="meter_silent", meter=m(12), detail="3 polls"))
    msgs.append(b.record("alarm", alarm="relay_open", meter=m(13), detail="balance -1.00"))
    msgs.append(b.record("refusal", screen="meter_not_opened", meter=m(14), customer=cust(14),
                         card=card(14), amount=1000, count=1))
    b.seq += 2  # two records lost on the way: a gap
    msgs.append(b.record("boot", reason="power_on", open=0))
    topic, payload = a.record("topup", step="result", meter=m(1), count=3, amount=10000,
                              result="credited")
    msgs.append((topic, payload.replace(b"10000", b"90000")))  # forged: MAC fails
    for msg in msgs:
        recent.handle(*msg)
    old.handle(*c.record("boot", reason="power_on", open=0))  # then silent


def scripted(store, ledger_path, now=None):
    now = time.time() if now is None else now
    write_ledger(ledger_path, now)
    ledger.import_file(store, ledger_path)
    play(store, now)
    return now
