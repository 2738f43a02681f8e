"""A user card as the security profile describes it: files, the key K_c it
never reveals, internal authenticate, secure-messaging writes with one-use
challenges, status words. APDU in, response APDU out; the T=0 and PC/SC
faces live in card_sim.py.

Host-side crypto is OpenSSL's SM4 through `cryptography`, independent of the
firmware's SM4. Importable by the venv Python and by Debian's /usr/bin/python3
(only `cryptography` is needed; the file layouts come from card_files.py).
"""
import os

import hostpath  # noqa: F401

import card_files as cf  # noqa: E402
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402

SW_OK = b"\x90\x00"
SW_FILE_NOT_FOUND = b"\x6a\x82"
SW_SECURITY = b"\x69\x82"
SW_MAC = b"\x69\x88"
SW_UNISSUED = b"\x6b\x00"
SW_UNKNOWN_INS = b"\x6d\x00"
SW_WRONG_LENGTH = b"\x67\x00"
SW_WRONG_P1P2 = b"\x6a\x86"
SW_CLA = b"\x6e\x00"

# A plain T=0 ATR: TS 3B, T0 with TC1/TD1... kept minimal: direct convention,
# no interface bytes, 6 historical bytes "PPCARD".
ATR = bytes.fromhex("3b06") + b"PPCARD"
# The slowest legal T=0 card: TD1 = 40 announces TC2 = FF, WI 255, a work
# waiting time of 960 x 255 etu = 25.5 s per character at 9600 baud.
ATR_WI_255 = bytes.fromhex("3b8640ff") + b"PPCARD"

_SIZES = {cf.SFI_PARAM: cf.PARAM_LEN, cf.SFI_PURSE: cf.PURSE_LEN,
          cf.SFI_SERIAL: cf.SERIAL_LEN, cf.SFI_RETURN: cf.RETURN_LEN}
_WRITABLE = (cf.SFI_PARAM, cf.SFI_PURSE, cf.SFI_RETURN)


def sm4_block(key, block):
    enc = Cipher(algorithms.SM4(bytes(key)), modes.ECB()).encryptor()
    return enc.update(bytes(block)) + enc.finalize()


def kdf(master, d8):
    return sm4_block(master, bytes(d8) + bytes(b ^ 0xFF for b in d8))


def mac(key, data):
    data = bytes(data) + b"\x80"
    data += bytes(-len(data) % 16)
    enc = Cipher(algorithms.SM4(bytes(key)), modes.CBC(bytes(16))).encryptor()
    return (enc.update(data) + enc.finalize())[-16:-12]


