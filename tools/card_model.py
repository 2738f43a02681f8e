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
SW_PIN_BLOCKED = b"\x69\x83"
SW_NO_PIN = b"\x6a\x88"  # referenced data (the PIN) not found

PIN_TRIES = 3  # wrong PINs before a technician card blocks itself

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
        # A technician card's PIN (6 ASCII digits) and the tries left; the
        # card checks it itself (VERIFY) and blocks after PIN_TRIES wrong ones.
        self.pin = None
        self.pin_tries = PIN_TRIES

    # -- construction helpers (what the sales office would do) --
    @classmethod
    def issued(cls, mk_c, serial, card_type, meter, customer, amount, count, key=None,
               pin=None):
        serial = bytes(serial)
        kc = kdf(mk_c, serial)
        param = cf.pack_param(card_type, meter, customer)
        if card_type == cf.TECHNICIAN:  # no sale on it: the purse is all zeros
            purse = bytes(cf.PURSE_LEN)
        else:
            purse = cf.pack_purse(amount, count, mac(kc, cf.sale_mac_input(param, amount, count)))
        card = cls(serial, key or kc, {cf.SFI_PARAM: param, cf.SFI_PURSE: purse,
                                       cf.SFI_RETURN: bytes(cf.RETURN_LEN)})
        if pin is not None:
            card.set_pin(pin)
        return card

    @classmethod
    def technician(cls, mk_c, serial, tech_id, pin, key=None):
        """A technician card: type 04, meter 000000000000, the technician's
        12-digit id in the customer field, an all-zero purse, a PIN."""
        return cls.issued(mk_c, serial, cf.TECHNICIAN, "000000000000", tech_id, 0, 0,
                          key=key, pin=pin)

    def set_pin(self, pin):
        """The office sets (or unblocks with) a new PIN: 6 digits."""
        pin = pin.encode() if isinstance(pin, str) else bytes(pin)
        if len(pin) != 6 or not pin.isdigit():
            raise ValueError("a PIN is 6 digits")
        self.pin = pin
        self.pin_tries = PIN_TRIES

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
        if ins == 0x20 and cla == 0:
            return self._verify(p2, data)
        if ins == 0x2C and cla == 4:
            return self._reset_pin(cmd[:5], p2, data)
        if cla not in (0, 4):
            return SW_CLA
        return SW_UNKNOWN_INS

    def expected_in(self, ins):
        """T=0: does this instruction carry data to the card (P3 = Lc)?"""
        return ins in (0xA4, 0x88, 0xD6, 0x20, 0x2C)

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

    def _verify(self, p2, pin):
        """VERIFY 00 20 00 01 06 PIN: 9000, 63Cx (x tries left), 6983 blocked."""
        if p2 != 1:
            return SW_WRONG_P1P2
        if self.pin is None:
            return SW_NO_PIN
        if self.pin_tries <= 0:
            return SW_PIN_BLOCKED
        if len(pin) != 6:
            return SW_WRONG_LENGTH
        if pin != self.pin:
            self.pin_tries -= 1
            return bytes((0x63, 0xC0 | self.pin_tries))
        self.pin_tries = PIN_TRIES
        return SW_OK

    def _reset_pin(self, hdr, p2, data):
        """The office's RESET RETRY COUNTER with a new PIN, under secure
        messaging (our extension of the profile, like the file writes):
        GET CHALLENGE, then 04 2C 00 01 0A PIN(6) M(4), M = MAC(K_c, RC ||
        header || PIN). Sets the PIN and its tries; unblocks a blocked card."""
        rc, self._challenge = self._challenge, None
        if p2 != 1:
            return SW_WRONG_P1P2
        if len(data) != 10:
            return SW_WRONG_LENGTH
        pin, m = data[:6], data[6:]
        if rc is None or mac(self._key, rc + hdr + pin) != m:
            return SW_MAC
        if not pin.isdigit():
            return SW_WRONG_P1P2
        self.pin, self.pin_tries = bytes(pin), PIN_TRIES
        return SW_OK

    # -- persistence for the CLI --
    def to_json(self):
        d = {"serial": self.serial.hex(), "key": self._key.hex(), "atr": self.atr.hex(),
             "files": {str(k): v.hex() for k, v in self.files.items()}}
        if self.pin is not None:
            d["pin"] = self.pin.decode()
            d["pin_tries"] = self.pin_tries
        return d

    @classmethod
    def from_json(cls, d):
        files = {int(k): bytes.fromhex(v) for k, v in d.get("files", {}).items()}
        card = cls(bytes.fromhex(d["serial"]), bytes.fromhex(d["key"]), files,
                   bytes.fromhex(d.get("atr", ATR.hex())))
        if d.get("pin") is not None:
            card.set_pin(d["pin"])
            card.pin_tries = int(d.get("pin_tries", PIN_TRIES))
        return card
