# Under MicroPython: cut the power at every program/erase operation of the
# first format (storage.mount on a blank device); with power back, mount
# must format the device (it never held a filesystem), not refuse it.
# argv: block_size block_count. Prints JSON: cuts tried, refusals.
import json
import sys

import vfs

import flash
import storage

bs, count = int(sys.argv[1]), int(sys.argv[2])
r = {"cuts": 0, "refused": []}
for torn in (flash.TORN_NONE, flash.TORN_HALF, flash.TORN_GARBLED):
    n = 0
    while True:
        dev = flash.PowerCutBlockDev(flash.RAMBlockDev(bs, count), n, torn)
        try:
            storage.mount(dev, "/s")
            vfs.umount("/s")
        except OSError:
            pass
        if not dev.dead:
            r["format_ops"] = dev.ops
            break
        r["cuts"] += 1
        dev.revive()
        try:
            storage.mount(dev, "/s")
            storage.write_atomic("/s/rec", b"works")
            assert storage.read_checked("/s/rec") == b"works"
            vfs.umount("/s")
        except storage.StorageError as e:
            r["refused"].append("torn %d cut %d: %s" % (torn, n, e))
        n += 1
print(json.dumps(r))
