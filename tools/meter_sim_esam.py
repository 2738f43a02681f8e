"""The meter's ESAM for the simulator: SM4 primitives of security-profile.md
and the meter side of DL/T 645 control code 03 (security authentication).

SM4 comes from the `cryptography` package (OpenSSL), independent of the
firmware's own SM4. Keys never leave this module except as a meter's state.
"""
import os
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

DI_AUTH = bytes.fromhex("FF000007")      # 070000FF, as sent (low byte first)
DI_READBACK = bytes.fromhex("FF028107")  # 078102FF
DI_TOPUP = bytes.fromhex("FF020107")     # 070102FF
DI_OPEN = bytes.fromhex("FF010107")      # 070101FF
DI_END = bytes.fromhex("FF020007")       # 070002FF

# SERR bits (2-byte word, low byte first)
SERR_OTHER = 0x01
SERR_REPEAT = 0x02
SERR_MAC = 0x04
SERR_AUTH = 0x08
SERR_CUSTOMER = 0x10
SERR_COUNT = 0x20
SERR_HOARD = 0x40

MAX_FAILURES = 15
KEY_INFO = bytes(4)     # key info field of the read-back: ours, all zero


class SecurityError(Exception):
    """A 03 request refused; .serr is the SERR word."""

    def __init__(self, serr, why):
        Exception.__init__(self, why)
        self.serr = serr


def sm4(key, block):
    if len(key) != 16 or len(block) != 16:
        raise ValueError("SM4 needs a 16-byte key and a 16-byte block")
    enc = Cipher(algorithms.SM4(bytes(key)), modes.ECB()).encryptor()
    return enc.update(bytes(block)) + enc.finalize()


def invert(data):
    return bytes(b ^ 0xFF for b in data)


def kdf(master, d):
    if len(d) != 8:
        raise ValueError("diversification data must be 8 bytes")
    return sm4(master, d + invert(d))


def mac(key, data):
    """SM4-CBC-MAC, zero IV, always padded 80 00.., first 4 bytes."""
    data = bytes(data) + b"\x80"
    data += bytes(-len(data) % 16)
    c = bytes(16)
    for i in range(0, len(data), 16):
        c = sm4(key, bytes(a ^ b for a, b in zip(c, data[i:i + 16])))
    return c[:4]


def dispersion(meter_number_raw):
    """F = meter number (6 bytes as sent) || 00 00."""
    return bytes(meter_number_raw) + b"\x00\x00"


def s32(value):
    """Signed int -> 4 bytes two's complement, little-endian."""
    if not -0x80000000 <= value <= 0x7FFFFFFF:
        raise ValueError("balance out of 32-bit range: %d" % value)
    return (value & 0xFFFFFFFF).to_bytes(4, "little")


def u32(data):
    return int.from_bytes(data, "little")


class Esam:
    """One meter's security state. `meter` gives balance, count, customer,
    opened, key, meter number raw, esam serial, session_minutes, failures."""

    def __init__(self, meter):
        self.meter = meter
        self.ks = None
        self.expires = 0.0

    def end_session(self):
        self.ks = None

    def session_active(self):
        if self.ks is not None and time.monotonic() >= self.expires:
            self.ks = None
        return self.ks is not None

    def handle(self, di, payload):
        """-> reply data after the DI (bytes). Raises SecurityError; any
        SecurityError ends the session (the profile says so)."""
        try:
            if di == DI_AUTH:
                return self._auth(payload)
            if di == DI_READBACK:
                return self._readback(payload)
            if di == DI_TOPUP:
                return self._credit(payload, opening=False)
            if di == DI_OPEN:
                return self._credit(payload, opening=True)
            if di == DI_END:
                self.ks = None
                return b""
            raise SecurityError(SERR_OTHER, "unknown 03 DI %s" % di.hex())
        except SecurityError:
            self.ks = None
            raise

    def _auth(self, payload):
        m = self.meter
        m.roll_day()
        if m.failures >= MAX_FAILURES:
            raise SecurityError(SERR_AUTH, "too many failures today")
        if len(payload) != 24:
            raise SecurityError(SERR_OTHER, "identity payload must be 24 bytes")
        c1, r1, f = payload[:8], payload[8:16], payload[16:24]
        if f != dispersion(m.meter_number_raw()) or sm4(m.key, r1 + f)[:8] != c1:
            m.failures += 1
            raise SecurityError(SERR_AUTH, "identity authentication failed")
        r2 = os.urandom(4)
        self.ks = sm4(m.key, r1 + r2 + invert(r2))
        self.expires = time.monotonic() + 60.0 * m.session_minutes
        return r2 + m.esam_serial_raw()

    def _need_session(self):
        if not self.session_active():
            raise SecurityError(SERR_AUTH, "no session or session expired")

    def _readback(self, payload):
        self._need_session()
        if len(payload) != 4:
            raise SecurityError(SERR_OTHER, "read-back payload must be R3 (4 bytes)")
        m = self.meter
        bal = s32(m.balance)
        cnt = (m.count & 0xFFFFFFFF).to_bytes(4, "little")
        cust = m.customer_raw()
        mac_b = mac(self.ks, payload + DI_READBACK + bal)
        mac_c = mac(self.ks, payload + DI_READBACK + cnt + cust)
        return bal + mac_b + cnt + mac_c + cust + KEY_INFO

    def _credit(self, payload, opening):
        """Top-up (070102FF) or open account (070101FF); the check order is
        the profile's: session, opened, MACs, customer, count, hoarding."""
        self._need_session()
        if len(payload) != 22:
            raise SecurityError(SERR_OTHER, "top-up payload must be 22 bytes")
        m = self.meter
        di = DI_OPEN if opening else DI_TOPUP
        amount, count, mac1 = payload[0:4], payload[4:8], payload[8:12]
        cust, mac2 = payload[12:18], payload[18:22]
        if opening:
            if m.opened:
                raise SecurityError(SERR_OTHER, "account already opened")
        elif not m.opened:
            raise SecurityError(SERR_OTHER, "account not opened")
        if mac(self.ks, di + amount + count) != mac1 \
                or mac(self.ks, di + cust + amount + count) != mac2:
            raise SecurityError(SERR_MAC, "MAC verification failed")
        if not opening and cust != m.customer_raw():
            raise SecurityError(SERR_CUSTOMER, "customer number mismatch")
        amount, count = u32(amount), u32(count)
        stored = 0 if opening else m.count
        if count == stored:
            raise SecurityError(SERR_REPEAT, "repeat top-up")
        if count != stored + 1:
            raise SecurityError(SERR_COUNT, "purchase count error")
        if m.balance + amount > m.hoarding_limit:
            raise SecurityError(SERR_HOARD, "over the hoarding limit")
        m.balance += amount
        m.count = count
        if opening:
            m.opened = True
            m.customer = cust[::-1].hex()
        return b""
