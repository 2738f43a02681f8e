"""firmware/storage.py on a plain directory (CPython): the checked format,
missing against corrupt, the size bound, recovery of every interrupted
write, and FAT's rename (never over an existing file) simulated."""
import errno
import os

import pytest

import storage
from storage import Corrupt, Missing, StorageError, read_checked, write_atomic

OLD = b"old value " * 13
NEW = b"the new value " * 11


class PowerCut(Exception):
    """Stands for the power going: nothing after it runs."""


def _files(d):
    return sorted(os.listdir(d))


@pytest.fixture
def fat(monkeypatch):
    """os.rename as FAT does it: refused (EEXIST) over an existing file."""
    real = os.rename

    def rename(src, dst):
        if os.path.exists(dst):
            raise OSError(errno.EEXIST, "File exists", dst)
        real(src, dst)
    monkeypatch.setattr(os, "rename", rename)


@pytest.mark.parametrize("data", [b"", b"x", OLD, bytes(range(256)) * 16])
def test_round_trip(tmp_path, data):
    p = str(tmp_path / "rec")
    write_atomic(p, data)
    assert read_checked(p) == data
    assert _files(tmp_path) == ["rec"]
    write_atomic(p, bytearray(NEW))
    assert read_checked(p) == NEW and type(read_checked(p)) is bytes
    assert _files(tmp_path) == ["rec"]


def test_str_is_refused(tmp_path):
    with pytest.raises(TypeError, match="bytes, not str"):
        write_atomic(str(tmp_path / "rec"), "text")
    assert _files(tmp_path) == []


def test_layout(tmp_path):
    import hashlib
    p = str(tmp_path / "rec")
    write_atomic(p, b"abc")
    raw = open(p, "rb").read()
    body = b"TSF\x01" + (3).to_bytes(4, "little") + b"abc"
    assert raw == body + hashlib.sha256(body).digest()


def test_missing_and_corrupt_are_different_types(tmp_path):
    assert issubclass(Missing, StorageError) and issubclass(Corrupt, StorageError)
    assert not issubclass(Missing, Corrupt) and not issubclass(Corrupt, Missing)
    with pytest.raises(Missing, match="missing"):
        read_checked(str(tmp_path / "nope"))
    (tmp_path / "bad").write_bytes(b"junk")
    with pytest.raises(Corrupt, match="truncated"):
        read_checked(str(tmp_path / "bad"))


def test_every_flipped_bit_truncation_and_extension_is_corrupt(tmp_path):
    p = str(tmp_path / "rec")
    write_atomic(p, b"0123456789")
    good = open(p, "rb").read()
    bads = [good[:n] for n in range(len(good))] + [good + b"\0", good + good]
    for i in range(len(good)):
        for bit in (0x01, 0x80):
            b = bytearray(good)
            b[i] ^= bit
            bads.append(bytes(b))
    for bad in bads:
        with open(p, "wb") as f:
            f.write(bad)
        with pytest.raises(Corrupt):
            read_checked(p)


def test_messages(tmp_path):
    p = str(tmp_path / "rec")
    write_atomic(p, b"0123456789")
    good = open(p, "rb").read()
    for content, msg in ((b"XSF\x01" + good[4:], "wrong magic"),
                         (good[:-1], r"wrong length \(49 bytes, header says 50\)"),
                         (good[:39], r"truncated \(39 bytes\)"),
                         (good[:20] + bytes([good[20] ^ 1]) + good[21:], "checksum mismatch")):
        with open(p, "wb") as f:
            f.write(content)
        with pytest.raises(Corrupt, match=msg):
            read_checked(p)


def test_oversized_file_is_refused_before_it_is_opened(tmp_path, monkeypatch):
    p = str(tmp_path / "rec")
    write_atomic(p, b"x" * 100)
    assert read_checked(p, max_size=100) == b"x" * 100  # the bound is the payload's
    opened = []
    real_open = open
    monkeypatch.setattr(storage, "open", lambda *a: opened.append(a) or real_open(*a),
                        raising=False)
    with pytest.raises(Corrupt, match=r"too large \(140 bytes, at most 139 expected\)"):
        read_checked(p, max_size=99)
    with open(p, "r+b") as f:
        f.truncate(1 << 30)  # sparse
    with pytest.raises(Corrupt, match="too large"):
        read_checked(p)
    assert opened == []


def test_other_filesystem_errors_are_not_missing(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OSError) as e:
        read_checked(str(tmp_path / "file" / "rec"))  # ENOTDIR: not "no such file"
    assert not isinstance(e.value, StorageError)


# --- recovery: every state an interrupted write can leave -------------------

def _checked(data):
    import hashlib
    body = b"TSF\x01" + len(data).to_bytes(4, "little") + data
    return body + hashlib.sha256(body).digest()


def _put(path, kind, data):
    raw = {"none": None, "good": _checked(data), "torn": _checked(data)[:60],
           "corrupt": _checked(data)[:10] + b"\xff" + _checked(data)[11:]}[kind]
    if raw is not None:
        with open(path, "wb") as f:
            f.write(raw)


@pytest.mark.parametrize("main, tmp, result", [
    ("none", "none", Missing),
    ("none", "good", NEW),      # FAT cut between remove and rename; littlefs first write
    ("none", "torn", Missing),  # the first write never finished
    ("good", "none", OLD),
    ("good", "good", OLD),      # cut before the rename: the old value stands
    ("good", "torn", OLD),
    ("corrupt", "none", Corrupt),
    ("corrupt", "good", NEW),
    ("corrupt", "torn", Corrupt),
])
def test_recovery(tmp_path, main, tmp, result):
    p = str(tmp_path / "rec")
    _put(p, main, OLD)
    _put(p + ".tmp", tmp, NEW)
    if isinstance(result, bytes):
        assert read_checked(p) == result
        assert _files(tmp_path) == ["rec"]  # the rename finished, a leftover gone
        assert read_checked(p) == result
    else:
        with pytest.raises(result):
            read_checked(p)
        assert _files(tmp_path) == ([] if main == "none" else ["rec"])


