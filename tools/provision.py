#!/usr/bin/env python3
"""Provision a board: put its terminal id and keys in its key store over
mpremote, and print a provisioning record that holds no key.

  python tools/provision.py DEVICE --terminal-id 12DIGITS [--rekey] [--json]
                            [--keys-fd N | --dev]

Keys: MK_M (meter master), MK_C (card master), K_t (this terminal's
transport key) and, for reporting, MK_R (the utility's reporting master
key: only this terminal's K_r = KDF(MK_R, terminal id) goes to the board,
never MK_R). They are read as lines `mk_m=HEX`, `mk_c=HEX`, `k_t=HEX`,
`mk_r=HEX` (32 hex digits each; mk_r may be left out: the terminal then
does not report) from file descriptor N (`--keys-fd 3 3<&0`, a pipe from a
key-management tool), from standard input when it is not a terminal, or
typed at hidden prompts. Never from the command line (the process list and
shell history show it), never into a file, a log or the screen: they go
straight to the board through mpremote's transport in this process. --dev
uses the security profile's public test keys (the unix board, demos).

The board checks the keys (keystore.KeyStore refuses blank or malformed
ones), writes the key store with storage.write_atomic, loads it back and
answers with the key check values it now holds. A board that already holds
a key store is refused unless --rekey.

The record: terminal id, board, firmware version, KCVs, date. A KCV is the
first 3 bytes of SM4(key, 16 zero bytes): it tells whether two parties hold
the same key (the head-end, the sales office) and nothing of the key
itself: SM4 is a block cipher, so knowing one plaintext (zeros) and 24 bits
of its ciphertext leaves 2^128 keys to try, about 2^104 of them matching.
Refusals and failures: one line (naming the field, never a value), exit 2.
"""
import argparse
import datetime as dt
import getpass
import json
import os
import sys

import hostpath  # noqa: F401

import keystore
import sm4
from board_link import BoardError, Link, board_info

NAMES = ("mk_m", "mk_c", "k_t", "mk_r")
LABELS = {"mk_m": "MK_M (meter master key)", "mk_c": "MK_C (card master key)",
          "k_t": "K_t (transport key)", "mk_r": "MK_R (reporting master key; empty: none)"}
KEYSTORE = "/keys/keystore.bin"


class Bad(Exception):
    """One line, exit 2."""


def kcv(key):
    return sm4.encrypt(key, bytes(16))[:3].hex()


def parse_keys(text):
    """'name=hex' lines -> {name: 16 bytes}; Bad names the line, never the value."""
    keys = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, eq, value = line.partition("=")
        name = name.strip().lower()
        if not eq or name not in NAMES:
            raise Bad("key input line %d: expected one of %s=HEX" % (n, ", ".join(NAMES)))
        if name in keys:
            raise Bad("key input line %d: %s given twice" % (n, name))
        keys[name] = _hex16(value.strip(), name)
    for name in NAMES[:3]:
        if name not in keys:
            raise Bad("key input: %s missing" % name)
    return keys


def _hex16(text, name):
    try:
        k = bytes.fromhex(text)
    except ValueError:
        k = None
    if k is None or len(k) != 16:
        raise Bad("key input: %s is not 32 hex digits" % name)
    return k


def prompt_keys():
    keys = {}
    for name in NAMES:
        text = getpass.getpass("%s: " % LABELS[name]).strip()
        if text or name != "mk_r":
            keys[name] = _hex16(text, name)
    return keys


def dev_keys():
    import make_keystore
    return {"mk_m": bytes.fromhex(make_keystore.DEV_MK_M),
            "mk_c": bytes.fromhex(make_keystore.DEV_MK_C),
            "k_t": bytes.fromhex("00112233445566778899aabbccddeeff"),
            "mk_r": bytes.fromhex(make_keystore.DEV_MK_R)}


def read_keys(a):
    if a.dev:
        return dev_keys()
    if a.keys_fd is not None:
        try:
            with os.fdopen(a.keys_fd, "r", closefd=False) as f:
                return parse_keys(f.read())
        except OSError as e:
            raise Bad("--keys-fd %d: %s" % (a.keys_fd, e.strerror or e)) from None
    if not sys.stdin.isatty():
        return parse_keys(sys.stdin.read())
    return prompt_keys()