class Card:
    """One user card. `key` is K_c; `files` maps SFI -> bytes. A card whose
    parameter file was never written is unissued and answers 6B00."""

    def __init__(self, serial, key, files=None, atr=ATR):
        self.serial = bytes(serial)
        self._key = bytes(key)
        self.atr = bytes(atr)
        self.files = {cf.SFI_SERIAL: self.serial}
        self.files.update(files or {})
        self._selected = False
        self._challenge = None
        self._pending = b""  # data waiting for GET RESPONSE
        self.log = []  # command headers seen, for tests
        self.refuse_mac = False  # fault: answer 6988 to every secure write

    # -- construction helpers (what the sales office would do) --
    @classmethod
    def issued(cls, mk_c, serial, card_type, meter, customer, amount, count, key=None):
        serial = bytes(serial)
        kc = kdf(mk_c, serial)
        param = cf.pack_param(card_type, meter, customer)
        if card_type == cf.TECHNICIAN:  # no sale on it: the purse is all zeros
            purse = bytes(cf.PURSE_LEN)
        else:
            purse = cf.pack_purse(amount, count, mac(kc, cf.sale_mac_input(param, amount, count)))
        return cls(serial, key or kc, {cf.SFI_PARAM: param, cf.SFI_PURSE: purse,
                                       cf.SFI_RETURN: bytes(cf.RETURN_LEN)})

    @classmethod
    def blank(cls, mk_c, serial):
        return cls(serial, kdf(mk_c, serial))

    def is_issued(self):
        return cf.SFI_PARAM in self.files

    def power_up(self):
        self._selected = False
        self._challenge = None
        self._pending = b""
        return self.atr

    # -- APDU level --
    def apdu(self, cmd):
        """A short command APDU -> data || SW (T=0 habits: case 4 answers 61xx)."""
        cmd = bytes(cmd)
        if len(cmd) < 4:
            return SW_WRONG_LENGTH
        self.log.append(cmd[:5])
        cla, ins, p1, p2 = cmd[0], cmd[1], cmd[2], cmd[3]
        p3 = cmd[4] if len(cmd) > 4 else 0
        data = cmd[5:5 + p3] if len(cmd) > 5 else b""
        if ins != 0xC0:
            self._pending = b""
        if ins == 0xA4 and cla == 0:
            return self._select(data)
        if ins == 0xB0 and cla == 0:
            return self._read(p1, p3)
        if ins == 0x84 and cla == 0:
            return self._get_challenge(p3)
        if ins == 0x88 and cla == 0:
            return self._internal_auth(p2, data)
        if ins == 0xC0 and cla == 0:
            return self._get_response(p3)
        if ins == 0xD6:
            return self._update(cmd[:5], p1, data, cla)
        if cla not in (0, 4):
            return SW_CLA
        return SW_UNKNOWN_INS

    def expected_in(self, ins):
        """T=0: does this instruction carry data to the card (P3 = Lc)?"""
        return ins in (0xA4, 0x88, 0xD6)

    def _select(self, data):
        if data != b"\xdf\x01":
            return SW_FILE_NOT_FOUND
        self._selected = True
        return SW_OK

    def _read(self, p1, le):
        if not p1 & 0x80:
            return SW_WRONG_P1P2
        sfi = p1 & 0x1F
        if not self._selected or sfi not in _SIZES:
            return SW_FILE_NOT_FOUND
        if sfi != cf.SFI_SERIAL and not self.is_issued():
            return SW_UNISSUED
        body = self.files.get(sfi, bytes(_SIZES[sfi]))
        if (le or 256) != len(body):
            return bytes((0x6C, len(body)))
        return body + SW_OK

    def _get_challenge(self, le):
        if le != 4:
            return b"\x6c\x04"
        self._challenge = os.urandom(4)
        return self._challenge + SW_OK

    def _internal_auth(self, p2, rt):
        if len(rt) != 8:
            return SW_WRONG_LENGTH
        self._pending = sm4_block(self._key, rt + bytes(b ^ 0xFF for b in rt))[:8]
        return b"\x61\x08"

    def _get_response(self, le):
        body, self._pending = self._pending, b""
        if not body:
            return b"\x6f\x00"
        if (le or 256) != len(body):
            self._pending = body
            return bytes((0x6C, len(body)))
        return body + SW_OK

    def _update(self, hdr, p1, data, cla):
        # Secure messaging only: no plain writes on this card.
        rc, self._challenge = self._challenge, None  # one use, even on failure
        if cla != 4:
            return SW_SECURITY
        sfi = p1 & 0x1F
        if not p1 & 0x80 or sfi not in _WRITABLE or not self._selected:
            return SW_FILE_NOT_FOUND
        if len(data) != _SIZES[sfi] + 4:
            return SW_WRONG_LENGTH
        if sfi == cf.SFI_RETURN and not self.is_issued():
            return SW_UNISSUED
        body, m = data[:-4], data[-4:]
        if rc is None or self.refuse_mac or mac(self._key, rc + hdr + body) != m:
            return SW_MAC
        self.files[sfi] = body  # one assignment: the write is atomic
        return SW_OK

    # -- persistence for the CLI --
    def to_json(self):
        return {"serial": self.serial.hex(), "key": self._key.hex(), "atr": self.atr.hex(),
                "files": {str(k): v.hex() for k, v in self.files.items()}}

    @classmethod
    def from_json(cls, d):
        files = {int(k): bytes.fromhex(v) for k, v in d.get("files", {}).items()}
        return cls(bytes.fromhex(d["serial"]), bytes.fromhex(d["key"]), files,
                   bytes.fromhex(d.get("atr", ATR.hex())))
