"""Files that survive a power cut: atomic write, integrity check, recovery.

The one helper for everything the terminal keeps on flash (key store, meter
records, journal), so one place knows how a write can tear.

File layout: magic "TSF\\x01" 4 | n 4 (payload length, little-endian)
| payload n | SHA-256 of everything before it 32

write_atomic(path, data) writes path + ".tmp" whole, then renames it over
path. On littlefs the rename is atomic: after a power cut the old or the new
file is there, perhaps with a leftover .tmp. FAT cannot rename over a file:
VfsFat.rename (and write_atomic, where a rename refuses with EEXIST) removes
the old file first, so a cut between the two leaves only the complete .tmp.
read_checked(path) takes that .tmp (and finishes the rename); a .tmp next to
a good file, or one that fails its check (a write that never finished), is
discarded. So a reader sees the complete old data or the complete new data.

Errors: Missing (neither file), Corrupt (fails its check, too large), both
StorageError; OSError from the filesystem itself (EIO; ENOSPC when full,
the old file intact) passes through. mount(bdev, path) puts littlefs on a
block device (drivers/flash.py), formatting only a blank one.
"""
import hashlib
import os

from micropython import const

_MAGIC = b"TSF\x01"
_HEAD = const(8)
_SUM = const(32)
_ENOENT = const(2)
_EEXIST = const(17)
ENOSPC = const(28)  # OSError errno of a write to a full filesystem
PROGSIZE = const(256)  # littlefs program size: the SPI NOR page


class StorageError(Exception):
    """Base: the message says which file and what is wrong."""


class Missing(StorageError):
    """No such file (nor a complete .tmp to recover)."""


class Corrupt(StorageError):
    """The file fails its integrity check or is larger than allowed."""


def _load(path, max_size):
    """The payload in path, None if there is no such file; Corrupt if bad."""
    try:
        n = os.stat(path)[6]
    except OSError as e:
        if e.args[0] == _ENOENT:
            return None
        raise
    top = max_size + _HEAD + _SUM
    if n > top:  # refused before reading a byte
        raise Corrupt("%s is too large (%d bytes, at most %d expected)" % (path, n, top))
    if n < _HEAD + _SUM:
        raise Corrupt("%s is truncated (%d bytes)" % (path, n))
    with open(path, "rb") as f:
        head = f.read(_HEAD)
        if head[0:4] != _MAGIC:
            raise Corrupt("%s is not a checked file (wrong magic)" % path)
        length = int.from_bytes(head[4:8], "little")
        if n != _HEAD + length + _SUM:
            raise Corrupt("%s has the wrong length (%d bytes, header says %d)"
                          % (path, n, _HEAD + length + _SUM))
        data = f.read(length)
        digest = f.read(_SUM)
    h = hashlib.sha256(head)
    h.update(data)
    if len(data) != length or h.digest() != digest:
        raise Corrupt("%s is corrupted (checksum mismatch)" % path)
    return data


def _remove(path):
    """Best effort: a leftover that stays is harmless, the data is not."""
    try:
        os.remove(path)
    except OSError:
        pass


def _replace(src, dst):
    try:
        os.rename(src, dst)
    except OSError as e:
        if e.args[0] != _EEXIST:
            raise
        # A filesystem that will not rename over a file (FAT): a cut between
        # these two leaves only the complete src, which read_checked takes.
        os.remove(dst)
        os.rename(src, dst)


def _create(path, private):
    if private and hasattr(os, "fdopen"):
        # A host writing secrets: owner-only from the first byte whatever
        # the umask; O_EXCL: never a stale .tmp's mode nor a planted link.
        _remove(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "wb")
    return open(path, "wb")


def write_atomic(path, data, private=False):
    """Store data (bytes) in path: the old contents or the new, never a mix.
    private: owner-only (0600) where the filesystem has modes (a host)."""
    if isinstance(data, str):  # MicroPython would write it as UTF-8: wrong length
        raise TypeError("write_atomic stores bytes, not str")
    tmp = path + ".tmp"
    head = _MAGIC + len(data).to_bytes(4, "little")
    h = hashlib.sha256(head)
    h.update(data)
    try:
        with _create(tmp, private) as f:
            f.write(head)
            f.write(data)
            f.write(h.digest())
            if hasattr(os, "fsync"):  # a host's page cache; littlefs commits on close
                f.flush()
                os.fsync(f.fileno())
    except OSError:
        _remove(tmp)  # free the space; the old file is untouched
        raise
    _replace(tmp, path)


def read_checked(path, max_size=4096):
    """The payload last stored in path by write_atomic, finishing or
    discarding an interrupted write. max_size bounds the payload: a larger
    file is refused (Corrupt) before it is read."""
    tmp = path + ".tmp"
    err = None
    try:
        data = _load(path, max_size)
    except Corrupt as e:
        data, err = None, e
    if data is None:
        try:
            data = _load(tmp, max_size)
        except Corrupt:
            pass  # a write that never finished
        if data is not None:
            try:
                _replace(tmp, path)
            except OSError:
                pass  # still readable from tmp next time
            return data
    _remove(tmp)  # if any
    if data is not None:
        return data
    if err is not None:
        raise err
    raise Missing("%s is missing" % path)


def _never_formatted(bdev):
    """Blank (0xFF) but for block 0, where a first format cut short leaves
    its start (littlefs writes the superblock to block 0, then its copy to
    block 1): no file can ever have been written on such a device."""
    bs = bdev.ioctl(5, 0)
    buf = bytearray(bs)
    blank = b"\xff" * bs
    for n in range(1, bdev.ioctl(4, 0)):
        bdev.readblocks(n, buf, 0)
        if buf != blank:
            return False
    return True


def mount(bdev, path, progsize=PROGSIZE):
    """Mount littlefs from bdev at path; returns the filesystem object.
    progsize: the flash's program page (256 on the usual SPI NOR, as the
    rp2 port mounts it): a commit of a small file is then one program
    operation, not one per 32 bytes.
    Only a device that never held a filesystem is formatted: one holding
    anything else but no valid littlefs raises StorageError (it may hold
    records; erasing them is a technician's decision)."""
    try:
        import vfs
    except ImportError:  # MicroPython before 1.23
        vfs = os
    try:
        fs = vfs.VfsLfs2(bdev, progsize=progsize)
    except OSError as e:
        if not _never_formatted(bdev):
            raise StorageError(
                "flash for %s holds data but no valid littlefs (error %s): "
                "not formatting it; a technician must erase it to start over"
                % (path, e.args[0]))
        vfs.VfsLfs2.mkfs(bdev, progsize=progsize)
        fs = vfs.VfsLfs2(bdev, progsize=progsize)
    vfs.mount(fs, path)
    return fs
