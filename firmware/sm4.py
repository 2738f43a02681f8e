"""SM4 (GB/T 32907-2016) and the security profile's two primitives on it.

    encrypt(key16, block16) -> 16 bytes      one block, key schedule per call
    kdf(master16, d8)       -> 16 bytes      SM4(MK, D || ~D), the dispersion KDF
    mac(key16, data)        -> 4 bytes       CBC-MAC, IV 0, pad 80 00.., first 4 bytes
    Cipher(key16)           .encrypt/.decrypt/.mac with the key schedule done once

Runs unchanged under CPython and MicroPython. The rounds use four 256-word
"T tables" (S-box followed by the linear map L), built once at import
(4 KB). On MicroPython the key schedule and the rounds run in sm4_viper
(native 32-bit words: on a 32-bit port a 32-bit value is not a small int,
so plain bytecode allocates on every XOR); it is used only if it loads and
reproduces the standard's vector, else the plain path below gives the same
answers, slower.

Nothing in here prints or logs a key or an intermediate value.
"""
from array import array
from micropython import const

_MASK = const(0xFFFFFFFF)

# The standard's S-box. Derived here as A.inv(A.x + C) + C over GF(2^8) mod
# x^8+x^7+x^6+x^5+x^4+x^2+1 (A circulant 0xA7, C = 0xD3) and checked against
# the published table and the standard's vector (host_tests/test_sm4.py).
_SBOX = (
    b"\xd6\x90\xe9\xfe\xcc\xe1\x3d\xb7\x16\xb6\x14\xc2\x28\xfb\x2c\x05"
    b"\x2b\x67\x9a\x76\x2a\xbe\x04\xc3\xaa\x44\x13\x26\x49\x86\x06\x99"
    b"\x9c\x42\x50\xf4\x91\xef\x98\x7a\x33\x54\x0b\x43\xed\xcf\xac\x62"
    b"\xe4\xb3\x1c\xa9\xc9\x08\xe8\x95\x80\xdf\x94\xfa\x75\x8f\x3f\xa6"
    b"\x47\x07\xa7\xfc\xf3\x73\x17\xba\x83\x59\x3c\x19\xe6\x85\x4f\xa8"
    b"\x68\x6b\x81\xb2\x71\x64\xda\x8b\xf8\xeb\x0f\x4b\x70\x56\x9d\x35"
    b"\x1e\x24\x0e\x5e\x63\x58\xd1\xa2\x25\x22\x7c\x3b\x01\x21\x78\x87"
    b"\xd4\x00\x46\x57\x9f\xd3\x27\x52\x4c\x36\x02\xe7\xa0\xc4\xc8\x9e"
    b"\xea\xbf\x8a\xd2\x40\xc7\x38\xb5\xa3\xf7\xf2\xce\xf9\x61\x15\xa1"
    b"\xe0\xae\x5d\xa4\x9b\x34\x1a\x55\xad\x93\x32\x30\xf5\x8c\xb1\xe3"
    b"\x1d\xf6\xe2\x2e\x82\x66\xca\x60\xc0\x29\x23\xab\x0d\x53\x4e\x6f"
    b"\xd5\xdb\x37\x45\xde\xfd\x8e\x2f\x03\xff\x6a\x72\x6d\x6c\x5b\x51"
    b"\x8d\x1b\xaf\x92\xbb\xdd\xbc\x7f\x11\xd9\x5c\x41\x1f\x10\x5a\xd8"
    b"\x0a\xc1\x31\x88\xa5\xcd\x7b\xbd\x2d\x74\xd0\x12\xb8\xe5\xb4\xb0"
    b"\x89\x69\x97\x4a\x0c\x96\x77\x7e\x65\xb9\xf1\x09\xc5\x6e\xc6\x84"
    b"\x18\xf0\x7d\xec\x3a\xdc\x4d\x20\x79\xee\x5f\x3e\xd7\xcb\x39\x48"
)
_FK = (0xA3B1BAC6, 0x56AA3350, 0x677D9197, 0xB27022DC)


