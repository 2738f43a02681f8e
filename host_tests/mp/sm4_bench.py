# Under MicroPython: SM4 per block and one top-up's crypto (KDF + C1 + K_s +
# 4 MACs, exactly what meter_security computes), viper and plain paths.
# argv: [blocks]. Last line: JSON {path: {"block_us": .., "topup_us": ..}}.
import json
import sys
import time

import sm4

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
K = bytes(range(16))
F = b"\x01\x00\x00\x00\x00\x00\x00\x00"
R1 = b"\x11" * 8
R2 = b"\xa1\xb2\xc3\xd4"
R3 = b"\x01\x02\x03\x04"
DI_RB = b"\xff\x02\x81\x07"
DI_TU = b"\xff\x02\x01\x07"
BAL = b"\x10\x27\x00\x00"
CNT = b"\x02\x00\x00\x00"
CUST = b"\x01\x00\x00\x00\x00\x10"


def topup():
    km = sm4.kdf(K, F)
    c = sm4.Cipher(km)
    c.encrypt(R1 + F)
    ks = sm4.Cipher(c.encrypt(R1 + R2 + bytes(b ^ 0xFF for b in R2)))
    ks.mac(R3 + DI_RB + BAL)
    ks.mac(R3 + DI_RB + CNT + CUST)
    ks.mac(DI_TU + BAL + CNT)
    ks.mac(DI_TU + CUST + BAL + CNT)


def measure():
    c = sm4.Cipher(K)
    b = bytearray(16)
    t = time.ticks_us()
    for _ in range(N):
        c.encrypt_into(b, b)
    block = time.ticks_diff(time.ticks_us(), t) / N
    m = max(1, N // 50)
    t = time.ticks_us()
    for _ in range(m):
        topup()
    return {"block_us": block, "topup_us": time.ticks_diff(time.ticks_us(), t) / m}


out = {"fast_loaded": sm4.use_fast(True)}
out["viper"] = measure()
sm4.use_fast(False)
out["plain"] = measure()
print(json.dumps(out))
