"""firmware/storage.py under the real MicroPython on littlefs (VfsLfs2) and
FAT over drivers/flash.py block devices: a power cut at every program/erase
operation of a write and of the recovery after it, a full flash, and the
unix board's image file read back on the PC with littlefs-python."""
import hashlib
import os
import random

import pytest
from littlefs import LittleFS

import storage
from mp_runner import run_mp, run_mp_json

BS, COUNT = 4096, 64


@pytest.mark.parametrize("fs, bs, count, torn, old_len, new_len", [
    # torn: 0 the cut operation not applied, 1 half applied, 2 half and garbled
    ("lfs", 4096, 16, 1, 130, 130),   # a key-store-sized file on 4 KB flash sectors
    ("lfs", 4096, 16, 0, 130, 130),
    ("lfs", 4096, 16, 2, 130, 130),
    ("lfs", 512, 64, 1, 1000, 700),   # files over several blocks
    ("lfs", 512, 64, 2, 1000, 700),
    ("lfs", 512, 64, 0, 100, 3000),
    ("lfs", 512, 64, 1, 3000, 10),
    ("fat", 512, 128, 1, 130, 130),   # FAT's remove-then-rename window
    ("fat", 512, 128, 0, 1000, 2000),
    ("fat", 512, 128, 2, 1000, 2000),
])
def test_power_cut_at_every_operation_leaves_old_or_new(fs, bs, count, torn, old_len, new_len):
    r = run_mp_json("host_tests/mp/storage_powercut.py", fs, bs, count, torn, old_len, new_len,
                    heap="1m", timeout=300)
    assert r["bad"] == []
    assert r["read_ops"] == 0  # reading never wears the flash
    assert r["cuts"] == r["ops_uncut"] >= 3  # a cut at every operation of the write
    assert r.get("other", 0) == 0 and r["old"] >= 1 and r["new"] >= 1
    assert r["old"] + r["new"] == r["cuts"] + 1
    if fs == "fat":
        assert r["new"] >= 2  # some cuts after the remove: only the .tmp was left
    if fs == "lfs" and old_len > 64:
        assert r["recovery_cuts"] >= 1  # a leftover .tmp was removed under a cut too


def test_program_erase_operations_per_small_write():
    """The figure for a top-up's records: a key-store-sized file on 4 KB sectors."""
    r = run_mp_json("host_tests/mp/storage_powercut.py", "lfs", 4096, 16, 1, 130, 130, heap="1m")
    assert r["ops_uncut"] <= 10


@pytest.mark.parametrize("bs, count", [(4096, 16), (512, 64)])
def test_full_flash_raises_enospc_and_keeps_the_old_value(bs, count):
    r = run_mp_json("host_tests/mp/storage_full.py", bs, count, heap="512k")
    assert r["fill_errno"] == storage.ENOSPC and r["filler"] > bs * count // 2
    assert r["write"] == "OSError %d" % storage.ENOSPC
    assert r["after_full"] == "old" and r["files"] == ["filler", "rec"]  # no .tmp left
    assert r["after_free"] == "new"


def _lfs(image):
    fs = LittleFS(block_size=BS, block_count=COUNT, mount=False)
    fs.context.buffer = bytearray(image)
    fs.mount()
    return fs


def _checked(data):
    body = b"TSF\x01" + len(data).to_bytes(4, "little") + data
    return body + hashlib.sha256(body).digest()


def test_unix_board_image_is_read_by_littlefs_python(tmp_path):
    img = str(tmp_path / "flash.img")
    payload = bytes(range(256)) * 3
    r = run_mp_json("host_tests/mp/storage_image.py", img, BS, COUNT, "write", "keys.bin",
                    stdin=payload.hex())
    assert r["mount_ops"] > 0 and 0 < r["write_ops"] <= 16  # formatted: it was blank
    image = open(img, "rb").read()
    assert len(image) == BS * COUNT
    fs = _lfs(image)
    assert sorted(fs.listdir("/")) == ["keys.bin", "records"]
    with fs.open("keys.bin", "rb") as f:
        raw = f.read()
    assert raw == _checked(payload)
    (tmp_path / "copy").write_bytes(raw)
    assert storage.read_checked(str(tmp_path / "copy")) == payload  # CPython reads it too
    with fs.open("records/1", "rb") as f:
        assert f.read() == _checked(b"record 1")
    # and back: a file put in by the PC, read on the board without a reformat
    with fs.open("from_pc.bin", "wb") as f:
        f.write(_checked(b"hello board"))
    fs.unmount()
    with open(img, "wb") as f:
        f.write(fs.context.buffer)
    r = run_mp_json("host_tests/mp/storage_image.py", img, BS, COUNT, "read", "from_pc.bin")
    assert bytes.fromhex(r["data"]) == b"hello board" and r["mount_ops"] == 0
    r = run_mp_json("host_tests/mp/storage_image.py", img, BS, COUNT, "read", "keys.bin")
    assert bytes.fromhex(r["data"]) == payload


@pytest.mark.parametrize("bs, count", [(4096, 16), (512, 64)])
def test_power_cut_during_the_first_format_is_not_a_brick(bs, count):
    r = run_mp_json("host_tests/mp/storage_format.py", bs, count, heap="512k")
    assert r["refused"] == [] and r["cuts"] == 3 * r["format_ops"] >= 4


@pytest.mark.parametrize("damage", ["garbage", "superblocks", "pair"])
def test_damaged_flash_is_refused_never_reformatted(tmp_path, damage):
    img = str(tmp_path / "flash.img")
    run_mp_json("host_tests/mp/storage_image.py", img, BS, COUNT, "write", "keys.bin",
                stdin="00112233")
    image = bytearray(open(img, "rb").read())
    rnd = random.Random(7)
    if damage == "garbage":
        image = bytearray(rnd.getrandbits(8) for _ in range(len(image)))
    elif damage == "superblocks":  # both copies gone, the other blocks still there
        image[0:2 * BS] = bytes(rnd.getrandbits(8) for _ in range(2 * BS))
    else:  # block 0 damaged, block 1 erased: like a first format cut short,
        # but the directory made later holds blocks beyond the pair
        image[0:BS] = bytes(rnd.getrandbits(8) for _ in range(BS))
        image[BS:2 * BS] = b"\xff" * BS
    with open(img, "wb") as f:
        f.write(image)
    r = run_mp_json("host_tests/mp/storage_image.py", img, BS, COUNT, "mount")
    assert "no valid littlefs" in r["refused"] and "not formatting" in r["refused"]
    assert open(img, "rb").read() == bytes(image)  # not a byte written


def test_blank_image_is_formatted_once(tmp_path):
    img = str(tmp_path / "flash.img")
    r = run_mp_json("host_tests/mp/storage_image.py", img, BS, COUNT, "mount")
    assert r["mount_ops"] > 0 and "refused" not in r
    assert os.path.getsize(img) == BS * COUNT
    r = run_mp_json("host_tests/mp/storage_image.py", img, BS, COUNT, "mount")
    assert r["mount_ops"] == 0  # already a filesystem: mounted as is
    assert _lfs(open(img, "rb").read()).listdir("/") == []


def test_wrong_size_image_is_refused(tmp_path):
    img = tmp_path / "flash.img"
    img.write_bytes(b"\xff" * BS)
    with pytest.raises(AssertionError, match="is 4096 bytes, not 64 x 4096"):
        run_mp("host_tests/mp/storage_image.py", str(img), BS, COUNT, "mount")
