# Under MicroPython: load key stores written by CPython, save one back.
# (Or argv: load PATH METER: load one store, print its repr and a meter key.)
# argv: dir bad_record_hex good_record_hex. dir holds good.bin and the
# damaged copies flip, trunc, magic, empty, huge (larger than any key store);
# legacy.bin (a bare record, as saved before storage.py) and fat.bin.tmp
# (a save cut between FAT's remove and rename) must load; missing.bin must
# not exist; the store is saved back as mp.bin. (One directory, not a list
# of paths: the unix port dies with "uncaught NLR" on an argv entry of 256+
# characters.)
import json
import os
import sys

import keystore

if sys.argv[1] == "load":  # argv: load PATH METER: one store, one meter key
    ks = keystore.KeyStore.load(sys.argv[2])
    print(json.dumps({"repr": repr(ks), "km": ks.meter_key(sys.argv[3]).hex()}))
    sys.exit(0)
d, bad_rec, good_rec = sys.argv[1:4]
good = d + "/good.bin"
out = d + "/mp.bin"
r = {}
ks = keystore.KeyStore.load(good)
r["km1"] = ks.meter_key("000000000001").hex()
r["kc"] = ks.card_key(bytes.fromhex("8800000000000001")).hex()
r["op"] = ks.operator_code.hex()
r["repr"] = repr(ks)
errs = []
for n in ("flip", "trunc", "magic", "empty", "huge", "missing.bin"):
    try:
        keystore.KeyStore.load(d + "/" + n)
        errs.append("loaded")
    except keystore.KeyStoreError as e:
        errs.append(str(e))
    except MemoryError:
        errs.append("MemoryError")
r["errors"] = errs
r["legacy"] = keystore.KeyStore.load(d + "/legacy.bin").meter_key("000000000001").hex()
r["fat"] = keystore.KeyStore.load(d + "/fat.bin").meter_key("000000000001").hex()
r["fat_files"] = sorted(n for n in os.listdir(d) if n.startswith("fat"))
try:
    ks.import_meter_key(bytes.fromhex(bad_rec))
    r["bad_import"] = "accepted"
except keystore.KeyStoreError as e:
    r["bad_import"] = str(e)
r["imported"] = ks.import_meter_key(bytes.fromhex(good_rec))
r["km2"] = ks.meter_key("000000000002").hex()
ks.save(out)
ks.save(out)  # over an existing file
print(json.dumps(r))
