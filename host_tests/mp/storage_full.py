# Under MicroPython: write_atomic on a full littlefs raises OSError ENOSPC,
# leaves the old value readable and no .tmp, and works again once space is
# freed. argv: block_size block_count. Prints JSON.
import json
import os

import vfs

import flash
import storage
import sys

bs, count = int(sys.argv[1]), int(sys.argv[2])
storage.mount(flash.RAMBlockDev(bs, count), "/s")
OLD = b"old value " * 10
NEW = b"new value " * 300  # several blocks: cannot fit once the flash is full
storage.write_atomic("/s/rec", OLD)
r = {"filler": 0}
for size in (bs, 64, 1):  # fill the flash: append, committing each chunk
    chunk = b"\x00" * size
    while True:
        try:
            with open("/s/filler", "ab") as f:
                f.write(chunk)
            r["filler"] += size
        except OSError as e:
            r["fill_errno"] = e.args[0]
            break
try:
    storage.write_atomic("/s/rec", NEW)
    r["write"] = "ok"
except OSError as e:
    r["write"] = "OSError %d" % e.args[0]
v = storage.read_checked("/s/rec")
r["after_full"] = "old" if v == OLD else "new" if v == NEW else "other"
r["files"] = sorted(os.listdir("/s"))
os.remove("/s/filler")
storage.write_atomic("/s/rec", NEW)
r["after_free"] = "new" if storage.read_checked("/s/rec") == NEW else "other"
vfs.umount("/s")
print(json.dumps(r))
