"""The key store: round trip, every corruption refused with KeyStoreError
(never a default key), sealed meter-key import, the provisioning tool, and
the same file read and written under MicroPython."""
import os
import subprocess
import sys

import pytest

import bcd
import keystore
import sm4
from keystore import KeyStore, KeyStoreError
from mp_runner import ROOT, run_mp_json

H = bytes.fromhex
MK_M = H("0123456789abcdeffedcba9876543210")
MK_C = H("fedcba98765432100123456789abcdef")
K_T = H("00112233445566778899aabbccddeeff")
K_M_VECTOR = "26bb77cac267c4de9a287954aea3abfb"
K_C_VECTOR = "abda29639f7c41bb08b19986a484c1a8"
OTHER_KM = H("5a" * 16)
TOOL = os.path.join(ROOT, "tools", "make_keystore.py")


def dev_store():
    return KeyStore("000000000099", MK_M, MK_C, K_T)


def test_round_trip(tmp_path):
    ks = dev_store()
    ks.import_meter_key(keystore.seal_meter_key(K_T, "000000000002", OTHER_KM))
    p = str(tmp_path / "keys.bin")
    ks.save(p)
    assert os.listdir(tmp_path) == ["keys.bin"]  # no .tmp left behind
    back = KeyStore.load(p)
    assert back.terminal_id == H("990000000000")
    assert back.operator_code == H("99000000")
    assert back.meter_key("000000000001").hex() == K_M_VECTOR
    assert back.meter_key(H("010000000000")).hex() == K_M_VECTOR
    assert back.meter_key("000000000002") == OTHER_KM
    assert back.card_key(H("8800000000000001")).hex() == K_C_VECTOR
    assert back.overrides() == ["000000000002"]
    assert back.to_bytes() == ks.to_bytes()


def test_save_replaces_atomically(tmp_path):
    p = str(tmp_path / "keys.bin")
    dev_store().save(p)
    ks = KeyStore("000000000100", MK_M, MK_C, K_T)
    ks.save(p)
    assert KeyStore.load(p).terminal_id == bcd.from_digits("000000000100")
    assert sorted(os.listdir(tmp_path)) == ["keys.bin"]


def test_override_removed_falls_back_to_derived_key():
    ks = dev_store()
    ks.import_meter_key(keystore.seal_meter_key(K_T, "000000000001", OTHER_KM))
    assert ks.meter_key("000000000001") == OTHER_KM
    assert ks.remove_meter_key("000000000001") is True
    assert ks.meter_key("000000000001").hex() == K_M_VECTOR
    assert ks.remove_meter_key("000000000001") is False


def test_repr_never_shows_keys():
    ks = dev_store()
    text = repr(ks)
    for k in (MK_M, MK_C, K_T):
        assert k.hex() not in text.lower()
    assert "000000000099" in text


def _file(tmp_path, overrides=1):
    ks = dev_store()
    for i in range(overrides):
        ks.import_meter_key(keystore.seal_meter_key(K_T, "%012d" % (i + 2), OTHER_KM))
    return ks.to_bytes()


def test_every_flipped_bit_is_refused(tmp_path):
    data = _file(tmp_path, overrides=2)
    for i in range(len(data)):
        for bit in (0x01, 0x80):
            bad = bytearray(data)
            bad[i] ^= bit
            with pytest.raises(KeyStoreError):
                KeyStore.from_bytes(bytes(bad))


def test_every_truncation_and_extension_is_refused(tmp_path):
    data = _file(tmp_path)
    for n in range(len(data)):
        with pytest.raises(KeyStoreError):
            KeyStore.from_bytes(data[:n])
    with pytest.raises(KeyStoreError, match="wrong length"):
        KeyStore.from_bytes(data + b"\0")


