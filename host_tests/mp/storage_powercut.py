# Under MicroPython: cut the power at every program/erase operation of a
# storage.write_atomic over an existing value, then at every operation of the
# recovery that follows, on littlefs (VfsLfs2) or FAT (VfsFat) over a RAM
# flash. After each cut the storage is remounted with power back and read:
# it must hold the complete old or the complete new data, the same on every
# later read, no .tmp left, and take a new write.
# argv: lfs|fat block_size block_count torn(0 none, 1 half) old_len new_len
# Prints JSON: cuts tried, how many read old / new, the ops of an uncut
# write, and every anomaly (an empty list when all is well).
import json
import os
import sys

import vfs

import flash
import storage

kind, bs, count, torn, old_len, new_len = sys.argv[1:7]
bs, count, torn, old_len, new_len = int(bs), int(count), int(torn), int(old_len), int(new_len)
OLD = bytes((i * 7 + 1) & 0xFF for i in range(old_len))
NEW = bytes((i * 13 + 5) & 0xFF for i in range(new_len))
MNT = "/s"
P = MNT + "/rec"


def mount(dev):
    if kind == "lfs":
        storage.mount(dev, MNT)
    else:
        vfs.mount(vfs.VfsFat(dev), MNT)


def name(v):
    return "old" if v == OLD else "new" if v == NEW else "other"


base = flash.RAMBlockDev(bs, count)
if kind == "fat":
    vfs.VfsFat.mkfs(base)
mount(base)
storage.write_atomic(P, OLD)
vfs.umount(MNT)
snapshot = bytes(base.data)

r = {"cuts": 0, "old": 0, "new": 0, "recovery_cuts": 0, "bad": []}
ram = flash.RAMBlockDev(bs, count)
dev = flash.PowerCutBlockDev(ram, None, torn)
n = 0
while True:
    ram.data[:] = snapshot
    dev.revive(n)
    mount(dev)
    try:
        storage.write_atomic(P, NEW)
    except OSError:
        pass
    vfs.umount(MNT)
    done = not dev.dead
    if done:
        r["ops_uncut"] = dev.ops
    else:
        r["cuts"] += 1
    cut = bytes(ram.data)
    m = 0
    while True:  # recovery (read_checked) cut after m operations
        ram.data[:] = cut
        dev.revive(m)
        where = "cut %d, recovery cut %d" % (n, m)
        try:
            mount(dev)
            first = storage.read_checked(P)
            vfs.umount(MNT)
            cut_again = dev.dead
            dev.revive()
            mount(dev)
            again = storage.read_checked(P)
            files = sorted(os.listdir(MNT))
            storage.write_atomic(P, b"after")
            after = storage.read_checked(P)
            vfs.umount(MNT)
        except Exception as e:
            r["bad"].append("%s: %s %s" % (where, type(e).__name__, e))
            try:
                vfs.umount(MNT)
            except OSError:
                pass
            break
        if name(first) == "other" or again != first:
            r["bad"].append("%s: read %s then %s" % (where, name(first), name(again)))
        if files != ["rec"] or after != b"after":
            r["bad"].append("%s: files %s, rewrite %r" % (where, files, after))
        if m == 0:
            r[name(first)] = r.get(name(first), 0) + 1
        if done and name(first) != "new":
            r["bad"].append("uncut write read back " + name(first))
        if not cut_again:
            break
        r["recovery_cuts"] += 1
        m += 1
    if done:
        break
    n += 1
ram.data[:] = snapshot  # a read with nothing to recover writes nothing
dev.revive()
mount(dev)
storage.read_checked(P)
r["read_ops"] = dev.ops
vfs.umount(MNT)
print(json.dumps(r))
