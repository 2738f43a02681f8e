# Under MicroPython: the profile's vectors through sm4 on the plain and the
# viper path. argv: [iterations for the x1,000,000 vector, 0 to skip].
# Last line: JSON {path: {name: hex}} plus "fast" (whether viper loaded).
import json
import sys

import micropython

import sm4

K = bytes.fromhex("0123456789abcdeffedcba9876543210")
F = bytes.fromhex("0100000000000000")
DI_TOPUP = (0x070102FF).to_bytes(4, "little")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 0


def run():
    r = {}
    r["block"] = sm4.encrypt(K, K).hex()
    c = sm4.Cipher(K)
    r["decrypt"] = c.decrypt(bytes.fromhex(r["block"])).hex()
    km = sm4.kdf(K, F)
    r["km"] = km.hex()
    r1 = bytes.fromhex("1122334455667788")
    r["c1"] = sm4.encrypt(km, r1 + F)[0:8].hex()
    r2 = bytes.fromhex("a1b2c3d4")
    ks = sm4.encrypt(km, r1 + r2 + bytes(b ^ 0xFF for b in r2))
    r["ks"] = ks.hex()
    r["mac_empty"] = sm4.mac(ks, b"").hex()
    amount_count = bytes.fromhex("1027000002000000")
    r["mac1"] = sm4.mac(ks, DI_TOPUP + amount_count).hex()
    r["mac2"] = sm4.mac(ks, DI_TOPUP + bytes.fromhex("665544332211") + amount_count).hex()
    kc = sm4.kdf(bytes.fromhex("fedcba98765432100123456789abcdef"),
                 bytes.fromhex("8800000000000001"))
    r["kc"] = kc.hex()
    rt = bytes.fromhex("0102030405060708")
    r["int_auth"] = sm4.encrypt(kc, rt + bytes(b ^ 0xFF for b in rt))[0:8].hex()
    r["sale_mac"] = sm4.mac(kc, bytes.fromhex(
        "02010000000000665544332211" "10270000" "02000000")).hex()
    r["wb_mac"] = sm4.mac(kc, bytes.fromhex(
        "11223344" "04d685001c" "983a00000200000000990000000000301924112600000000")).hex()
    # MAC over 16, 17 and 31 bytes: full-block and partial-block padding
    r["mac16"] = sm4.mac(K, bytes(range(16))).hex()
    r["mac17"] = sm4.mac(K, bytes(range(17))).hex()
    r["mac31"] = sm4.mac(K, bytes(range(31))).hex()
    if N:
        b = bytearray(K)
        for _ in range(N):
            c.encrypt_into(b, b)
        r["iter"] = bytes(b).hex()
    return r


def no_alloc():
    # heap locked: any allocation in encrypt_into raises MemoryError
    c = sm4.Cipher(K)
    b = bytearray(K)
    micropython.heap_lock()
    try:
        i = 0
        while i < 100:
            c.encrypt_into(b, b)
            i += 1
        ok = True
    except MemoryError:
        ok = False
    micropython.heap_unlock()
    return ok


out = {"fast": sm4.use_fast(True)}
out["no_alloc"] = [no_alloc()]
sm4.use_fast(False)
out["no_alloc"].append(no_alloc())
sm4.use_fast(True)
guards = []
for src, dst in ((K[0:8], bytearray(16)), (K, bytearray(8)), (K, bytes(16))):
    try:
        sm4.Cipher(K).encrypt_into(src, dst)
        guards.append("written")
    except ValueError:
        guards.append("refused")
out["guards"] = guards
out["viper"] = run()
sm4.use_fast(False)
out["plain"] = run() if N == 0 or len(sys.argv) > 2 else {}
print(json.dumps(out))