def test_messages_say_what_to_do(tmp_path):
    data = _file(tmp_path)
    with pytest.raises(KeyStoreError, match=r"missing.*provision"):
        KeyStore.load(str(tmp_path / "nope.bin"))
    with pytest.raises(KeyStoreError, match="wrong magic"):
        KeyStore.from_bytes(b"XKS" + data[3:])
    with pytest.raises(KeyStoreError, match="wrong magic"):
        KeyStore.from_bytes(b"")
    with pytest.raises(KeyStoreError, match="version"):
        KeyStore.from_bytes(data[:3] + b"\x03" + data[4:])
    with pytest.raises(KeyStoreError, match="truncated"):
        KeyStore.from_bytes(data[:70])
    bad = bytearray(data)
    bad[20] ^= 1
    with pytest.raises(KeyStoreError, match="corrupted"):
        KeyStore.from_bytes(bytes(bad))


def _rehash(body):
    import hashlib
    return body + hashlib.sha256(body).digest()


def test_override_with_bad_mac_in_a_well_formed_file_is_refused():
    data = _file(None)
    body = bytearray(data[:-32])
    body[76 + 10] ^= 1  # inside the sealed K_m, checksum recomputed
    with pytest.raises(KeyStoreError, match="fails its MAC"):
        KeyStore.from_bytes(_rehash(bytes(body)))


def test_blank_keys_are_refused_even_with_a_good_checksum():
    data = _file(None, overrides=0)
    body = data[:10] + bytes(16) + data[26:-32]
    with pytest.raises(KeyStoreError, match="blank"):
        KeyStore.from_bytes(_rehash(body))
    with pytest.raises(KeyStoreError, match="blank"):
        KeyStore("000000000099", b"\xff" * 16, MK_C, K_T)


@pytest.mark.parametrize("tid", ["00000000009", "0000000000AB", b"\x99\0\0\0\0", 99])
def test_bad_terminal_id(tid):
    with pytest.raises(KeyStoreError, match="terminal id"):
        KeyStore(tid, MK_M, MK_C, K_T)


def test_import_refuses_bad_records():
    ks = dev_store()
    good = keystore.seal_meter_key(K_T, "000000000002", OTHER_KM)
    wrong_transport = keystore.seal_meter_key(H("77" * 16), "000000000002", OTHER_KM)
    with pytest.raises(KeyStoreError, match="fails its MAC"):
        ks.import_meter_key(wrong_transport)
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x10
        with pytest.raises(KeyStoreError):
            ks.import_meter_key(bytes(bad))
    with pytest.raises(KeyStoreError, match="26 bytes"):
        ks.import_meter_key(good[:-1])
    # a record moved to another address fails its MAC
    moved = bcd.from_digits("000000000003") + good[6:]
    with pytest.raises(KeyStoreError, match="fails its MAC"):
        ks.import_meter_key(moved)
    assert ks.overrides() == []
    assert ks.meter_key("000000000002") == sm4.kdf(MK_M, bcd.from_digits("000000000002") + b"\0\0")


def test_sealed_record_does_not_contain_the_key():
    rec = keystore.seal_meter_key(K_T, "000000000002", OTHER_KM)
    assert OTHER_KM not in rec and len(rec) == 26


@pytest.mark.parametrize("call", [
    lambda ks: ks.meter_key("12345"),
    lambda ks: ks.meter_key("00000000000A"),
    lambda ks: ks.meter_key(b"\x0a\0\0\0\0\0"),
    lambda ks: ks.card_key(b"\0" * 7),
])
def test_bad_lookups(call):
    with pytest.raises(KeyStoreError):
        call(dev_store())


def _tool(*args):
    return subprocess.run([sys.executable, TOOL] + list(args), capture_output=True, text=True)


def test_tool_dev_store_seal_import_show(tmp_path):
    p = str(tmp_path / "keys" / "keystore.bin")
    r = _tool("create", p, "--dev", "--transport", K_T.hex())
    assert r.returncode == 0, r.stderr
    ks = KeyStore.load(p)
    assert ks.meter_key("000000000001").hex() == K_M_VECTOR
    assert ks.card_key(H("8800000000000001")).hex() == K_C_VECTOR
    r = _tool("seal", "--transport", K_T.hex(), "--address", "000000000007",
              "--km", OTHER_KM.hex())
    assert r.returncode == 0, r.stderr
    rec = r.stdout.strip()
    assert OTHER_KM.hex() not in rec
    assert _tool("import", p, rec).returncode == 0
    assert KeyStore.load(p).meter_key("000000000007") == OTHER_KM
    r = _tool("show", p)
    assert "000000000007" in r.stdout
    out = r.stdout.lower() + _tool("create", str(tmp_path / "k2.bin"), "--dev").stdout.lower()
    for k in (MK_M, MK_C, K_T):
        assert k.hex() not in out


