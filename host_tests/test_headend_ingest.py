"""The head-end's checks on each report, on SQLite and PostgreSQL, without
MQTT: the MAC against the contract's vectors (keystore.report_key, OpenSSL,
gmssl), stored once, duplicates dropped, forged / replayed / foreign
reports refused and alarmed (docs/reporting.md)."""
import json

import pytest
from gmssl.sm4 import SM4_ENCRYPT, CryptSM4

import fake_terminals as ft
import keystore
import sm4
from headend import reportmac
from headend.ingest import Ingest
from headend.reportmac import Verifier
from headend.store import Store
from headend_ctl import DEV_MK_R, db_url, pg_cluster  # noqa: F401 - fixtures

TID = "000000000099"


def test_reporting_key_and_mac_follow_the_contract():
    assert reportmac.tid_wire(TID).hex() == "990000000000"
    k_r = reportmac.terminal_key(DEV_MK_R, TID)
    assert k_r == keystore.report_key(DEV_MK_R, TID) == ft.report_key(DEV_MK_R, TID)
    topic, body = "terminals/%s/journal" % TID, b'{"t":"000000000099","seq":1}'
    m = topic.encode() + b"\x00" + body
    data = len(m).to_bytes(4, "big") + m
    padded = data + b"\x80" + bytes(-(len(data) + 1) % 16)
    g = CryptSM4(padding_mode=3)  # gmssl's ECB, no padding of its own; CBC chained here
    g.set_key(k_r, SM4_ENCRYPT)
    acc = bytes(16)
    for i in range(0, len(padded), 16):
        acc = g.crypt_ecb(bytes(a ^ b for a, b in zip(acc, padded[i:i + 16])))[:16]
    want = acc.hex()
    assert reportmac.mac(k_r, topic, body) == want
    assert ft.sign(k_r, topic, body) == body + b"." + want.encode()
    # the profile's CBC-MAC (firmware/sm4.py) is the first 4 bytes of the same block
    assert sm4.mac(k_r, data).hex() == want[:8]
    # docs/reporting.md's vector, for the terminal's side to check against
    assert k_r.hex() == "86f9ab85744c51a62c38ed9418acde01"
    assert want == "5d704d1a355091fbe5024b6312b2c6d5"


@pytest.fixture
def ingest(db_url):  # noqa: F811
    s = Store(db_url)
    yield Ingest(s, Verifier(DEV_MK_R), clock=lambda: 1_800_000_000.0)
    s.close()


def rows(ing, sql):
    return ing.store.query(sql)


def alarms(ing):
    return [k for (k,) in rows(ing, "SELECT kind FROM alarms ORDER BY kind")]


def test_a_report_is_stored_once(ingest):
    t = ft.FakeTerminal(TID)
    boot = t.record("boot", reason="power_on", open=0)
    topup = t.topup("000000000001", "112233445566", "8800000000000042", 10000, 2)
    for topic, payload in [boot] + topup:
        assert ingest.handle(topic, payload) == "stored"
    for topic, payload in [boot] + topup:  # a re-publish after a power cut
        assert ingest.handle(topic, payload) == "duplicate"
    got = rows(ingest, "SELECT seq, kind, step, meter, count, amount, result FROM reports"
                       " ORDER BY seq")
    assert [tuple(r) for r in got] == [
        (1, "boot", None, None, None, None, None),
        (2, "topup", "intent", "000000000001", 2, 10000, None),
        (3, "topup", "result", "000000000001", 2, 10000, "credited"),
        (4, "topup", "done", "000000000001", 2, 10000, "credited")]
    assert json.loads(rows(ingest, "SELECT body FROM reports WHERE seq = 3")[0][0])["after"] \
        == [10000, 2]
    assert alarms(ingest) == []


def test_another_body_under_a_stored_seq_is_refused_and_alarmed(ingest):
    t = ft.FakeTerminal(TID)
    first = t.record("boot", reason="power_on", open=0)
    assert ingest.handle(*first) == "stored"
    # signed with the right key (a leaked key, or a terminal's own bug): still one per seq
    other = t.record("alarm", seq=1, alarm="clock", detail="x")
    assert ingest.handle(*other) == "conflict"
    assert ingest.handle(*other) == "conflict"  # redelivered: one alarm
    assert alarms(ingest) == ["conflict"]
    assert rows(ingest, "SELECT body FROM reports")[0][0] == first[1].rpartition(b".")[0].decode()


