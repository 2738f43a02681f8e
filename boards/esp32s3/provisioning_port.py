"""The provisioning port: how the key store, the meter list and the network
settings reach a production terminal, which has no REPL.

main.py opens it only while the terminal cannot start (no valid key store,
or no meter list), on UART0 at 115200 8N1, at the utility's key station.
One command a line, each answered with one line:

    PUT keystore <n>\\n + n bytes   the record tools/make_keystore.py makes
                                   (the checked file or the bare record);
                                   refused while a valid key store is there
    PUT meters <n>\\n + n bytes     /data/config/meters.json (a JSON list)
    PUT network <n>\\n + n bytes    /keys/network.json ({"link": ...})
                                   (both stored as storage.py checked files)
    END\\n                          done: main.py resets the board

    -> OK <what>\\n  or  ERR <one line saying what to do>\\n

A box stolen from the field never opens the port (its key store loads), and
a key store sent here is checked whole before a byte is written.
"""
import hashlib
import json

from micropython import const

import bcd
import storage
from keystore import KeyStore, KeyStoreError

_MAX = const(26200)  # the largest key store file, with room
_FILE = b"TSF\x01"  # storage.py's checked-file magic


class ProvisionError(Exception):
    pass


def _record(data):
    """The key store record, from the checked file or as it stands."""
    if data[0:4] != _FILE:
        return data
    n = int.from_bytes(data[4:8], "little")
    if len(data) != 8 + n + 32 or hashlib.sha256(data[0:8 + n]).digest() != data[8 + n:]:
        raise ProvisionError("key store file damaged in transit: send it again")
    return data[8:8 + n]


def _read(port, n):
    buf = bytearray()
    while len(buf) < n:
        b = port.read(n - len(buf))
        if not b:
            raise ProvisionError("cut short after %d of %d bytes: send it again" % (len(buf), n))
        buf += b
    return bytes(buf)


class Station:
    """One provisioning session. paths: keystore, meters, network files;
    have_keys: a valid key store is already there."""

    def __init__(self, port, paths, have_keys=False):
        self.port = port
        self.paths = paths
        self.have_keys = have_keys

    def _put(self, what, data):
        if what == "keystore":
            if self.have_keys:
                raise ProvisionError("a valid key store is there: erase the keys partition first")
            try:
                ks = KeyStore.from_bytes(_record(data), "key store sent")
            except KeyStoreError as e:
                raise ProvisionError(str(e))
            ks.save(self.paths["keystore"])
            self.have_keys = True
            return "keystore terminal " + bcd.to_digits(ks.terminal_id)
        if what not in ("meters", "network"):
            raise ProvisionError("unknown item %s: keystore, meters or network" % what)
        try:
            value = json.loads(data)
        except ValueError:
            raise ProvisionError(what + " is not JSON: check the file")
        if what == "meters" and not (isinstance(value, list) and
                                     all(isinstance(m, dict) and "address" in m for m in value)):
            raise ProvisionError("meters: a list of {address, meter_number, customer}")
        if what == "network" and not (isinstance(value, dict) and "link" in value):
            raise ProvisionError('network: {"link": "eth"} or {"link": "wifi", "ssid", "key"}')
        storage.write_atomic(self.paths[what], data, private=True)
        return "%s %d bytes" % (what, len(data))

    def step(self):
        """Serve one command; False after END."""
        line = self.port.readline()
        if not line:
            return True
        words = line.decode().split()
        try:
            if words == ["END"]:
                self.port.write(b"OK end\n")
                return False
            if len(words) != 3 or words[0] != "PUT" or not words[2].isdigit():
                raise ProvisionError("say PUT <item> <bytes> or END")
            n = int(words[2])
            if n > _MAX:
                raise ProvisionError("%s of %d bytes is too large" % (words[1], n))
            msg = "OK " + self._put(words[1], _read(self.port, n))
        except (ProvisionError, OSError, UnicodeError) as e:
            msg = "ERR %s" % (e.args[0] if e.args else e)
        self.port.write(msg.encode() + b"\n")
        return True

    def serve(self):
        while self.step():
            pass