def test_tool_random_keys_and_errors(tmp_path):
    a, b = str(tmp_path / "a.bin"), str(tmp_path / "b.bin")
    assert _tool("create", a).returncode == 0
    assert _tool("create", b).returncode == 0
    ka, kb = KeyStore.load(a), KeyStore.load(b)
    assert ka.meter_key("000000000001") != kb.meter_key("000000000001")
    assert ka.meter_key("000000000001").hex() != K_M_VECTOR
    r = _tool("create", a, "--mk-m", "00" * 15)
    assert r.returncode != 0 and "16 bytes" in r.stderr
    r = _tool("import", a, keystore.seal_meter_key(H("77" * 16), "000000000002", OTHER_KM).hex())
    assert r.returncode != 0 and "fails its MAC" in r.stderr
    r = _tool("show", str(tmp_path / "none.bin"))
    assert r.returncode != 0 and "missing" in r.stderr


def test_micropython_reads_and_writes_the_same_format(tmp_path):
    good = str(tmp_path / "good.bin")
    dev_store().save(good)
    data = open(good, "rb").read()
    bads = []
    for name, content in (("flip", data[:30] + bytes([data[30] ^ 4]) + data[31:]),
                          ("trunc", data[:-1]), ("magic", b"ZZZ" + data[3:]), ("empty", b"")):
        p = tmp_path / name
        p.write_bytes(content)
        bads.append(str(p))
    with open(tmp_path / "huge", "wb") as f:  # sparse: 1 MB on a 64 KB heap
        f.truncate(1 << 20)
    (tmp_path / "legacy.bin").write_bytes(dev_store().to_bytes())
    (tmp_path / "fat.bin.tmp").write_bytes(data)
    out = str(tmp_path / "mp.bin")
    r = run_mp_json("host_tests/mp/keystore_check.py", str(tmp_path),
                    keystore.seal_meter_key(H("77" * 16), "000000000002", OTHER_KM).hex(),
                    keystore.seal_meter_key(K_T, "000000000002", OTHER_KM).hex(), heap="64k")
    assert r["km1"] == K_M_VECTOR and r["kc"] == K_C_VECTOR and r["op"] == "99000000"
    assert MK_M.hex() not in r["repr"]
    assert r["errors"] == [
        "key store %s is corrupted (checksum mismatch): re-provision it" % bads[0],
        "key store %s has the wrong length (%d bytes, header says %d): re-provision it"
        % (bads[1], len(data) - 1, len(data)),
        "key store %s is not a checked file (wrong magic): re-provision it" % bads[2],
        "key store %s is truncated (0 bytes): re-provision it" % bads[3],
        "key store %s is too large (1048576 bytes, at most 26148 expected): re-provision it"
        % (tmp_path / "huge"),
        "key store %s missing: provision the terminal (tools/make_keystore.py)"
        % (tmp_path / "missing.bin"),
    ]
    assert r["legacy"] == K_M_VECTOR
    assert r["fat"] == K_M_VECTOR and r["fat_files"] == ["fat.bin"]
    assert "fails its MAC" in r["bad_import"]
    assert r["imported"] == "000000000002" and r["km2"] == OTHER_KM.hex()
    back = KeyStore.load(out)
    assert back.meter_key("000000000002") == OTHER_KM
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["good.bin", "mp.bin", "flip", "trunc", "magic", "empty", "huge", "legacy.bin", "fat.bin"])


# --- holes closed: each test failed before its fix ---------------------------

