"""The terminal's key store: master keys, transport key, terminal id and
per-meter key overrides, in a file of its own (e.g. /keys/keystore.bin),
apart from application data.

The file is a storage.py checked file (magic "TSF\\x01", length, SHA-256;
written atomically, an interrupted save recovered on load) holding the key
store record below. Files written before storage.py, the bare record, still
load; the next save rewrites them in the checked form.

Key store record (version 2), all fields in this order:

    magic "TKS" 3 | version 2 | terminal id 6 (BCD, low byte first, as sent)
    | MK_M 16 | MK_C 16 | K_t (transport) 16 | K_r (reporting) 16
    | n 2 (little-endian)
    | n x meter override 26 (ascending by wire address, each address once)
    | SHA-256 of everything before it 32

The SHA-256s catch corruption (a torn write, a flash fault): any changed,
missing or extra byte makes load() raise KeyStoreError, and so does a file
larger than 1000 overrides can make, before it is read. They are not a
secret check; protecting the file is the board's job (read-out protection),
and the host tool creates it owner-only (0600). There is never a fallback to
a default key: no file, no keys, no credit.

Meter override (a meter from another key batch, whose K_m is not
KDF(MK_M, F)); this is also the import format the technician's tool
produces, and K_m stays sealed inside it even at rest:

    address 6 (BCD, low byte first) | E 16 | M 4
    E = SM4(K_enc, K_m)                       one ECB block
    M = MAC(K_mac, address | E)               the profile's CBC-MAC
    K_enc = KDF(K_t, "KMENC\\0\\0\\0"), K_mac = KDF(K_t, "KMMAC\\0\\0\\0")

(two keys derived from K_t so one key never both encrypts and MACs). An
override with a wrong MAC, or sealing a blank K_m (all 00 or FF), is refused
on import and on load.

K_r signs the terminal's reports to the head-end (docs/reporting.md). It is
this terminal's own key, KDF(MK_R, "R\0" | terminal id), derived at
provisioning from the utility's reporting master key MK_R, which only the
head-end and the provisioning station hold: a terminal's reports can be
forged only with that terminal's key store, and K_r opens no meter and no
card. Version 1 files (no K_r) still load; such a terminal does not report
until it is re-provisioned.

The operator code in DL/T 645 control-03 frames is terminal_id[0:4], the
terminal id's low four bytes as they are sent (see operator_code).
"""
import hashlib
import os

from micropython import const

import bcd
import sm4
import storage

_MAGIC = b"TKS"
_VERSION = const(2)
_HEAD = const(76)  # magic .. n
_HEAD_V1 = const(60)
_ENTRY = const(26)
_MAX_OVERRIDES = const(1000)
_MAX_SIZE = const(26108)  # _HEAD + _MAX_OVERRIDES * _ENTRY + 32
_D_ENC = b"KMENC\x00\x00\x00"
_D_MAC = b"KMMAC\x00\x00\x00"
_D_REPORT = b"R\x00"


class KeyStoreError(Exception):
    """The key store cannot be used; the message says what to do."""


def _blank(k):
    return k == bytes(16) or k == b"\xff" * 16


def _key(k, what):
    if not isinstance(k, (bytes, bytearray)) or len(k) != 16:
        raise KeyStoreError(what + " must be 16 bytes")
    k = bytes(k)
    if _blank(k):
        raise KeyStoreError(what + " is blank (all 00 or FF): provision real keys")
    return k


def _address(addr):
    """'000000000001' or its 6 wire bytes -> 6 wire bytes (BCD, low byte first)."""
    try:
        if isinstance(addr, str):
            return bcd.from_digits(addr)
        if isinstance(addr, (bytes, bytearray)) and len(addr) == 6:
            bcd.to_digits(addr)
            return bytes(addr)
    except ValueError:
        pass
    raise KeyStoreError("meter address must be 12 decimal digits: %r" % (addr,))


def _transport_keys(k_t):
    return sm4.kdf(k_t, _D_ENC), sm4.kdf(k_t, _D_MAC)


def seal_meter_key(k_t, address, k_m):
    """Build the 26-byte import record for one meter key (technician's tool side)."""
    k_t = _key(k_t, "transport key")
    k_m = _key(k_m, "meter key")
    a = _address(address)
    k_enc, k_mac = _transport_keys(k_t)
    e = sm4.encrypt(k_enc, k_m)
    return a + e + sm4.mac(k_mac, a + e)


