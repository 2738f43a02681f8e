"""drivers/flash.py block devices on CPython: the extended block protocol,
the file-backed image, and where exactly PowerCutBlockDev cuts."""
import pytest

from flash import TORN_GARBLED, TORN_HALF, TORN_NONE, FileBlockDev, PowerCutBlockDev, RAMBlockDev

BS = 256


def _read(dev, n, off=0, size=BS):
    buf = bytearray(size)
    dev.readblocks(n, buf, off)
    return bytes(buf)


@pytest.fixture(params=["ram", "file"])
def dev(request, tmp_path):
    if request.param == "ram":
        yield RAMBlockDev(BS, 8)
    else:
        d = FileBlockDev(str(tmp_path / "flash.img"), BS, 8)
        yield d
        d.close()


def test_protocol(dev):
    assert dev.ioctl(4, 0) == 8 and dev.ioctl(5, 0) == BS
    assert all(dev.ioctl(op, 0) == 0 for op in (1, 2, 3))
    assert dev.ioctl(99, 0) is None
    assert all(_read(dev, n) == b"\xff" * BS for n in range(8))  # erased
    dev.writeblocks(2, b"abc", 10)  # program at an offset
    assert _read(dev, 2, 8, 7) == b"\xff\xffabc\xff\xff"
    dev.writeblocks(3, b"z" * (2 * BS))  # whole blocks (FAT style)
    assert _read(dev, 3) == _read(dev, 4) == b"z" * BS
    assert dev.ioctl(6, 3) == 0
    assert _read(dev, 3) == b"\xff" * BS and _read(dev, 4) == b"z" * BS
    assert _read(dev, 2, 10, 3) == b"abc"


def test_file_image_is_created_erased_and_persists(tmp_path):
    p = str(tmp_path / "flash.img")
    d = FileBlockDev(p, BS, 8)
    assert open(p, "rb").read() == b"\xff" * (BS * 8)
    d.writeblocks(1, b"kept", 0)
    # no close: each program reaches the file at once (a killed unix board)
    assert open(p, "rb").read()[BS:BS + 4] == b"kept"
    d.close()
    d = FileBlockDev(p, BS, 8)
    assert _read(d, 1, 0, 4) == b"kept"
    d.close()
    with pytest.raises(ValueError, match="not 16 x 256"):
        FileBlockDev(p, BS, 16)


def test_power_cut_counts_then_tears_then_refuses():
    ram = RAMBlockDev(BS, 4)
    d = PowerCutBlockDev(ram, cut_after=2, torn=TORN_HALF)
    assert d.writeblocks(0, b"a" * 8, 0) is None  # 1: applied
    assert d.ioctl(6, 1) == 0  # 2: applied
    assert (d.ops, d.erases, d.dead) == (2, 1, False)
    assert d.writeblocks(0, b"b" * 8, 8) == -5  # 3: the cut, half applied
    assert d.dead and d.ops == 3
    assert _read(ram, 0, 0, 20) == b"a" * 8 + b"b" * 4 + b"\xff" * 8
    assert d.writeblocks(0, b"c" * 8, 0) == -5 and d.ioctl(6, 0) == -5  # refused, no raise
    assert _read(d, 0, 0, 12) == b"a" * 8 + b"b" * 4  # reads still work
    assert d.ops == 3 and d.ioctl(4, 0) == 4 and d.ioctl(5, 0) == BS
    d.revive()
    assert (d.ops, d.erases, d.dead) == (0, 0, False)
    assert d.writeblocks(0, b"c" * 8, 0) is None and _read(ram, 0, 0, 1) == b"c"


def test_cut_erase_half_and_none():
    ram = RAMBlockDev(BS, 2)
    ram.writeblocks(0, b"\x00" * BS, 0)
    d = PowerCutBlockDev(ram, cut_after=0)  # the first operation is the cut
    assert d.ioctl(6, 0) == -5 and d.erases == 1
    assert _read(ram, 0) == b"\xff" * (BS // 2) + b"\x00" * (BS // 2)
    ram.writeblocks(1, b"\x00" * BS, 0)
    d = PowerCutBlockDev(ram, cut_after=0, torn=TORN_NONE)
    assert d.ioctl(6, 1) == -5 and d.writeblocks(1, b"x", 0) == -5
    assert _read(ram, 1) == b"\x00" * BS


def test_never_cut_without_a_limit():
    d = PowerCutBlockDev(RAMBlockDev(BS, 2))
    for _ in range(1000):
        assert d.writeblocks(0, b"x", 0) is None
    assert d.ops == 1000 and not d.dead


def test_cut_garbled_leaves_bits_neither_old_nor_new():
    ram = RAMBlockDev(BS, 2)
    d = PowerCutBlockDev(ram, cut_after=0, torn=TORN_GARBLED)
    assert d.writeblocks(0, b"\x00" * 8, 4) == -5
    assert _read(ram, 0, 0, 14) == b"\xff" * 4 + b"\x00" * 4 + b"\xa5" * 4 + b"\xff" * 2
    ram.writeblocks(1, b"\x00" * BS, 0)
    d = PowerCutBlockDev(ram, cut_after=0, torn=TORN_GARBLED)
    assert d.ioctl(6, 1) == -5  # an erase cut halfway: some bits back to 1
    assert _read(ram, 1) == b"\xff" * (BS // 2) + b"\xa5" * (BS // 2)
