"""Meter records and the journal on littlefs, under the real micropython:
lookups by meter and by customer, seeding that never overwrites, the ring
that never reuses an open slot, a remount that finds every open entry, and
torn slots read as empty rather than as wrong data."""
from mp_runner import run_mp_json


def test_records_and_journal_on_littlefs():
    got = run_mp_json("host_tests/mp/records_journal.py", heap="256k")
    assert got["seeded"] == 40 and got["meters"] == 40
    assert (got["state"], got["refusal"]) == ("replaced", "meter_replaced")
    assert got["reseeded"] == 0  # first boot only: records are never overwritten
    assert got["kept"] == ["100000000005", "8800000000000005"]
    assert got["by_customer"] == "000000000017"
    assert got["unknown"] == [True, True, True, False, True]
    assert got["moved"] == ["000000000006", True]  # the old customer index entry is stale
    assert got["bad_record"] == "refused"
    assert got["torn_record"] == [True, True]  # a torn slot is empty, its neighbours intact
    assert got["ops_put"] <= 3  # a record change rewrites one small page, not the table
    assert got["cap_kept"] == 60  # a table on flash keeps the capacity it was made with
    # journal: three top-ups, each step its own sequence number
    assert got["seqs"] == [1, 3, 4, 7]
    next_seq, open_seqs, unsettled_count, none_unsettled, awaiting, last1, last3 = got["rescan"]
    assert next_seq == 7  # a remount continues the numbering
    assert open_seqs == [1, 3]  # #1 awaits its write-back, #3 is unsettled
    assert (unsettled_count, none_unsettled, awaiting) == (9, True, 1)
    assert (last1, last3) == (3, 2)  # the last count credited here, per meter
    assert got["kept_open"] == [1, 3]  # ten top-ups through an 8-slot ring kept them
    assert got["full"] == "refused"  # only unsettled entries: nothing may be sold
    assert got["awaiting_give_way"] == [41, 42, 43, 44]  # the oldest write-back gave way
    open_after, closed = got["superseded"]
    assert open_after == [44]  # the card showed count 44: 41..43 will never be written
    assert closed == [[41, True], [42, True], [43, True], [44, False]]
    assert got["torn"] == [True, True]
    assert got["newest"][0] > got["newest"][1] > got["newest"][2]
    assert got["ops_settle"] <= 3