def test_recovery_when_the_rename_cannot_be_finished(tmp_path, monkeypatch):
    p = str(tmp_path / "rec")
    _put(p + ".tmp", "good", NEW)
    monkeypatch.setattr(os, "rename", lambda *a: (_ for _ in ()).throw(OSError(errno.EROFS, "ro")))
    assert read_checked(p) == NEW  # still readable: the data, not the tidying, matters
    monkeypatch.undo()
    assert read_checked(p) == NEW and _files(tmp_path) == ["rec"]


class Torn:
    """A file that takes `left` bytes, then the power goes."""

    def __init__(self, f, left):
        self.f, self.left = f, left

    def write(self, b):
        n = min(len(b), self.left)
        self.f.write(bytes(b[:n]))
        self.left -= n
        if n < len(b):
            raise PowerCut

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.f.close()


@pytest.mark.parametrize("fs", ["posix", "fat"])
def test_cut_at_every_step_reads_old_or_new(tmp_path, monkeypatch, request, fs):
    """A cut after k bytes of the .tmp, before the rename and (FAT) between
    its remove and rename: the reader gets the complete old or new data."""
    if fs == "fat":
        request.getfixturevalue("fat")
    p = str(tmp_path / "rec")
    real_create, rename, real_remove = storage._create, os.rename, os.remove

    def remove_then_cut(path):
        real_remove(path)
        raise PowerCut
    steps = [("tmp bytes", k) for k in range(0, 8 + len(NEW) + 32, 5)]
    seen = set()
    for step in steps + [("rename", 0), ("remove", 0), ("none", 0)]:
        for n in os.listdir(tmp_path):
            real_remove(os.path.join(tmp_path, n))
        write_atomic(p, OLD)
        if step[0] == "tmp bytes":
            monkeypatch.setattr(storage, "_create",
                                lambda path, private: Torn(real_create(path, private), step[1]))
        elif step[0] == "rename":
            monkeypatch.setattr(os, "rename", lambda *a: (_ for _ in ()).throw(PowerCut()))
        elif step[0] == "remove":
            monkeypatch.setattr(os, "remove", remove_then_cut)
        try:
            write_atomic(p, NEW)
            cut = False
        except PowerCut:
            cut = True
        monkeypatch.setattr(storage, "_create", real_create)
        monkeypatch.setattr(os, "rename", rename)
        monkeypatch.setattr(os, "remove", real_remove)
        got = read_checked(p)
        assert got in (OLD, NEW), step
        assert read_checked(p) == got and _files(tmp_path) == ["rec"], step
        seen.add((step[0], cut, got == NEW))
    assert ("tmp bytes", True, True) not in seen and ("tmp bytes", True, False) in seen
    assert ("rename", True, False) in seen and ("none", False, True) in seen
    # POSIX renames over the file (no remove); FAT's cut after the remove
    # leaves only the complete .tmp, which is recovered
    assert ("remove", fs == "fat", True) in seen


def test_full_or_failing_write_leaves_the_old_value_and_no_tmp(tmp_path, monkeypatch):
    p = str(tmp_path / "rec")
    write_atomic(p, OLD)
    real_create = storage._create

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, b):
            raise OSError(storage.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()
    monkeypatch.setattr(storage, "_create", lambda path, private: Full(real_create(path, private)))
    with pytest.raises(OSError) as e:
        write_atomic(p, NEW)
    assert e.value.errno == errno.ENOSPC == storage.ENOSPC
    assert _files(tmp_path) == ["rec"] and read_checked(p) == OLD


def test_fat_rename_path(tmp_path, fat):
    p = str(tmp_path / "rec")
    write_atomic(p, OLD)
    write_atomic(p, NEW)
    assert read_checked(p) == NEW and _files(tmp_path) == ["rec"]


def test_rename_errors_other_than_exists_are_not_taken_for_fat(tmp_path, monkeypatch):
    p = str(tmp_path / "rec")
    write_atomic(p, OLD)
    monkeypatch.setattr(os, "rename", lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, "io")))
    with pytest.raises(OSError):
        write_atomic(p, NEW)
    monkeypatch.undo()
    assert open(p, "rb").read(4) == b"TSF\x01"  # never removed
    assert read_checked(p) == OLD and _files(tmp_path) == ["rec"]


# --- private files (a host writing secrets) ----------------------------------

def test_private_files_are_owner_only_whatever_the_umask(tmp_path, monkeypatch):
    p = str(tmp_path / "rec")
    modes = []
    real = os.rename

    def spy(src, dst):
        modes.append(os.stat(src).st_mode & 0o777)
        real(src, dst)
    monkeypatch.setattr(os, "rename", spy)
    old = os.umask(0)
    try:
        with open(p + ".tmp", "wb"):
            pass
        os.chmod(p + ".tmp", 0o666)  # a stale .tmp keeps no say
        write_atomic(p, OLD, private=True)
        write_atomic(p + "2", OLD)
    finally:
        os.umask(old)
    assert modes == [0o600, 0o666]
    assert os.stat(p).st_mode & 0o777 == 0o600


def test_private_tmp_never_follows_a_planted_link(tmp_path):
    p = str(tmp_path / "rec")
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    os.symlink(str(victim), p + ".tmp")
    write_atomic(p, OLD, private=True)
    assert victim.read_bytes() == b"keep me"
    assert read_checked(p) == OLD and not os.path.islink(p)