def test_oversized_file_is_refused_by_its_size_before_it_is_read(tmp_path, monkeypatch):
    import storage
    p = tmp_path / "keys.bin"
    dev_store().save(str(p))
    with open(p, "ab") as f:
        f.truncate(64 << 20)  # sparse
    opened = []
    real_open = open
    monkeypatch.setattr(storage, "open", lambda *a: opened.append(a) or real_open(*a),
                        raising=False)
    monkeypatch.setattr(keystore, "open", lambda *a: opened.append(a) or real_open(*a),
                        raising=False)
    with pytest.raises(KeyStoreError, match="too large"):
        KeyStore.load(str(p))
    assert opened == []


def _largest_store():
    """A key store with the most overrides a file may hold (fast: one
    cipher per key, not a key schedule per record)."""
    c_enc = sm4.Cipher(sm4.kdf(K_T, b"KMENC\0\0\0"))
    c_mac = sm4.Cipher(sm4.kdf(K_T, b"KMMAC\0\0\0"))
    recs = []
    for i in range(1000):
        a = bcd.from_digits("%012d" % (i + 1))
        e = c_enc.encrypt(bytes([i % 250 + 1]) * 16)
        recs.append(a + e + c_mac.mac(a + e))
    body = dev_store().to_bytes()[:74] + (1000).to_bytes(2, "little") + b"".join(sorted(recs))
    return _rehash(body)


def test_largest_key_store_loads_on_a_small_heap(tmp_path):
    """1000 overrides (26 KB): refused by neither the size bound nor the
    heap (a dict of 1000 records fragmented even a 1 MB heap to death)."""
    import storage
    p = str(tmp_path / "keys.bin")
    big = _largest_store()
    storage.write_atomic(p, big)
    assert os.path.getsize(p) == 26108 + 40
    ks = KeyStore.load(p)
    assert len(ks.overrides()) == 1000
    assert ks.meter_key("000000000500") == bytes([499 % 250 + 1]) * 16
    r = run_mp_json("host_tests/mp/keystore_check.py", "load", p, "000000000500", heap="128k")
    assert r["repr"] == "<KeyStore terminal 000000000099, 1000 meter overrides>"
    assert r["km"] == (bytes([499 % 250 + 1]) * 16).hex()
    one_more = _rehash(big[:74] + (1001).to_bytes(2, "little") + big[76:-32]
                       + keystore.seal_meter_key(K_T, "999999999999", OTHER_KM))
    storage.write_atomic(p, one_more)
    with pytest.raises(KeyStoreError, match="too large"):
        KeyStore.load(p)
    with pytest.raises(KeyStoreError, match="more than 1000"):
        KeyStore.from_bytes(one_more)


def test_overrides_stay_in_address_order_through_import_and_remove():
    ks = dev_store()
    for addr in ("000000000300", "000000000001", "000000000200", "120000000000", "000000000002"):
        ks.import_meter_key(keystore.seal_meter_key(K_T, addr, OTHER_KM))
    ks.import_meter_key(keystore.seal_meter_key(K_T, "000000000200", H("a5" * 16)))  # replaced
    assert ks.remove_meter_key("000000000300") and not ks.remove_meter_key("000000000300")
    assert ks.overrides() == ["000000000001", "000000000002", "000000000200", "120000000000"]
    assert ks.meter_key("000000000200") == H("a5" * 16)
    back = KeyStore.from_bytes(ks.to_bytes())
    assert back.to_bytes() == ks.to_bytes() and back.meter_key("120000000000") == OTHER_KM
    assert back.meter_key("000000000300") == sm4.kdf(
        MK_M, bcd.from_digits("000000000300") + b"\0\0")
    back.import_meter_key(keystore.seal_meter_key(K_T, "000000000300", OTHER_KM))
    assert back.overrides()[2] == "000000000200" and back.meter_key("000000000300") == OTHER_KM


