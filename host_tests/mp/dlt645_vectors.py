# Decode and encode the shared DL/T 645 vectors; print one JSON result line.
# Run under micropython and CPython alike: both must print the same.
import sys
import json
from binascii import hexlify, unhexlify
import dlt645
import meter_items


def hx(b):
    return hexlify(b).decode().upper()


with open(sys.argv[1]) as f:
    vectors = json.load(f)
out = {"frames": [], "encode": []}
for v in vectors["frames"]:
    fr = dlt645.decode(unhexlify(v["hex"]))
    value = None
    if fr.control == 0x91:
        value = meter_items.decode(fr.di, fr.data[4:])
    again = dlt645.decode(dlt645.encode(fr.address, fr.control, fr.data))
    out["frames"].append([fr.address, fr.control, hx(fr.data), value,
                          again.address == fr.address and again.data == fr.data])
for v in vectors["encode"]:
    raw = dlt645.encode(v["address"], v["control"], unhexlify(v["data"]))
    fr = dlt645.decode(raw)
    out["encode"].append([hx(raw), fr.address, fr.control, hx(fr.data)])
print(json.dumps(out))
