"""A power cut at every flash operation of a re-registration (issue 11):
the real technician flow under micropython (host_tests/mp/topup_harness.py,
littlefs on a power-cut block device, the key store on the same flash),
the new meter of another key batch registered with its sealed package.
After each cut and a reboot the customer is either still "replaced" (the
old record, no stray key in the key store) or fully re-registered (the new
record awaiting its opening, the package's key stored), never between."""

import card_model
import card_sim
import keystore
from topup_ctl import MK_C, Purchase, Rig, meter_state

A = "000000000001"
CUSTOMER = "112233445566"
NEW = "000000000777"
OTHER_KM = bytes.fromhex("a5a5a5a55a5a5a5a0f0f0f0ff0f0f0f0")
K_T = bytes.fromhex("00112233445566778899aabbccddeeff")  # the harness's transport key
PIN = "246810"
KEYSTORE = "/flash/keys.bin"



def drive(rig, steps, at):
    """(screen to wait for, keys to press) in order, from event `at` on."""
    t = rig.term
    for screen, keys in steps:
        at, _ = t.wait_event(lambda e: e["ev"] == "log" and e["line"] == "screen: " + screen,
                             60, at)
        at += 1
        t.cmd("key", keys=keys)


def to_confirm(rig):
    card = card_model.Card.technician(MK_C, bytes.fromhex("7700000000000001"),
                                      "900000000042", PIN)
    sim = card_sim.T0Sim("127.0.0.1", rig.slot, card)
    at = rig.term.mark()  # before the card goes in: its first screen may come at once
    sim.insert()
    drive(rig, [("tech_pin", list(PIN) + ["ok"]), ("tech_menu", ["2"]),
                ("tech_customer", list(CUSTOMER) + ["ok"]), ("tech_address", ["ok"]),
                ("tech_meter_number", ["ok"]), ("tech_key_kind", ["2"]), ("tech_confirm", [])],
          at)
    return sim


def test_power_cut_at_every_operation_of_a_re_registration(tmp_path, mpy):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / (NEW + ".key")).write_text(keystore.seal_meter_key(K_T, NEW, OTHER_KM).hex())
    meters = [meter_state(A, CUSTOMER, balance=5000, count=6, record_state="replaced")]
    extra = {"keypad": True, "keystore_path": KEYSTORE, "inbox": str(inbox)}
    # 384k as the soak: the harness holds every module in RAM, a board has them frozen
    rig = Rig(meters, mpy=mpy, heap="384k")
    rig.extra = extra
    with rig:
        rig.sim.control("replace", address=A, new_address=NEW, key=OTHER_KM.hex())
        assert rig.boot()
        rig.term.cmd("halt")
        base = rig.snapshot("base")
        outcomes = []
        k = 0
        while True:
            rig.restore(base)
            assert rig.boot()
            sim = to_confirm(rig)
            since = rig.term.mark()
            rig.term.cmd("arm", after=k)
            rig.term.cmd("key", keys=["ok"])
            _, ev = rig.term.wait_event(
                lambda e: e["ev"] == "power_cut" or (e["ev"] == "log" and e["line"] in (
                    "screen: tech_done", "screen: tech_not_saved", "screen: tech_auth_failed")),
                60, since)
            if ev["ev"] == "power_cut":
                rig.wait_down(since)
                sim.pull()
                assert rig.boot()
            else:
                assert ev["line"] == "screen: tech_done", ev
                rig.term.cmd("disarm")
                sim.pull()  # the mode ends; the slot is free for the next card
                rig.term.wait_event(lambda e: e["ev"] == "slot_free", 60, since)
            st = rig.term.cmd("tech_state", customer=CUSTOMER, meter=A)
            st["km"] = rig.term.cmd("tech_state", customer=CUSTOMER, meter=NEW)["km"]
            st["logs"] = [ln for ln in rig.term.logs(since) if "technician" in ln]
            assert st["pending"] == [], st
            rec = st["record"]
            if rec["meter"] == A:
                assert rec["state"] == "replaced" and st["overrides"] == [], repr((k, st))
                outcomes.append("replaced")
            else:
                assert (rec["meter"], rec["state"], rec["key"], rec["address"]) == (
                    NEW, "awaiting_opening", "override", NEW), (k, st)
                assert st["overrides"] == [NEW] and st["km"] == OTHER_KM.hex(), (k, st)
                assert not st["old_record"], (k, st)  # the old meter's record is gone
                outcomes.append("registered")
            if ev["ev"] != "power_cut":
                break
            k += 1
        assert k >= 5  # the save took several flash operations, each one cut
        assert "replaced" in outcomes and outcomes[-1] == "registered"
        # once registered, the new meter is the customer's: it authenticates
        rig.sim.control("card_at_meter", address=NEW, customer=CUSTOMER)
        p = Purchase(NEW, CUSTOMER, 3000, 1, bytes.fromhex("8800000000000009"))
        logs = rig.session(p)
        assert "screen: success" in logs, logs
        assert rig.sim.meter(NEW)["count"] == 1
