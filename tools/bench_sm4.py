"""SM4 speed: the firmware's SM4 under MicroPython (viper fast path and
plain bytecode) and CPython, against gmssl (pure Python) and OpenSSL
(cryptography), per block and per top-up's crypto (KDF + C1 + K_s + 4 MACs),
and the top-up crypto as a share of the top-up's RS-485 time at 2400 baud.

    .venv/bin/python tools/bench_sm4.py [blocks]

Host figures: a microcontroller is one to two orders of magnitude slower
than this machine, so read the ratios, not the microseconds.
"""
import json
import os
import subprocess
import sys
import time

import hostpath
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from gmssl.sm4 import SM4_ENCRYPT, CryptSM4

import sm4

ROOT = hostpath.ROOT

MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
BAUD = 2400
BITS = 11  # 8E1 plus start and stop
REPLY_DELAY_MS = 20
PREAMBLE = 4
OVERHEAD = 12  # 68 A0..A5 68 C L .. CS 16

# Data field lengths of one top-up's exchanges (request, reply), control 03:
# every request is DI(4) + operator(4) + payload, every good reply DI(4) + data.
EXCHANGES = (
    ("identity auth 070000FF", 8 + 24, 4 + 12),
    ("read-back 078102FF", 8 + 4, 4 + 26),
    ("top-up 070102FF", 8 + 22, 4),
    ("read-back 078102FF", 8 + 4, 4 + 26),
    ("end session 070002FF", 8, 4),
)


def bus_ms():
    chars = sum(2 * (PREAMBLE + OVERHEAD) + q + r for _, q, r in EXCHANGES)
    return chars * BITS * 1000.0 / BAUD + REPLY_DELAY_MS * len(EXCHANGES), chars


def per_call_us(fn, n):
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) * 1e6 / n


def topup_with(block_fn_for):
    """The top-up's crypto built on another SM4 (key -> block function)."""
    k = bytes(range(16))
    f = b"\x01" + bytes(7)
    r1, r2, r3 = b"\x11" * 8, b"\xa1\xb2\xc3\xd4", b"\x01\x02\x03\x04"
    di_rb, di_tu = b"\xff\x02\x81\x07", b"\xff\x02\x01\x07"
    bal, cnt, cust = b"\x10\x27\x00\x00", b"\x02\x00\x00\x00", b"\x01\x00\x00\x00\x00\x10"

    def mac(enc, data):
        data = data + b"\x80" + bytes(15 - len(data) % 16)
        c = bytes(16)
        for i in range(0, len(data), 16):
            c = enc(bytes(a ^ b for a, b in zip(c, data[i:i + 16])))
        return c[:4]

    def run():
        km = block_fn_for(k)(f + bytes(b ^ 0xFF for b in f))
        e = block_fn_for(km)
        e(r1 + f)
        ks = block_fn_for(e(r1 + r2 + bytes(b ^ 0xFF for b in r2)))
        mac(ks, r3 + di_rb + bal)
        mac(ks, r3 + di_rb + cnt + cust)
        mac(ks, di_tu + bal + cnt)
        mac(ks, di_tu + cust + bal + cnt)
    return run


def gmssl_for(key):
    g = CryptSM4(padding_mode=3)  # 3: neither PKCS7 nor zero padding
    g.set_key(key, SM4_ENCRYPT)
    return g.crypt_ecb


def openssl_for(key):
    e = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return e.update


def firmware_topup():
    # exactly the calls meter_security makes
    k = bytes(range(16))
    f = b"\x01" + bytes(7)
    r1, r2 = b"\x11" * 8, b"\xa1\xb2\xc3\xd4"
    c = sm4.Cipher(sm4.kdf(k, f))
    c.encrypt(r1 + f)
    ks = sm4.Cipher(c.encrypt(r1 + r2 + bytes(b ^ 0xFF for b in r2)))
    ks.mac(b"\x01\x02\x03\x04\xff\x02\x81\x07\x10\x27\x00\x00")
    ks.mac(b"\x01\x02\x03\x04\xff\x02\x81\x07\x02\x00\x00\x00\x01\x00\x00\x00\x00\x10")
    ks.mac(b"\xff\x02\x01\x07\x10\x27\x00\x00\x02\x00\x00\x00")
    ks.mac(b"\xff\x02\x01\x07\x01\x00\x00\x00\x00\x10\x10\x27\x00\x00\x02\x00\x00\x00")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    env = dict(os.environ, MICROPYPATH=hostpath.micropypath())
    mp = json.loads(subprocess.run(
        [MICROPYTHON, "-X", "heapsize=64k", os.path.join(ROOT, "host_tests", "mp", "sm4_bench.py"),
         str(n)], capture_output=True, text=True, env=env, check=True).stdout.splitlines()[-1])
    if not mp["fast_loaded"]:
        print("WARNING: the viper path did not load under micropython")
    k = bytes(range(16))
    c = sm4.Cipher(k)
    buf = bytearray(16)
    g = gmssl_for(k)
    o = openssl_for(k)
    blk = bytes(16)
    rows = [
        ("firmware sm4, micropython viper", mp["viper"]["block_us"], mp["viper"]["topup_us"]),
        ("firmware sm4, micropython bytecode", mp["plain"]["block_us"], mp["plain"]["topup_us"]),
        ("firmware sm4, CPython", per_call_us(lambda: c.encrypt_into(buf, buf), n),
         per_call_us(firmware_topup, max(1, n // 20))),
        ("gmssl 3.2.2 (pure Python), CPython", per_call_us(lambda: g(blk), max(1, n // 4)),
         per_call_us(topup_with(gmssl_for), max(1, n // 100))),
        ("OpenSSL (cryptography), CPython", per_call_us(lambda: o(blk), n),
         per_call_us(topup_with(openssl_for), max(1, n // 20))),
    ]
    gm_block, gm_topup = rows[3][1], rows[3][2]
    os_block, os_topup = rows[4][1], rows[4][2]
    total_ms, chars = bus_ms()
    print("SM4 per block and per top-up's crypto (KDF + C1 + K_s + 4 MACs), %d blocks" % n)
    print("%-38s %9s %11s   %s" % ("", "us/block", "us/top-up",
                                   "time ratio vs gmssl, vs OpenSSL (block; top-up)"))
    for name, b, t in rows:
        print("%-38s %9.2f %11.1f   %6.3fx %6.2fx ; %6.3fx %6.2fx"
              % (name, b, t, b / gm_block, b / os_block, t / gm_topup, t / os_topup))
    print("viper speed-up over bytecode under micropython: %.1fx per block, %.1fx per top-up"
          % (rows[1][1] / rows[0][1], rows[1][2] / rows[0][2]))
    print("top-up bus time at %d baud: %d chars (5 exchanges, %d FE each way) x %d bits"
          " + %d x %d ms reply delay = %.1f ms"
          % (BAUD, chars, PREAMBLE, BITS, len(EXCHANGES), REPLY_DELAY_MS, total_ms))
    for name, b, t in rows:
        print("%-38s top-up crypto = %.4f %% of bus time" % (name, t / 10.0 / total_ms))
    v = rows[0]
    print("target fast path within 3x of gmssl per block: %.3fx -> %s"
          % (v[1] / gm_block, "met" if v[1] <= 3 * gm_block else "MISSED"))
    print("target top-up crypto under 2 %% of bus time (viper): %.4f %% -> %s"
          % (v[2] / 10.0 / total_ms, "met" if v[2] / 10.0 / total_ms < 2 else "MISSED"))


if __name__ == "__main__":
    main()
