"""Issue 12: what is journalled besides top-ups reaches the head-end too
(refusals with what was known of the card, alarms once per change), and a
terminal whose records all wait for the broker refuses top-ups rather than
lose one. Real mosquitto; every MAC checked by OpenSSL's SM4."""
import os


from broker_ctl import HeadEnd
from test_reporting import HEAP, METER, reporting, topup_records
from topup_ctl import Rig, meter_state




def kinds(got, kind):
    return [d for _, d in sorted(got.items()) if d["kind"] == kind]


def test_refusals_and_auth_failures_alarm_once(mpy, broker):
    he = HeadEnd(broker.port)
    try:
        rig = Rig([meter_state(METER)], mpy=mpy, heap=HEAP)
        rig.setup = reporting(broker.port)
        with rig:
            rig.boot()
            clones = []
            for _ in range(4):  # a clone, four times: one alarm, not four
                p = rig.sell(METER, record=False)
                p.card._key = os.urandom(16)
                assert "screen: card_invalid" in rig.session(p)
                clones.append(p)
            top = rig.term.cmd("status")["next_seq"] - 1
            he.wait(lambda h: h.has_through(top))
            got = he.check()
            refusals = kinds(got, "refusal")
            assert [d["screen"] for d in refusals] == ["card_invalid"] * 4
            assert "card" not in refusals[0]  # nothing read of a clone: nothing claimed
            alarms = kinds(got, "alarm")
            assert [a["alarm"] for a in alarms] == ["auth_failures"], alarms
            # a refusal after the card was read says what it claimed
            p = rig.sell(METER, amount=0, record=False)
            assert "screen: nothing_to_credit" in rig.session(p)
            top = rig.term.cmd("status")["next_seq"] - 1
            he.wait(lambda h: h.has_through(top))
            r = kinds(he.check(), "refusal")[-1]
            assert (r["screen"], r["meter"], r["card"], r["amount"], r["count"]) == \
                ("nothing_to_credit", METER, p.serial.hex(), 0, p.count)
    finally:
        he.close()


def test_every_slot_waiting_refuses_topups_then_reports_and_sells(mpy, broker):
    """A journal of 3 slots and the broker down: three top-ups fill it; the
    fourth is refused (out of service, journal_full alarm) and nothing is
    overwritten; the broker back, everything arrives and the card sells."""
    he = HeadEnd(broker.port)
    try:
        rig = Rig([meter_state(METER)], mpy=mpy, heap=HEAP)
        rig.setup = dict(reporting(broker.port), journal_slots=3)
        with rig:
            rig.boot()
            he.wait(lambda h: h.seqs())
            broker.down()
            serial = rig.next_serial()
            for _ in range(3):
                assert "screen: success" in rig.session(rig.sell(METER, serial=serial))
            p = rig.sell(METER, serial=serial)
            assert "screen: out_of_service" in rig.session(p)
            rig.check(settled=False)
            assert rig.sim.meter(METER)["count"] == p.count - 1  # nothing sent
            broker.start()
            top = rig.term.cmd("status")["next_seq"] - 1
            he.wait(lambda h: h.has_through(top), 300)
            got = he.check()
            assert sorted(got) == list(range(1, top + 1))
            assert [a["alarm"] for a in kinds(got, "alarm")] == ["journal_full"]
            for c in range(p.count - 3, p.count):
                assert len(topup_records(got, c)) == 3, c
            assert "screen: success" in rig.session(p)  # the slots are free again
            rig.check()
    finally:
        he.close()


def test_a_silent_meter_alarms_once_and_once_back(mpy, broker):
    he = HeadEnd(broker.port)
    try:
        rig = Rig([meter_state(METER), meter_state("000000000002")], mpy=mpy, heap=HEAP,
                  poll=True, interval=1)
        rig.setup = dict(reporting(broker.port), low_balance=20000)
        with rig:
            rig.boot()
            two = rig.sim.meter("000000000002")
            rig.sim.control("remove", address="000000000002")  # it stops answering
            rig.sim.control("trip", address=METER)
            he.wait(lambda h: any(d.get("alarm") == "meter_silent"
                                  for d in h.check().values()), 120)
            rig.sim.control("add", meter=two)
            he.wait(lambda h: any(d.get("alarm") == "meter_back"
                                  for d in h.check().values()), 120)
            got = he.check()
            alarms = [(a["alarm"], a.get("meter")) for a in kinds(got, "alarm")]
            assert alarms.count(("meter_silent", "000000000002")) == 1
            assert alarms.count(("meter_back", "000000000002")) == 1
            # both balances (10000) are under 20000: one alarm each, not one a poll
            assert alarms.count(("low_balance", METER)) == 1
            assert alarms.count(("relay_open", METER)) == 1
    finally:
        he.close()


def test_a_key_store_without_a_reporting_key_does_not_report(mpy, broker):
    """An old (v1) key store: the terminal says once (at boot) why it does
    not report, sells as ever, and publishes nothing."""
    he = HeadEnd(broker.port)
    try:
        rig = Rig([meter_state(METER)], mpy=mpy, heap=HEAP)
        rig.setup = {"mqtt": reporting(broker.port)["mqtt"]}  # no mk_r
        with rig:
            rig.boot()
            logs = rig.session(rig.sell(METER))
            assert "screen: success" in logs
            rig.check()
            said = [line for line in rig.term.logs() if line.startswith("report: ")]
            assert len(said) == 1 and said[0].startswith("report: off: the key store has no "
                                                         "reporting key"), said
        assert he.got == []
    finally:
        he.close()
