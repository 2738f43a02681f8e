"""SM4 rounds in @micropython.viper: 32-bit words as machine words, so a
block costs no heap allocation on a 32-bit port. sm4.py imports this inside
try/except, checks it against the standard's vector and falls back to its
plain rounds if anything is off. MicroPython only (viper types do not exist
in CPython).

init(t0, t1, t2, t3, sbox, fkck) once with sm4's four 256-word T tables
(arrays 'I'),
its S-box (bytes) and FK[0..3] + CK[0..31] (array 'I'), then
crypt(rk, src, dst): rk = 32 round keys (array 'I'), src/dst = 16-byte
buffers (may be the same); schedule(key, rk): the 32 round keys of key.
"""
import sys

if sys.implementation.name != "micropython":
    raise ImportError("sm4_viper needs MicroPython")

import micropython

_t0 = _t1 = _t2 = _t3 = _sbox = _fkck = None


def init(t0, t1, t2, t3, sbox, fkck):
    global _t0, _t1, _t2, _t3, _sbox, _fkck
    for t in (t0, t1, t2, t3):
        if len(t) != 256:
            raise ValueError("a T table has 256 words")
    if len(sbox) != 256 or len(fkck) != 36:
        raise ValueError("need 256 S-box bytes and 36 FK/CK words")
    _t0, _t1, _t2, _t3, _sbox, _fkck = t0, t1, t2, t3, sbox, fkck


@micropython.viper
def schedule(key: ptr8, rk: ptr32):
    s = ptr8(_sbox)
    c = ptr32(_fkck)
    k0 = uint((key[0] << 24) | (key[1] << 16) | (key[2] << 8) | key[3]) ^ uint(c[0])
    k1 = uint((key[4] << 24) | (key[5] << 16) | (key[6] << 8) | key[7]) ^ uint(c[1])
    k2 = uint((key[8] << 24) | (key[9] << 16) | (key[10] << 8) | key[11]) ^ uint(c[2])
    k3 = uint((key[12] << 24) | (key[13] << 16) | (key[14] << 8) | key[15]) ^ uint(c[3])
    i = 0
    while i < 32:
        t = k1 ^ k2 ^ k3 ^ uint(c[4 + i])
        # b is built from S-box bytes, so it has no bits above 31 and the
        # right shifts below are clean on 64-bit ports too
        b = uint((s[(t >> 24) & 0xFF] << 24) | (s[(t >> 16) & 0xFF] << 16)
                 | (s[(t >> 8) & 0xFF] << 8) | s[t & 0xFF])
        k0 = k0 ^ b ^ ((b << 13) | (b >> 19)) ^ ((b << 23) | (b >> 9))
        rk[i] = k0  # the store keeps bits 0..31
        k0 = k1
        k1 = k2
        k2 = k3
        k3 = uint(rk[i])
        i += 1


@micropython.viper
def crypt(rk: ptr32, src: ptr8, dst: ptr8):
    t0 = ptr32(_t0)
    t1 = ptr32(_t1)
    t2 = ptr32(_t2)
    t3 = ptr32(_t3)
    x0 = (src[0] << 24) | (src[1] << 16) | (src[2] << 8) | src[3]
    x1 = (src[4] << 24) | (src[5] << 16) | (src[6] << 8) | src[7]
    x2 = (src[8] << 24) | (src[9] << 16) | (src[10] << 8) | src[11]
    x3 = (src[12] << 24) | (src[13] << 16) | (src[14] << 8) | src[15]
    i = 0
    while i < 32:
        # & 0xFF after every shift: a word may be sign-extended on a 32-bit
        # port or carry high bits on a 64-bit one; only bits 0..31 matter.
        t = x1 ^ x2 ^ x3 ^ rk[i]
        x0 ^= (t0[(t >> 24) & 0xFF] ^ t1[(t >> 16) & 0xFF]
               ^ t2[(t >> 8) & 0xFF] ^ t3[t & 0xFF])
        t = x2 ^ x3 ^ x0 ^ rk[i + 1]
        x1 ^= (t0[(t >> 24) & 0xFF] ^ t1[(t >> 16) & 0xFF]
               ^ t2[(t >> 8) & 0xFF] ^ t3[t & 0xFF])
        t = x3 ^ x0 ^ x1 ^ rk[i + 2]
        x2 ^= (t0[(t >> 24) & 0xFF] ^ t1[(t >> 16) & 0xFF]
               ^ t2[(t >> 8) & 0xFF] ^ t3[t & 0xFF])
        t = x0 ^ x1 ^ x2 ^ rk[i + 3]
        x3 ^= (t0[(t >> 24) & 0xFF] ^ t1[(t >> 16) & 0xFF]
               ^ t2[(t >> 8) & 0xFF] ^ t3[t & 0xFF])
        i += 4
    dst[0] = x3 >> 24
    dst[1] = x3 >> 16
    dst[2] = x3 >> 8
    dst[3] = x3
    dst[4] = x2 >> 24
    dst[5] = x2 >> 16
    dst[6] = x2 >> 8
    dst[7] = x2
    dst[8] = x1 >> 24
    dst[9] = x1 >> 16
    dst[10] = x1 >> 8
    dst[11] = x1
    dst[12] = x0 >> 24
    dst[13] = x0 >> 16
    dst[14] = x0 >> 8
    dst[15] = x0
