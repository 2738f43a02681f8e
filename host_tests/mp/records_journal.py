"""Meter records and the journal on littlefs under micropython: lookups,
seeding that never overwrites, the ring that never reuses an open slot, a
remount that finds everything again, a torn slot read as empty. Prints one
JSON line of findings."""
import json
import os

import flash
import journal
import records
import storage


class St:
    def __init__(self, balance, count):
        self.balance = balance
        self.count = count


def mount(bdev, path="/t"):
    try:
        import vfs
        vfs.umount(path)
    except (OSError, ImportError):
        pass
    storage.mount(bdev, path)
    return path


out = {}
bdev = flash.PowerCutBlockDev(flash.RAMBlockDev(4096, 32))
root = mount(bdev)
r = records.Records(root, 60)  # 48 meters at most
seed = [{"address": "%012d" % i, "meter_number": "%012d" % i, "customer": "1%011d" % i}
        for i in range(1, 41)]
seed[3]["state"] = "replaced"
out["seeded"] = r.seed(seed)
rec = r.get("000000000004")
out["state"] = rec.state
out["refusal"] = rec.refusal()
rec = r.get("000000000005")
rec.serial = "8800000000000005"
r.put(rec)
seed[4]["customer"] = "999999999999"  # a changed seed file never overwrites
out["reseeded"] = r.seed(seed)
out["kept"] = (r.get("000000000005").customer, r.get("000000000005").serial)
out["by_customer"] = r.by_customer("100000000017").meter
out["unknown"] = [r.get("000000000099") is None, r.by_customer("123456789012") is None,
                  r.get("../../x") is None, "000000000099" in r, "000000000001" in r]
out["meters"] = len(list(r.meters()))
# a customer moved to another meter: the old index entry goes
rec = r.get("000000000006")
rec.customer = "555555555555"
r.put(rec)
out["moved"] = [r.by_customer("555555555555").meter, r.by_customer("100000000006") is None]
try:
    records.Record("12345", "100000000001")
    out["bad_record"] = "accepted"
except records.RecordError:
    out["bad_record"] = "refused"
# a torn slot reads as empty; the others stay
n = bdev.ops
rec = r.get("000000000007")
rec.serial = "8800000000000007"
r.put(rec)
out["ops_put"] = bdev.ops - n
with open(root + "/rec/001", "r+b") as f:  # slot 8: the 4th of page 1
    f.seek(3 * 96 + 20)
    f.write(b"\x00\x01")
out["cap_kept"] = records.Records(root, 300).capacity  # its hash depends on it
out["torn_record"] = [r.get("000000000008") is None, r.get("000000000009") is not None]

# journal: intent, result, done; open entries survive a remount
clock = lambda: (2026, 11, 29, 20, 30, 5)  # noqa: E731
j = journal.Journal(root, "000000000099", clock, slots=8)
e1 = j.begin(journal.Entry("000000000001", "100000000001", b"\x88" * 8, 5000, 3), St(100, 2))
n = bdev.ops
j.settle(e1, journal.CREDITED, St(5100, 3))
out["ops_settle"] = bdev.ops - n
e2 = j.begin(journal.Entry("000000000002", "100000000002", b"\x77" * 8, 700, 9), St(0, 8))
e3 = j.begin(journal.Entry("000000000003", "100000000003", b"\x66" * 8, 100, 2), St(0, 1))
j.settle(e3, journal.CREDITED, St(100, 2))
j.done(e3)
out["seqs"] = [e1.seq, e2.seq, e3.seq, j.next_seq]
j2 = journal.Journal(root, "000000000099", clock, slots=8)
out["rescan"] = [j2.next_seq, sorted(e.seq for e in j2.open_entries()),
                 j2.unsettled("000000000002").count, j2.unsettled("000000000001") is None,
                 j2.awaiting_write_back(b"\x88" * 8, 3).seq, j2.last_count("000000000001"),
                 j2.last_count("000000000003")]
# fill the ring: open slots (e1 awaiting write-back, e2 unsettled) are never reused
for i in range(10):
    e = j2.begin(journal.Entry("000000000009", "100000000009", b"\x55" * 8, 1, 10 + i),
                 St(0, 9 + i))
    j2.settle(e, journal.CREDITED, St(1, 10 + i))
    j2.done(e)
out["kept_open"] = sorted(e.seq for e in j2.open_entries())
# every slot open -> JournalFull, nothing written
j3 = journal.Journal(root, "000000000099", clock, slots=3)
for i in range(3):
    try:
        j3.begin(journal.Entry("000000000008", "100000000008", b"\x44" * 8, 1, 20 + i), St(0, 0))
    except journal.JournalFull:
        pass
try:
    j3.begin(journal.Entry("000000000008", "100000000008", b"\x44" * 8, 1, 30), St(0, 0))
    out["full"] = "accepted"
except journal.JournalFull:
    out["full"] = "refused"
# entries that only await a card's write-back never block the ring, and a
# card showing a later purchase closes its older ones
os.mkdir(root + "/j5")
j5 = journal.Journal(root + "/j5", "000000000099", clock, slots=4)
for i in range(4):
    e = j5.begin(journal.Entry("000000000007", "100000000007", b"\x33" * 8, 1, 40 + i),
                 St(0, 39 + i))
    j5.settle(e, journal.CREDITED, St(1, 40 + i))
e = j5.begin(journal.Entry("000000000007", "100000000007", b"\x33" * 8, 1, 44), St(0, 43))
j5.settle(e, journal.CREDITED, St(1, 44))
out["awaiting_give_way"] = sorted(o.count for o in j5.open_entries())
j5.supersede(b"\x33" * 8, 44)
j6 = journal.Journal(root + "/j5", "000000000099", clock, slots=4)
out["superseded"] = [sorted(o.count for o in j6.open_entries()),
                     sorted((x.count, x.unwritten) for x in j6.newest(4))]
# a torn slot reads as empty, the rest still scans
with open(root + "/jrn/0000", "r+b") as f:
    f.seek(20)
    f.write(b"\x00\x01\x02")
j4 = journal.Journal(root, "000000000099", clock, slots=8)
out["torn"] = [j4._read(0) is None, j4.next_seq >= j2.next_seq]
out["newest"] = [e.seq for e in j4.newest(3)]
print(json.dumps(out))
