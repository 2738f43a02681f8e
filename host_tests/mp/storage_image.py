# Under MicroPython: the unix board's flash, a littlefs image in a file
# (flash.FileBlockDev), through storage.mount / write_atomic / read_checked.
# argv: image block_size block_count action [name]
#   write NAME: mount (formatting a new, blank image), write_atomic
#               /f/NAME with the bytes given in hex on stdin, and
#               /f/records/1 with b"record 1"; prints the ops it took
#   read NAME:  mount, print read_checked(/f/NAME) in hex
#   mount:      try to mount; prints the StorageError's message if refused
import json
import sys

import vfs

import flash
import storage

path, bs, count, action = sys.argv[1:5]
dev = flash.PowerCutBlockDev(flash.FileBlockDev(path, int(bs), int(count)))
r = {}
try:
    storage.mount(dev, "/f")
except storage.StorageError as e:
    r["refused"] = str(e)
else:
    r["mount_ops"] = dev.ops
    if action == "write":
        dev.revive()
        storage.write_atomic("/f/" + sys.argv[5], bytes.fromhex(sys.stdin.read().strip()))
        r["write_ops"] = dev.ops
        import os
        os.mkdir("/f/records")
        storage.write_atomic("/f/records/1", b"record 1")
    elif action == "read":
        r["data"] = storage.read_checked("/f/" + sys.argv[5]).hex()
    vfs.umount("/f")
dev.inner.close()
print(json.dumps(r))