def test_forged_and_replayed_reports_are_refused_and_alarmed(ingest):
    t = ft.FakeTerminal(TID)
    topic, payload = t.record("topup", step="result", meter="000000000001", count=2,
                              amount=10000, result="credited", card="8800000000000042",
                              customer="112233445566")
    body, _, mac = payload.rpartition(b".")
    forged_amount = body.replace(b"10000", b"99999") + b"." + mac
    assert ingest.handle(topic, forged_amount) == "refused:bad_mac"
    # the genuine record replayed under another terminal's topic
    assert ingest.handle("terminals/000000000098/journal", payload) == "refused:bad_mac"
    # re-signed by another terminal's key: its body still names 000000000099
    mallory = ft.FakeTerminal("000000000098")
    assert ingest.handle(*mallory.signed("journal", json.loads(body))) == \
        "refused:wrong_terminal"
    # a key from another utility
    alien = ft.FakeTerminal(TID, mk_r=bytes(16))
    assert ingest.handle(*alien.record("boot")) == "refused:bad_mac"
    assert ingest.handle(topic, body) == "refused:malformed"  # no MAC at all
    assert ingest.handle(*t.signed("journal", {"t": TID, "seq": 0, "kind": "boot"})) == \
        "refused:malformed"
    assert ingest.handle(*t.signed("journal", {"t": TID, "seq": 5, "kind": "party"})) == \
        "refused:malformed"
    assert ingest.handle("terminals/xyz/journal", payload) == "refused:bad_topic"
    assert ingest.handle(topic, payload) == "stored"  # the genuine one still goes in
    assert rows(ingest, "SELECT COUNT(*), MAX(amount) FROM reports")[0] == (1, 10000)
    assert alarms(ingest) == ["bad_mac"] * 3 + ["bad_topic"] + ["malformed"] * 3 + \
        ["wrong_terminal"]


def test_heartbeats_keep_the_newest_and_drop_an_older_one(ingest):
    t = ft.FakeTerminal(TID)
    hb1 = t.heartbeat({"000000000001": [100, 1, False, True]})
    hb2 = t.heartbeat({"000000000001": "silent"})
    assert ingest.handle(*hb1) == "stored"
    assert ingest.handle(*hb2) == "stored"
    assert ingest.handle(*hb2) == "duplicate"
    # an older heartbeat (a replay, or one another worker took late) is dropped
    assert ingest.handle(*hb1) == "stale"
    assert alarms(ingest) == []
    t.beat = 1
    assert ingest.handle(*t.heartbeat({"000000000001": [1, 1, True, True]})) == "conflict"
    assert alarms(ingest) == ["heartbeat_conflict"]
    assert rows(ingest, "SELECT boot, beat, meters FROM heartbeats")[0] == \
        (1, 2, '{"000000000001": "silent"}')
    rebooted = ft.FakeTerminal(TID, boot=2)
    assert ingest.handle(*rebooted.heartbeat()) == "stored"  # beat 1 of a later boot
    assert rows(ingest, "SELECT boot, beat FROM heartbeats")[0] == (2, 1)


def test_values_a_database_would_choke_on_are_refused_not_stuck(ingest):
    """A genuine key with hostile values must not stop the queue: what
    SQLite or PostgreSQL would refuse is refused (and alarmed) first."""
    t = ft.FakeTerminal(TID)
    for rec in ({"seq": 1 << 70, "kind": "boot"},
                {"seq": 1, "kind": "refusal", "meter": "0001\x00"},
                {"seq": 1, "kind": "refusal", "meter": "\ud800"},
                {"seq": 1, "kind": "refusal", "screen": "x" * 10000},
                {"seq": 1, "kind": "topup", "amount": -5}):
        topic, payload = t.signed("journal", dict(rec, t=TID))
        assert ingest.handle(topic, payload) == "refused:malformed", rec
    assert ingest.handle(*t.signed("journal", {"t": "\x00" * 5000, "seq": 1})) == \
        "refused:wrong_terminal"
    assert ingest.handle(*t.record("boot")) == "stored"
    assert len(alarms(ingest)) == 6
