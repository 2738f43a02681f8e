"""SM4, the dispersion KDF and the CBC-MAC: the profile's vectors under
CPython and MicroPython (plain and viper), and agreement with two SM4s we
did not write (gmssl, pure Python; cryptography, OpenSSL)."""
import os
import subprocess

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher as OCipher, algorithms, modes
from gmssl.sm4 import SM4_DECRYPT, SM4_ENCRYPT, CryptSM4
from hypothesis import given, settings, strategies as st

import sm4
from mp_runner import MPY_CROSS, ROOT, run_mp_json

K = bytes.fromhex("0123456789abcdeffedcba9876543210")
H = bytes.fromhex
DI_TOPUP = (0x070102FF).to_bytes(4, "little")

# The profile's table, plus padding edge cases computed with OpenSSL (below).
VECTORS = {
    "block": "681edf34d206965e86b3e94f536e4246",
    "decrypt": K.hex(),
    "km": "26bb77cac267c4de9a287954aea3abfb",
    "c1": "f22731e8392ca211",
    "ks": "8b32dd3a0fe9028e945488f4aa6b8c29",
    "mac_empty": "01096bb0",
    "mac1": "850afb23",
    "mac2": "ee062820",
    "kc": "abda29639f7c41bb08b19986a484c1a8",
    "int_auth": "9bfb8b0670768b7a",
    "sale_mac": "75e8f6fb",
    "wb_mac": "67234f26",
}
ITER_1M = "595298c7c6fd271f0402f804c33d3f66"


def ossl_block(key, block):
    e = OCipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return e.update(block) + e.finalize()


def ossl_mac(key, data):
    padded = data + b"\x80" + bytes(15 - len(data) % 16)
    e = OCipher(algorithms.SM4(key), modes.CBC(bytes(16))).encryptor()
    return (e.update(padded) + e.finalize())[-16:-12]


def gmssl_block(key, block, mode=SM4_ENCRYPT):
    g = CryptSM4(padding_mode=3)  # neither PKCS7 (0) nor ZERO (1): no padding
    g.set_key(key, mode)
    out = g.crypt_ecb(block)
    assert len(out) == 16
    return out


def cpython_results():
    c = sm4.Cipher(K)
    km = sm4.kdf(K, H("0100000000000000"))
    r1 = H("1122334455667788")
    r2 = H("a1b2c3d4")
    ks = sm4.encrypt(km, r1 + r2 + bytes(b ^ 0xFF for b in r2))
    kc = sm4.kdf(H("fedcba98765432100123456789abcdef"), H("8800000000000001"))
    rt = H("0102030405060708")
    ac = H("1027000002000000")
    return {
        "block": sm4.encrypt(K, K).hex(),
        "decrypt": c.decrypt(H(VECTORS["block"])).hex(),
        "km": km.hex(),
        "c1": sm4.encrypt(km, r1 + H("0100000000000000"))[:8].hex(),
        "ks": ks.hex(),
        "mac_empty": sm4.mac(ks, b"").hex(),
        "mac1": sm4.mac(ks, DI_TOPUP + ac).hex(),
        "mac2": sm4.mac(ks, DI_TOPUP + H("665544332211") + ac).hex(),
        "kc": kc.hex(),
        "int_auth": sm4.encrypt(kc, rt + bytes(b ^ 0xFF for b in rt))[:8].hex(),
        "sale_mac": sm4.mac(kc, H("02010000000000665544332211" "10270000" "02000000")).hex(),
        "wb_mac": sm4.mac(kc, H("11223344" "04d685001c"
                                "983a00000200000000990000000000301924112600000000")).hex(),
    }


def test_profile_vectors_cpython():
    assert sm4.use_fast(True) is False  # no viper under CPython
    assert cpython_results() == VECTORS


def test_dispersion_factor_meter_1():
    import bcd
    assert bcd.from_digits("000000000001") + b"\0\0" == H("0100000000000000")


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 31, 32, 33, 100])
def test_mac_padding_lengths_match_openssl(n):
    data = bytes((7 * i + 3) & 255 for i in range(n))
    assert sm4.mac(K, data) == ossl_mac(K, data)


def test_cipher_accepts_bytearray_and_memoryview():
    c = sm4.Cipher(bytearray(K))
    assert c.encrypt(memoryview(K)) == H(VECTORS["block"])
    assert c.mac(bytearray(b"abc")) == sm4.mac(K, b"abc")
    buf = bytearray(K)
    c.encrypt_into(buf, buf)
    assert buf == H(VECTORS["block"])


@pytest.mark.parametrize("call", [
    lambda: sm4.encrypt(K[:15], K),
    lambda: sm4.encrypt(K + b"\0", K),
    lambda: sm4.encrypt(K, K[:15]),
    lambda: sm4.encrypt(K, K + b"\0"),
    lambda: sm4.Cipher(b"").encrypt(K),
    lambda: sm4.Cipher(K).decrypt(b"\0" * 8),
    lambda: sm4.kdf(K, b"\0" * 7),
    lambda: sm4.kdf(K, b"\0" * 16),
    lambda: sm4.kdf(K[:8], b"\0" * 8),
    lambda: sm4.mac(K[:4], b""),
])
def test_wrong_lengths_raise_value_error(call):
    with pytest.raises(ValueError, match="must be"):
        call()