def _rotl(x, n):
    return ((x << n) | (x >> (32 - n))) & _MASK


def _tau(x):
    s = _SBOX
    return s[x >> 24] << 24 | s[(x >> 16) & 255] << 16 | s[(x >> 8) & 255] << 8 | s[x & 255]


def _make_tables():
    # T_k[b] = L(S(b) << (24 - 8k)); L commutes with rotation, so the four
    # tables are rotations of the first. 4 KB as arrays of 32-bit words.
    t = [array("I", range(256)) for _ in range(4)]
    for b in range(256):
        v = _SBOX[b] << 24
        v ^= _rotl(v, 2) ^ _rotl(v, 10) ^ _rotl(v, 18) ^ _rotl(v, 24)
        t[0][b] = v
        t[1][b] = _rotl(v, 24)
        t[2][b] = _rotl(v, 16)
        t[3][b] = _rotl(v, 8)
    return t


_T0, _T1, _T2, _T3 = _make_tables()


def _check(buf, n, what):
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise TypeError(what + " must be bytes")
    if n is not None and len(buf) != n:
        raise ValueError("%s must be %d bytes, got %d" % (what, n, len(buf)))


def _schedule_plain(key):
    k0 = int.from_bytes(key[0:4], "big") ^ _FK[0]
    k1 = int.from_bytes(key[4:8], "big") ^ _FK[1]
    k2 = int.from_bytes(key[8:12], "big") ^ _FK[2]
    k3 = int.from_bytes(key[12:16], "big") ^ _FK[3]
    rk = array("I", [0] * 32)
    for i in range(32):
        # CK[i] bytes are (4i + j) * 7 mod 256, j = 0..3
        c = 28 * i
        ck = (c & 255) << 24 | ((c + 7) & 255) << 16 | ((c + 14) & 255) << 8 | ((c + 21) & 255)
        b = _tau(k1 ^ k2 ^ k3 ^ ck)
        k0 ^= b ^ _rotl(b, 13) ^ _rotl(b, 23)
        rk[i] = k0
        k0, k1, k2, k3 = k1, k2, k3, k0
    return rk


def _crypt_plain(rk, src, dst):
    t0 = _T0
    t1 = _T1
    t2 = _T2
    t3 = _T3
    x0 = int.from_bytes(src[0:4], "big")
    x1 = int.from_bytes(src[4:8], "big")
    x2 = int.from_bytes(src[8:12], "big")
    x3 = int.from_bytes(src[12:16], "big")
    for i in range(0, 32, 4):
        t = x1 ^ x2 ^ x3 ^ rk[i]
        x0 ^= t0[t >> 24] ^ t1[(t >> 16) & 255] ^ t2[(t >> 8) & 255] ^ t3[t & 255]
        t = x2 ^ x3 ^ x0 ^ rk[i + 1]
        x1 ^= t0[t >> 24] ^ t1[(t >> 16) & 255] ^ t2[(t >> 8) & 255] ^ t3[t & 255]
        t = x3 ^ x0 ^ x1 ^ rk[i + 2]
        x2 ^= t0[t >> 24] ^ t1[(t >> 16) & 255] ^ t2[(t >> 8) & 255] ^ t3[t & 255]
        t = x0 ^ x1 ^ x2 ^ rk[i + 3]
        x3 ^= t0[t >> 24] ^ t1[(t >> 16) & 255] ^ t2[(t >> 8) & 255] ^ t3[t & 255]
    dst[0:4] = x3.to_bytes(4, "big")
    dst[4:8] = x2.to_bytes(4, "big")
    dst[8:12] = x1.to_bytes(4, "big")
    dst[12:16] = x0.to_bytes(4, "big")


_RK0 = array("I", [0] * 32)


def _schedule_viper(key):
    rk = array("I", _RK0)
    _schedule_fast(key, rk)
    return rk