def test_records_out_of_address_order_are_refused():
    r1 = keystore.seal_meter_key(K_T, "000000000001", OTHER_KM)
    r2 = keystore.seal_meter_key(K_T, "000000000002", OTHER_KM)
    body = bytearray(dev_store().to_bytes()[:-32])
    body[74:76] = (2).to_bytes(2, "little")
    assert KeyStore.from_bytes(_rehash(bytes(body) + r1 + r2)).overrides() == [
        "000000000001", "000000000002"]
    with pytest.raises(KeyStoreError, match="000000000001 out of order"):
        KeyStore.from_bytes(_rehash(bytes(body) + r2 + r1))


class PowerCut(Exception):
    pass


def _fat_rename(real_rename):
    """os.rename as FAT does it: never over an existing file."""
    def rename(src, dst):
        if os.path.exists(dst):
            raise OSError(17, "File exists", dst)
        real_rename(src, dst)
    return rename


def test_fat_save_cut_between_remove_and_rename_is_recovered(tmp_path, monkeypatch):
    p = str(tmp_path / "keys.bin")
    dev_store().save(p)
    new = KeyStore("000000000100", MK_M, MK_C, K_T)
    real_remove = os.remove
    monkeypatch.setattr(os, "rename", _fat_rename(os.rename))

    def remove_then_cut(path):
        real_remove(path)
        raise PowerCut
    monkeypatch.setattr(os, "remove", remove_then_cut)
    with pytest.raises(PowerCut):
        new.save(p)
    monkeypatch.setattr(os, "remove", real_remove)
    assert os.listdir(tmp_path) == ["keys.bin.tmp"]
    assert KeyStore.load(p).terminal_id == bcd.from_digits("000000000100")
    assert os.listdir(tmp_path) == ["keys.bin"]  # the rename was finished
    assert KeyStore.load(p).terminal_id == bcd.from_digits("000000000100")


def test_fat_save_without_a_cut_replaces_the_file(tmp_path, monkeypatch):
    p = str(tmp_path / "keys.bin")
    monkeypatch.setattr(os, "rename", _fat_rename(os.rename))
    dev_store().save(p)
    KeyStore("000000000100", MK_M, MK_C, K_T).save(p)
    assert os.listdir(tmp_path) == ["keys.bin"]
    assert KeyStore.load(p).terminal_id == bcd.from_digits("000000000100")


def test_save_cut_while_writing_keeps_the_old_store(tmp_path, monkeypatch):
    p = str(tmp_path / "keys.bin")
    dev_store().save(p)
    monkeypatch.setattr(os, "rename", lambda *a: (_ for _ in ()).throw(PowerCut()))
    with pytest.raises(PowerCut):
        KeyStore("000000000100", MK_M, MK_C, K_T).save(p)
    monkeypatch.undo()
    with open(p + ".tmp", "r+b") as f:  # and the .tmp torn
        f.truncate(50)
    assert KeyStore.load(p).terminal_id == H("990000000000")
    assert os.listdir(tmp_path) == ["keys.bin"]


def _mode(path):
    return os.stat(path).st_mode & 0o777


def test_tool_creates_key_stores_owner_only_whatever_the_umask(tmp_path):
    p = str(tmp_path / "keystore.bin")
    with open(p + ".tmp", "wb"):  # a stale world-readable .tmp must not be reused
        pass
    os.chmod(p + ".tmp", 0o666)
    r = subprocess.run([sys.executable, TOOL, "create", p, "--dev"],
                       capture_output=True, text=True, umask=0)
    assert r.returncode == 0, r.stderr
    assert _mode(p) == 0o600
    assert os.listdir(tmp_path) == ["keystore.bin"]
    r = subprocess.run([sys.executable, TOOL, "import", p,
                        keystore.seal_meter_key(MK_M, "000000000002", OTHER_KM).hex()],
                       capture_output=True, text=True, umask=0)
    assert r.returncode != 0  # wrong transport key: nothing written
    assert _mode(p) == 0o600