@pytest.mark.parametrize("src, dst", [(K[:8], bytearray(16)), (K, bytearray(8)),
                                      (K, bytes(16)), (K + K, bytearray(32))])
def test_encrypt_into_refuses_what_the_viper_code_would_overrun(src, dst):
    with pytest.raises(ValueError, match="16 bytes"):
        sm4.Cipher(K).encrypt_into(src, dst)


@pytest.mark.parametrize("call", [
    lambda: sm4.encrypt("0123456789abcdef", K),
    lambda: sm4.encrypt(K, list(K)),
    lambda: sm4.kdf(K, 12345678),
    lambda: sm4.mac(K, "text"),
    lambda: sm4.Cipher(None),
])
def test_wrong_types_raise_type_error(call):
    with pytest.raises(TypeError):
        call()


keys = st.binary(min_size=16, max_size=16)


@settings(max_examples=300, deadline=None)
@given(keys, keys)
def test_block_agrees_with_gmssl_and_openssl(key, block):
    ours = sm4.encrypt(key, block)
    assert ours == ossl_block(key, block)
    assert ours == gmssl_block(key, block)
    assert sm4.Cipher(key).decrypt(ours) == block
    assert gmssl_block(key, ours, SM4_DECRYPT) == block


@settings(max_examples=200, deadline=None)
@given(keys, st.binary(max_size=80))
def test_mac_agrees_with_openssl_cbc(key, data):
    assert sm4.mac(key, data) == ossl_mac(key, data)


@settings(max_examples=200, deadline=None)
@given(keys, st.binary(min_size=8, max_size=8))
def test_kdf_is_sm4_of_d_and_not_d(mk, d):
    assert sm4.kdf(mk, d) == ossl_block(mk, d + bytes(255 - b for b in d))


@pytest.mark.slow
def test_one_million_cpython():
    c = sm4.Cipher(K)
    b = bytearray(K)
    for _ in range(1000000):
        c.encrypt_into(b, b)
    assert b.hex() == ITER_1M


def test_profile_vectors_micropython_both_paths():
    out = run_mp_json("host_tests/mp/sm4_vectors.py", "0", heap="64k")
    assert out["fast"] is True, "the viper path did not load or failed its self-check"
    assert out["guards"] == ["refused"] * 3
    # the reason for the viper path: a block costs no heap (the plain one does)
    assert out["no_alloc"] == [True, False]
    for path in ("viper", "plain"):
        r = out[path]
        for extra, n in (("mac16", 16), ("mac17", 17), ("mac31", 31)):
            assert r.pop(extra) == ossl_mac(K, bytes(range(n))).hex(), (path, extra)
        assert r == VECTORS, path


def test_one_million_micropython_viper():
    out = run_mp_json("host_tests/mp/sm4_vectors.py", "1000000", heap="64k")
    assert out["viper"]["iter"] == ITER_1M


def test_ten_thousand_micropython_plain_matches_openssl_chain():
    out = run_mp_json("host_tests/mp/sm4_vectors.py", "10000", "plain", heap="64k")
    b = K
    for _ in range(10000):
        b = ossl_block(K, b)
    assert out["plain"]["iter"] == out["viper"]["iter"] == b.hex()


@pytest.mark.parametrize("arch", ["armv7emsp", "xtensawin", "x64"])
def test_viper_module_builds_for_boards(arch, tmp_path):
    # test_compile.py runs mpy-cross without -march; a viper module needs one.
    out = tmp_path / "sm4_viper.mpy"
    p = subprocess.run([MPY_CROSS, "-march=" + arch, "-o", str(out),
                        os.path.join(ROOT, "firmware", "sm4_viper.py")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_random_keys_micropython_both_paths_agree_with_openssl():
    import random
    rnd = random.Random(4)
    cases = [(rnd.randbytes(16), rnd.randbytes(16), rnd.randbytes(rnd.randrange(0, 50)))
             for _ in range(300)]
    stdin = "\n".join("%s %s %s" % (k.hex(), b.hex(), d.hex()) for k, b, d in cases) + "\n"
    from mp_runner import run_mp
    lines = run_mp("host_tests/mp/sm4_random.py", heap="64k", stdin=stdin).split()
    assert len(lines) == 6 * len(cases)
    for i, (k, b, d) in enumerate(cases):
        vb, pb, vd, pd, vm, pm = lines[6 * i:6 * i + 6]
        assert vb == pb == ossl_block(k, b).hex()
        dec = OCipher(algorithms.SM4(k), modes.ECB()).decryptor()
        assert vd == pd == (dec.update(b) + dec.finalize()).hex()
        assert vm == pm == ossl_mac(k, d).hex()


def test_bench_runs_and_reports_its_targets():
    import sys
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench_sm4.py"), "300"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "WARNING" not in out
    assert "top-up bus time at 2400 baud: 338 chars" in out
    assert out.count("target") == 2
