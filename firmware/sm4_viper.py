"""SM4 rounds in @micropython.viper: 32-bit words as machine words, so a
block costs no heap allocation on a 32-bit port. sm4.py imports this inside
try/except, checks it against the standard's vector and falls back to its
plain rounds if anything is off. MicroPython only (viper types do not exist
in CPython).

init(tab) once with sm4's 1024 T-table words (array 'I'), then
crypt(rk, src, dst): rk = 32 round keys (array 'I'), src/dst = 16-byte
buffers (may be the same).
"""
import sys

if sys.implementation.name != "micropython":
    raise ImportError("sm4_viper needs MicroPython")

import micropython

_tab = None


def init(tab):
    global _tab
    if len(tab) != 1024:
        raise ValueError("need 1024 T-table words")
    _tab = tab


@micropython.viper
def crypt(rk: ptr32, src: ptr8, dst: ptr8):
    tab = ptr32(_tab)
    x0 = (src[0] << 24) | (src[1] << 16) | (src[2] << 8) | src[3]
    x1 = (src[4] << 24) | (src[5] << 16) | (src[6] << 8) | src[7]
    x2 = (src[8] << 24) | (src[9] << 16) | (src[10] << 8) | src[11]
    x3 = (src[12] << 24) | (src[13] << 16) | (src[14] << 8) | src[15]
    i = 0
    while i < 32:
        # & 0xFF after every shift: a word may be sign-extended on a 32-bit
        # port or carry high bits on a 64-bit one; only bits 0..31 matter.
        t = x1 ^ x2 ^ x3 ^ rk[i]
        x0 ^= (tab[(t >> 24) & 0xFF] ^ tab[256 + ((t >> 16) & 0xFF)]
               ^ tab[512 + ((t >> 8) & 0xFF)] ^ tab[768 + (t & 0xFF)])
        t = x2 ^ x3 ^ x0 ^ rk[i + 1]
        x1 ^= (tab[(t >> 24) & 0xFF] ^ tab[256 + ((t >> 16) & 0xFF)]
               ^ tab[512 + ((t >> 8) & 0xFF)] ^ tab[768 + (t & 0xFF)])
        t = x3 ^ x0 ^ x1 ^ rk[i + 2]
        x2 ^= (tab[(t >> 24) & 0xFF] ^ tab[256 + ((t >> 16) & 0xFF)]
               ^ tab[512 + ((t >> 8) & 0xFF)] ^ tab[768 + (t & 0xFF)])
        t = x0 ^ x1 ^ x2 ^ rk[i + 3]
        x3 ^= (tab[(t >> 24) & 0xFF] ^ tab[256 + ((t >> 16) & 0xFF)]
               ^ tab[512 + ((t >> 8) & 0xFF)] ^ tab[768 + (t & 0xFF)])
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