def report_key(mk_r, terminal_id):
    """K_r = KDF(MK_R, "R\\0" | terminal id wire bytes): the provisioning
    station and the head-end derive a terminal's reporting key with this."""
    return sm4.kdf(_key(mk_r, "reporting master key MK_R"), _D_REPORT + _address(terminal_id))


class KeyStore:
    def __init__(self, terminal_id, mk_m, mk_c, k_t, k_r=None):
        """terminal_id: 12 digits (str) or 6 wire bytes; k_r None: a
        version 1 store, which does not report."""
        try:
            self.terminal_id = _address(terminal_id)
        except KeyStoreError:
            raise KeyStoreError("terminal id must be 12 decimal digits")
        self._mk_m = _key(mk_m, "meter master key MK_M")
        self._mk_c = _key(mk_c, "card master key MK_C")
        self._k_t = _key(k_t, "transport key")
        self._k_r = None if k_r is None else _key(k_r, "reporting key K_r")
        # The sealed override records, ascending by wire address, in one
        # buffer (after a load, a view into the file's bytes): 26 bytes a
        # meter and no allocation per meter (a dict of 1000 records
        # fragments a small heap until it cannot grow).
        self._table = b""
        self._tk = None  # (Cipher(K_enc), Cipher(K_mac)), made on first use

    def __repr__(self):  # never the keys
        return "<KeyStore terminal %s, %d meter overrides>" % (
            bcd.to_digits(self.terminal_id), len(self._table) // _ENTRY)

    @property
    def operator_code(self):
        return self.terminal_id[0:4]

    # --- keys the flows need -------------------------------------------
    @property
    def reporting_key(self):
        """K_r, or None for a store provisioned before reporting."""
        return self._k_r

    def meter_key(self, address):
        """K_m for a meter: its imported key, else KDF(MK_M, address || 00 00)."""
        a = _address(address)
        off, found = self._find(a)
        if not found:
            return sm4.kdf(self._mk_m, a + b"\x00\x00")
        return self._ciphers()[0].decrypt(self._table[off + 6:off + 22])

    def derived_key(self, address):
        """K_m = KDF(MK_M, address || 00 00), whatever override the meter has:
        a meter of this terminal's batch."""
        return sm4.kdf(self._mk_m, _address(address) + b"\x00\x00")

    def open_sealed(self, record):
        """A sealed record (26 bytes) checked against its MAC, not imported:
        -> (address digits, K_m), for authenticating a meter before anything
        is saved. KeyStoreError for a forged, foreign or blank one."""
        if not isinstance(record, (bytes, bytearray)) or len(record) != _ENTRY:
            raise KeyStoreError("meter key record must be %d bytes" % _ENTRY)
        record = bytes(record)
        a = _address(record[0:6])
        self._verify(record)
        return bcd.to_digits(a), self._ciphers()[0].decrypt(record[6:22])

    def card_key(self, serial8):
        """K_c = KDF(MK_C, card serial)."""
        if not isinstance(serial8, (bytes, bytearray)) or len(serial8) != 8:
            raise KeyStoreError("card serial must be 8 bytes")
        return sm4.kdf(self._mk_c, serial8)

    # --- per-meter overrides -------------------------------------------
    def _ciphers(self):
        if self._tk is None:
            self._tk = tuple(sm4.Cipher(k) for k in _transport_keys(self._k_t))
        return self._tk

    def _find(self, a):
        """(offset of a's record, True) or (where it would go, False)."""
        t = self._table
        lo, hi = 0, len(t) // _ENTRY
        while lo < hi:
            mid = (lo + hi) // 2
            k = bytes(t[mid * _ENTRY:mid * _ENTRY + 6])
            if k == a:
                return mid * _ENTRY, True
            if k < a:
                lo = mid + 1
            else:
                hi = mid
        return lo * _ENTRY, False

    def _verify(self, rec):
        """rec: one 26-byte record (address already checked)."""
        c_enc, c_mac = self._ciphers()
        if c_mac.mac(rec[0:22]) != rec[22:26]:
            raise KeyStoreError(
                "meter key record for %s fails its MAC: not sealed with this "
                "terminal's transport key, or damaged; re-export it" % bcd.to_digits(rec[0:6]))
        if _blank(c_enc.decrypt(rec[6:22])):  # seal_meter_key refuses these
            raise KeyStoreError(
                "meter key record for %s seals a blank key (all 00 or FF): "
                "re-export it with the meter's real key" % bcd.to_digits(rec[0:6]))

    def import_meter_key(self, record):
        """Register a sealed meter key (26 bytes, see module doc); returns the address digits."""
        if not isinstance(record, (bytes, bytearray)) or len(record) != _ENTRY:
            raise KeyStoreError("meter key record must be %d bytes" % _ENTRY)
        record = bytes(record)
        a = _address(record[0:6])
        self._verify(record)
        off, found = self._find(a)
        t = self._table
        if found:
            self._table = bytes(t[:off]) + record + bytes(t[off + _ENTRY:])
        elif len(t) >= _MAX_OVERRIDES * _ENTRY:
            raise KeyStoreError("too many meter key overrides")
        else:
            self._table = bytes(t[:off]) + record + bytes(t[off:])
        return bcd.to_digits(a)

    def remove_meter_key(self, address):
        """Back to the derived key (meter re-registered); True if one was removed."""
        off, found = self._find(_address(address))
        if found:
            self._table = bytes(self._table[:off]) + bytes(self._table[off + _ENTRY:])
        return found

    def overrides(self):
        t = self._table
        return sorted(bcd.to_digits(bytes(t[o:o + 6])) for o in range(0, len(t), _ENTRY))

    # --- file ----------------------------------------------------------
    def to_bytes(self):
        body = bytearray(_MAGIC)
        body.append(_VERSION)
        body += self.terminal_id + self._mk_m + self._mk_c + self._k_t
        body += self._k_r or bytes(16)  # 16 zero bytes: none (a blank key is never a key)
        body += (len(self._table) // _ENTRY).to_bytes(2, "little")
        body += self._table
        return bytes(body) + hashlib.sha256(body).digest()

    def save(self, path):
        """Write atomically (storage.write_atomic), owner-only on a host."""
        storage.write_atomic(path, self.to_bytes(), private=True)

    @classmethod
    def from_bytes(cls, data, where="key store"):
        if type(data) is not bytes:  # the store keeps a view into it
            data = bytes(data)
        n = len(data)
        if n < 3 or data[0:3] != _MAGIC:
            raise KeyStoreError(where + " is not a key store (wrong magic): re-provision it")
        if n < 4 or data[3] not in (1, _VERSION):
            raise KeyStoreError(where + " has an unsupported version:"
                                " update the firmware or re-provision")
        head = _HEAD if data[3] == _VERSION else _HEAD_V1
        if n < head + 32:
            raise KeyStoreError(where + " is truncated (%d bytes): re-provision it" % n)
        count = int.from_bytes(data[head - 2:head], "little")
        end = head + count * _ENTRY
        if n != end + 32:
            raise KeyStoreError(where + " has the wrong length (%d bytes, header says %d): "
                                "truncated or damaged, re-provision it" % (n, end + 32))
        if hashlib.sha256(memoryview(data)[0:end]).digest() != data[end:]:
            raise KeyStoreError(where + " is corrupted (checksum mismatch): re-provision it")
        if count > _MAX_OVERRIDES:
            raise KeyStoreError(where + " holds more than %d meter keys: re-provision it"
                                % _MAX_OVERRIDES)
        k_r = data[58:74] if head == _HEAD and data[58:74] != bytes(16) else None
        ks = cls(data[4:10], data[10:26], data[26:42], data[42:58], k_r)
        prev = b""
        for off in range(head, end, _ENTRY):  # saved in address order, each once
            a = _address(data[off:off + 6])
            if a <= prev:
                raise KeyStoreError(where + (" holds meter %s twice" if a == prev else
                                             " has meter %s out of order") % bcd.to_digits(a)
                                    + ": damaged or edited by hand, re-provision it")
            ks._verify(data[off:off + _ENTRY])
            prev = a
        ks._table = memoryview(data)[head:end]
        return ks

    @classmethod
    def load(cls, path):
        """Read, check and recover (storage.read_checked); KeyStoreError says
        what to do when the file is missing, unreadable or damaged."""
        try:
            data = storage.read_checked(path, _MAX_SIZE)
        except storage.Missing:
            raise KeyStoreError(
                "key store %s missing: provision the terminal (tools/make_keystore.py)" % path)
        except storage.Corrupt as e:
            data = _bare_record(path)
            if data is None:
                raise KeyStoreError("key store %s: re-provision it" % e)
        except OSError as e:
            raise KeyStoreError("key store %s unreadable (error %s): check the flash, "
                                "re-provision it" % (path, e.args[0]))
        return cls.from_bytes(data, "key store " + path)


def _bare_record(path):
    """A key store file written before storage.py (the bare record), or None."""
    try:
        if os.stat(path)[6] <= _MAX_SIZE:
            with open(path, "rb") as f:
                if f.read(3) == _MAGIC:
                    return _MAGIC + f.read()
    except OSError:
        pass
    return None
