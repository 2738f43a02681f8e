"""A report's MAC (docs/reporting.md), written from the contract with
OpenSSL's SM4 (`cryptography`), independently of the terminal's firmware/sm4.

K_r = SM4(MK_R, D || ~D), D = "R" 00 || terminal id (6 BCD bytes, low byte
first). MAC = last block of SM4-CBC (IV 0) over len(M) (4 bytes big-endian)
|| M, padded 80 00.., M = topic || 00 || BODY."""
import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class BadReport(Exception):
    """A payload the head-end refuses; `kind` names the alarm raised."""

    def __init__(self, kind, detail):
        super().__init__(detail)
        self.kind = kind


def _ecb(key, block):
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def tid_wire(tid):
    """'000000000099' -> 99 00 00 00 00 00 (BCD, low byte first)."""
    if len(tid) != 12 or not tid.isdigit():
        raise ValueError("terminal id must be 12 digits, got %r" % tid)
    return bytes(int(tid[i:i + 2], 16) for i in range(10, -1, -2))


def terminal_key(mk_r, tid):
    d = b"R\x00" + tid_wire(tid)
    return _ecb(mk_r, d + bytes(b ^ 0xFF for b in d))


def mac(k_r, topic, body):
    """32 lowercase hex digits over topic (str) and body (bytes)."""
    m = topic.encode() + b"\x00" + body
    data = len(m).to_bytes(4, "big") + m + b"\x80"
    data += bytes(-len(data) % 16)
    enc = Cipher(algorithms.SM4(k_r), modes.CBC(bytes(16))).encryptor()
    return (enc.update(data) + enc.finalize())[-16:].hex()


class Verifier:
    """Checks payloads with each terminal's K_r, derived once from MK_R."""

    def __init__(self, mk_r):
        if len(mk_r) != 16:
            raise ValueError("MK_R must be 16 bytes")
        self._mk_r = bytes(mk_r)
        self._keys = {}

    def key(self, tid):
        k = self._keys.get(tid)
        if k is None:
            k = self._keys[tid] = terminal_key(self._mk_r, tid)
        return k

    def check(self, topic, payload):
        """(terminal id, channel, body bytes) of a genuine report, or BadReport."""
        parts = topic.split("/")
        if len(parts) != 3 or parts[0] != "terminals" or parts[2] not in ("journal", "heartbeat"):
            raise BadReport("bad_topic", "topic %r is not terminals/<id>/journal|heartbeat"
                            % topic)
        tid = parts[1]
        try:
            tid_wire(tid)
        except ValueError:
            raise BadReport("bad_topic", "topic %r: the terminal id is not 12 digits" % topic)
        body, dot, got = bytes(payload).rpartition(b".")
        if not dot:
            raise BadReport("malformed", "no '.MAC' at the end of the payload")
        want = mac(self.key(tid), topic, body).encode()
        if not hmac.compare_digest(want, got):
            raise BadReport("bad_mac", "MAC does not verify under terminal %s's key" % tid)
        return tid, parts[2], body
