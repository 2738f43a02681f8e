"""Block devices for littlefs (vfs.VfsLfs2) and FAT (vfs.VfsFat).

MicroPython's extended block protocol (os.AbstractBlockDev):
readblocks(n, buf, off) reads len(buf) bytes at byte `off` of block n;
writeblocks(n, buf, off) programs them without erasing (littlefs), or, with
off None, rewrites whole blocks (FAT); ioctl(op, arg): 1 init, 2 deinit,
3 sync, 4 block count, 5 block size, 6 erase block `arg`. A prog or erase
that returns a negative errno (-5, EIO) makes littlefs raise OSError in the
caller.

- RAMBlockDev: flash in RAM, erased (0xFF) to start with; tests.
- FileBlockDev: the unix board's flash, an image file (created erased).
- PowerCutBlockDev: wraps one of those and cuts the power after a given
  number of program/erase operations, so tests can stop a write at every
  step; `ops` counts them (program/erase operations per top-up), `erases`
  the erases among them.

A board's own flash (rp2.Flash, esp32.Partition) already speaks the protocol.
"""
import os

from micropython import const

_EIO = const(5)
TORN_NONE = const(0)  # the cut operation leaves the flash as it was
TORN_HALF = const(1)  # it programs (or erases) the first half of its bytes
TORN_GARBLED = const(2)  # and leaves the second half's bits half set (| 0xA5)


def _ioctl(dev, op, arg):
    """The block protocol's ioctl for a device with block_size, count,
    writeblocks() and an erased block `_blank` (sync() if it buffers)."""
    if op == 4:
        return dev.count
    if op == 5:
        return dev.block_size
    if op == 6:  # erase: the block back to all 0xFF
        dev.writeblocks(arg, dev._blank, 0)
        return 0
    if op in (1, 2, 3):
        if op == 3 and hasattr(dev, "sync"):
            dev.sync()
        return 0
    return None


class RAMBlockDev:
    def __init__(self, block_size, count):
        self.block_size = block_size
        self.count = count
        self.data = bytearray(block_size * count)
        self._blank = b"\xff" * block_size
        for n in range(count):
            self.ioctl(6, n)

    def readblocks(self, n, buf, off=0):
        a = n * self.block_size + off
        buf[:] = memoryview(self.data)[a:a + len(buf)]

    def writeblocks(self, n, buf, off=None):
        a = n * self.block_size + (off or 0)
        self.data[a:a + len(buf)] = buf

    ioctl = _ioctl


class FileBlockDev:
    """Flash in an image file of block_size x count bytes; a missing file is
    created erased (0xFF). The image is what littlefs-python mounts on a PC."""

    def __init__(self, path, block_size, count):
        self.block_size = block_size
        self.count = count
        self._blank = b"\xff" * block_size
        size = block_size * count
        try:
            have = os.stat(path)[6]
        except OSError:
            with open(path, "wb") as f:
                for _ in range(count):
                    f.write(self._blank)
            have = size
        if have != size:
            raise ValueError("flash image %s is %d bytes, not %d x %d"
                             % (path, have, count, block_size))
        self._f = open(path, "r+b")

    def readblocks(self, n, buf, off=0):
        self._f.seek(n * self.block_size + off)
        self._f.readinto(buf)

    def writeblocks(self, n, buf, off=None):
        self._f.seek(n * self.block_size + (off or 0))
        self._f.write(buf)
        self._f.flush()  # a killed process must not lose an acknowledged write

    ioctl = _ioctl

    def sync(self):
        self._f.flush()

    def close(self):
        self._f.close()


class PowerCutBlockDev:
    """`cut_after` program/erase operations go through whole; the next one is
    hit by the cut (applied as `torn` says: TORN_NONE not at all, TORN_HALF
    its first half, TORN_GARBLED that and bits of the second half neither
    old nor new) and it and every later one return -EIO without raising;
    reads still work. cut_after None: never cut. revive() restores power
    (the flash keeps what it holds) and starts counting again."""

    def __init__(self, inner, cut_after=None, torn=TORN_HALF):
        self.inner = inner
        self.torn = torn
        self.revive(cut_after)

    def revive(self, cut_after=None):
        self.cut_after = cut_after
        self.ops = 0  # program + erase operations asked for since (re)start
        self.erases = 0  # of which erases
        self.dead = False

    def _cut(self):
        """0: apply; 1: this operation is the one the cut hits; 2: refused."""
        if self.dead:
            return 2
        self.ops += 1
        if self.cut_after is not None and self.ops > self.cut_after:
            self.dead = True
            return 1
        return 0

    def readblocks(self, n, buf, off=0):
        return self.inner.readblocks(n, buf, off)

    def _tear(self, n, off, new):
        """The cut operation: new (what it would have left) half applied."""
        h = len(new) // 2
        if self.torn == TORN_GARBLED:
            old = bytearray(len(new) - h)
            self.inner.readblocks(n, old, off + h)
            for i in range(len(old)):  # some bits of the new value, not all
                old[i] = (old[i] & new[h + i]) | 0xA5
            self.inner.writeblocks(n, old, off + h)
        if self.torn != TORN_NONE:
            self.inner.writeblocks(n, memoryview(new)[:h], off)

    def writeblocks(self, n, buf, off=None):
        c = self._cut()
        if c == 0:
            return self.inner.writeblocks(n, buf, off)
        if c == 1:
            self._tear(n, off or 0, buf)
        return -_EIO

    def ioctl(self, op, arg):
        if op != 6:
            return self.inner.ioctl(op, arg)
        c = self._cut()
        if c < 2:
            self.erases += 1
        if c == 0:
            return self.inner.ioctl(op, arg)
        if c == 1:
            self._tear(arg, 0, b"\xff" * self.inner.ioctl(5, 0))
        return -_EIO