def test_tmp_is_owner_only_from_its_first_byte(tmp_path, monkeypatch):
    import make_keystore
    p = str(tmp_path / "keystore.bin")
    seen = []
    real_rename = os.rename

    def spy(src, dst):
        seen.append(_mode(src))
        real_rename(src, dst)
    monkeypatch.setattr(os, "rename", spy)
    old = os.umask(0)
    try:
        make_keystore.main(["create", p, "--dev"])
        make_keystore.main(["import", p, keystore.seal_meter_key(
            make_keystore.keystore.KeyStore.load(p)._k_t, "000000000002", OTHER_KM).hex()])
    finally:
        os.umask(old)
    assert seen == [0o600, 0o600] and _mode(p) == 0o600


def _raw_record(address, k_m, k_t=K_T):
    """A sealed record built by hand, bypassing seal_meter_key's checks."""
    k_enc, k_mac = sm4.kdf(k_t, b"KMENC\0\0\0"), sm4.kdf(k_t, b"KMMAC\0\0\0")
    a = bcd.from_digits(address)
    e = sm4.encrypt(k_enc, k_m)
    return a + e + sm4.mac(k_mac, a + e)


def test_hand_sealer_matches_the_module():
    assert _raw_record("000000000002", OTHER_KM) == keystore.seal_meter_key(
        K_T, "000000000002", OTHER_KM)


@pytest.mark.parametrize("blank", [bytes(16), b"\xff" * 16])
def test_sealed_blank_meter_key_is_refused_on_import_and_load(blank):
    with pytest.raises(KeyStoreError):
        keystore.seal_meter_key(K_T, "000000000002", blank)  # the seal side
    rec = _raw_record("000000000002", blank)
    ks = dev_store()
    with pytest.raises(KeyStoreError, match="blank"):
        ks.import_meter_key(rec)
    assert ks.overrides() == []
    body = bytearray(dev_store().to_bytes()[:-32])
    body[74:76] = (1).to_bytes(2, "little")
    with pytest.raises(KeyStoreError, match="blank"):
        KeyStore.from_bytes(_rehash(bytes(body) + rec))


def test_duplicate_meter_address_in_a_file_is_refused():
    first = keystore.seal_meter_key(K_T, "000000000002", OTHER_KM)
    second = keystore.seal_meter_key(K_T, "000000000002", H("a5" * 16))
    body = bytearray(dev_store().to_bytes()[:-32])
    body[74:76] = (2).to_bytes(2, "little")
    with pytest.raises(KeyStoreError, match="000000000002 twice"):
        KeyStore.from_bytes(_rehash(bytes(body) + first + second))


def test_bare_record_saved_before_storage_still_loads_and_is_upgraded_on_save(tmp_path):
    p = str(tmp_path / "keys.bin")
    with open(p, "wb") as f:
        f.write(_file(None))
    ks = KeyStore.load(p)
    assert ks.meter_key("000000000002") == OTHER_KM
    ks.save(p)
    assert open(p, "rb").read(4) == b"TSF\x01"
    assert KeyStore.load(p).to_bytes() == ks.to_bytes()
    with open(p, "wb") as f:  # a damaged bare record says what is wrong
        f.write(_file(None)[:-1])
    with pytest.raises(KeyStoreError, match="wrong length"):
        KeyStore.load(p)


def test_reporting_key_is_this_terminals_own_and_version_1_still_loads():
    """K_r = KDF(MK_R, "R\\0" | terminal id): another terminal's differs, and
    the store keeps K_r, never MK_R. A version 1 file loads, without K_r."""
    mk_r = H("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
    k_r = keystore.report_key(mk_r, "000000000099")
    assert k_r == sm4.kdf(mk_r, b"R\0" + bcd.from_digits("000000000099"))
    assert k_r != keystore.report_key(mk_r, "000000000098")
    ks = KeyStore("000000000099", MK_M, MK_C, K_T, k_r)
    data = ks.to_bytes()
    assert mk_r not in data and KeyStore.from_bytes(data).reporting_key == k_r
    assert KeyStore.from_bytes(dev_store().to_bytes()).reporting_key is None
    import hashlib
    v1 = b"TKS\x01" + data[4:58] + data[74:-32]
    old = KeyStore.from_bytes(v1 + hashlib.sha256(v1).digest())
    assert old.reporting_key is None and old.meter_key("000000000001") == ks.meter_key(
        "000000000001")