def _fkck():
    w = list(_FK)
    for i in range(32):
        # CK[i] bytes are (4i + j) * 7 mod 256, j = 0..3
        c = 28 * i
        w.append((c & 255) << 24 | ((c + 7) & 255) << 16
                 | ((c + 14) & 255) << 8 | ((c + 21) & 255))
    return array("I", w)


try:
    import sm4_viper

    sm4_viper.init(_T0, _T1, _T2, _T3, _SBOX, _fkck())
    _crypt_fast = sm4_viper.crypt
    _schedule_fast = sm4_viper.schedule
except Exception:  # CPython, or a port built without the viper emitter
    _crypt_fast = None
_crypt = _crypt_plain
_schedule = _schedule_plain


def use_fast(on=True):
    """Select the viper code (if it loaded and passed the self-check) or
    the plain code; returns True if the fast path is now in use."""
    global _crypt, _schedule
    fast = on and _crypt_fast is not None
    _crypt = _crypt_fast if fast else _crypt_plain
    _schedule = _schedule_viper if fast else _schedule_plain
    return fast


class Cipher:
    """One key, schedule computed once. Blocks are 16 bytes (bytes,
    bytearray or memoryview); results are new bytes objects."""

    def __init__(self, key16):
        _check(key16, 16, "SM4 key")
        self._rk = _schedule(key16)
        self._rkd = None
        self._out = bytearray(16)

    def encrypt(self, block16):
        _check(block16, 16, "SM4 block")
        _crypt(self._rk, block16, self._out)
        return bytes(self._out)

    def encrypt_into(self, src16, dst16):
        """Encrypt src16 into the 16-byte bytearray dst16 (may be the same
        buffer): no allocation, for loops and benchmarks."""
        # checked even here: the viper code would write past a short buffer
        if len(src16) != 16 or len(dst16) != 16 or type(dst16) is not bytearray:
            raise ValueError("encrypt_into: blocks must be 16 bytes, output a bytearray")
        _crypt(self._rk, src16, dst16)

    def decrypt(self, block16):
        _check(block16, 16, "SM4 block")
        if self._rkd is None:
            self._rkd = array("I", reversed(self._rk))
        _crypt(self._rkd, block16, self._out)
        return bytes(self._out)

    def mac(self, data):
        """Profile MAC: SM4-CBC-MAC, IV 0, data padded 80 00.. (always), first 4 bytes."""
        _check(data, None, "MAC data")
        n = len(data)
        full = n - n % 16
        acc = bytearray(16)
        out = self._out
        for off in range(0, full, 16):
            for j in range(16):
                acc[j] ^= data[off + j]
            _crypt(self._rk, acc, acc)
        tail = n - full
        for j in range(tail):
            acc[j] ^= data[full + j]
        acc[tail] ^= 0x80
        _crypt(self._rk, acc, out)
        return bytes(out[0:4])


def encrypt(key16, block16):
    return Cipher(key16).encrypt(block16)


def kdf(master16, d8):
    """Dispersion KDF: SM4(MK, D || ~D), D 8 bytes."""
    _check(d8, 8, "dispersion factor")
    return Cipher(master16).encrypt(bytes(d8) + bytes(b ^ 0xFF for b in d8))


def mac(key16, data):
    return Cipher(key16).mac(data)


# Self-check the fast path on the standard's vector before trusting it.
if _crypt_fast is not None:
    _k = b"\x01\x23\x45\x67\x89\xab\xcd\xef\xfe\xdc\xba\x98\x76\x54\x32\x10"
    _o = bytearray(16)
    _rk = None
    try:
        _rk = _schedule_viper(_k)
        if _rk != _schedule_plain(_k):
            raise ValueError
        _crypt_fast(_rk, _k, _o)
    except Exception:
        _o = None
    if _o != b"\x68\x1e\xdf\x34\xd2\x06\x96\x5e\x86\xb3\xe9\x4f\x53\x6e\x42\x46":
        _crypt_fast = None
    del _k, _o, _rk
use_fast(True)