# Runs on the board. The keys are in this code only: it travels over the
# serial line to the board's raw REPL (which does not echo), nowhere else.
_PROVISION = """import os,json,binascii,keystore,sm4,version
def _go():
 p=%(path)r
 u=binascii.unhexlify
 if not %(rekey)r:
  for q in (p,p+'.tmp'):
   try:
    os.stat(q)
    print(json.dumps({'refused':'provisioned'}));return
   except OSError:pass
 try:os.mkdir(%(root)r+'/keys')
 except OSError:pass
 try:
  keystore.KeyStore(%(tid)r,u(%(mk_m)r),u(%(mk_c)r),u(%(k_t)r),%(k_r)s).save(p)
  ks=keystore.KeyStore.load(p)
 except keystore.KeyStoreError as e:
  print(json.dumps({'refused':str(e)}));return
 k=lambda x:binascii.hexlify(sm4.encrypt(x,bytes(16))[:3]).decode()
 r=ks._k_r and k(ks._k_r)
 print(json.dumps({'version':version.VERSION,'terminal':%(tid)r,'path':p,
  'kcv':{'mk_m':k(ks._mk_m),'mk_c':k(ks._mk_c),'k_t':k(ks._k_t),'k_r':r or None}}))
_go()
del _go
"""

_HAS_STORE = """import os
n=0
for q in (%r,%r):
 try:os.stat(q);n+=1
 except OSError:pass
print(n)
"""


def provision(device, terminal_id, keys, rekey=False, timeout=10):
    """Returns the provisioning record (a dict, no key)."""
    try:
        keystore.KeyStore(terminal_id, keys["mk_m"], keys["mk_c"], keys["k_t"])
        k_r = keystore.report_key(keys["mk_r"], terminal_id) if keys.get("mk_r") else None
    except keystore.KeyStoreError as e:
        raise Bad(str(e)) from None
    want = {"mk_m": kcv(keys["mk_m"]), "mk_c": kcv(keys["mk_c"]), "k_t": kcv(keys["k_t"]),
            "k_r": kcv(k_r) if k_r else None}
    with Link(device, timeout) as link:
        info = board_info(link)
        if not info.get("bundle"):
            raise BoardError("%s holds no firmware bundle: flash it first "
                             "(tools/flash_board.py)" % device)
        path = info["root"] + KEYSTORE
        if not rekey and link.run(_HAS_STORE % (path, path + ".tmp")).strip() != "0":
            raise BoardError("%s is already provisioned (%s): --rekey to replace its keys"
                             % (device, path))
        got = link.run_json(_PROVISION % {
            "path": path, "root": info["root"], "rekey": rekey, "tid": terminal_id,
            "mk_m": keys["mk_m"].hex(), "mk_c": keys["mk_c"].hex(), "k_t": keys["k_t"].hex(),
            "k_r": "u(%r)" % k_r.hex() if k_r else "None"})
    if got.get("refused") == "provisioned":
        raise BoardError("%s is already provisioned (%s): --rekey to replace its keys"
                         % (device, path))
    if got.get("refused"):
        raise BoardError("%s refused the keys: %s" % (device, got["refused"]))
    if got.get("kcv") != want:
        raise BoardError("%s: the key store read back holds other keys than were sent "
                         "(KCVs differ): provision again" % device)
    return {"terminal_id": terminal_id, "board": info["bundle"].get("board"),
            "arch": info["bundle"].get("arch"), "firmware": got["version"],
            "keystore": path, "rekeyed": bool(rekey), "kcv": want,
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def record_text(r):
    k = r["kcv"]
    return "\n".join([
        "provisioning record (no keys; KCV = SM4(key, 0^16)[0:3])",
        "  terminal id  %s" % r["terminal_id"],
        "  board        %s (%s), firmware %s" % (r["board"], r["arch"], r["firmware"]),
        "  key store    %s%s" % (r["keystore"], " (re-keyed)" if r["rekeyed"] else ""),
        "  KCV MK_M     %s" % k["mk_m"],
        "  KCV MK_C     %s" % k["mk_c"],
        "  KCV K_t      %s" % k["k_t"],
        "  KCV K_r      %s" % (k["k_r"] or "none: this terminal does not report"),
        "  date         %s" % r["date"]])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("device")
    p.add_argument("--terminal-id", required=True, help="12 digits")
    p.add_argument("--keys-fd", type=int, help="read the key lines from this file descriptor")
    p.add_argument("--dev", action="store_true", help="the profile's public test keys")
    p.add_argument("--rekey", action="store_true", help="replace the keys of a provisioned board")
    p.add_argument("--json", action="store_true", help="the record as one JSON line")
    p.add_argument("--timeout", type=int, default=10, help="seconds the board may stay silent")
    a = p.parse_args(argv)
    try:
        tid = a.terminal_id
        if len(tid) != 12 or not tid.isdigit() or tid == "0" * 12:
            raise Bad("--terminal-id %r is not 12 digits (and not all zeros)" % tid)
        if a.dev and a.keys_fd is not None:
            raise Bad("--dev and --keys-fd: give one")
        r = provision(a.device, tid, read_keys(a), a.rekey, a.timeout)
    except (Bad, BoardError) as e:
        print("provision: %s" % e, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("provision: interrupted, nothing sent", file=sys.stderr)
        return 2
    print(json.dumps(r, sort_keys=True) if a.json else record_text(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
