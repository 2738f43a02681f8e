"""Create and maintain a terminal key store (firmware/keystore.py format).

    make_keystore.py create OUT [--terminal-id 12DIGITS] [--dev]
                     [--mk-m HEX] [--mk-c HEX] [--transport HEX] [--mk-r HEX]
        Keys not given are fresh os.urandom keys. --dev puts in the security
        profile's test master keys (what the meter and card simulators use)
        and the development reporting master key, for `make run` and tests
        only. --mk-r is the utility's reporting master key MK_R: the store
        gets this terminal's K_r = KDF(MK_R, terminal id), never MK_R; with
        neither --mk-r nor --dev the terminal does not report.
    make_keystore.py seal --transport HEX --address 12DIGITS --km HEX
        Print the sealed 26-byte import record (hex) for a meter from another
        key batch: its K_m never travels in clear.
    make_keystore.py import KEYSTORE RECORDHEX
        Add a sealed record to a key store (checked against its MAC).
    make_keystore.py show KEYSTORE
        Terminal id and overridden meters; never a key.

Key stores (and their .tmp while saving) are created owner-only (0600),
whatever the umask. Keys on a command line end up in shell history and the
process list: on a real provisioning station give them from a protected
file via $(cat ...).
"""
import argparse
import os

import hostpath  # noqa: F401

import keystore  # noqa: E402

# The security profile's test master keys (public: test vectors).
DEV_MK_M = "0123456789abcdeffedcba9876543210"
DEV_MK_C = "fedcba98765432100123456789abcdef"
# The development reporting master key MK_R (the head-end's --dev uses it too).
DEV_MK_R = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def _hexkey(text, what):
    try:
        k = bytes.fromhex(text)
    except ValueError:
        raise SystemExit("%s: not hex" % what)
    if len(k) != 16:
        raise SystemExit("%s: need 16 bytes (32 hex digits), got %d" % (what, len(k)))
    return k


def cmd_create(a):
    mk_m = a.mk_m or (DEV_MK_M if a.dev else None)
    mk_c = a.mk_c or (DEV_MK_C if a.dev else None)
    mk_r = a.mk_r or (DEV_MK_R if a.dev else None)
    k_r = keystore.report_key(_hexkey(mk_r, "--mk-r"), a.terminal_id) if mk_r else None
    ks = keystore.KeyStore(
        a.terminal_id,
        _hexkey(mk_m, "--mk-m") if mk_m else os.urandom(16),
        _hexkey(mk_c, "--mk-c") if mk_c else os.urandom(16),
        _hexkey(a.transport, "--transport") if a.transport else os.urandom(16),
        k_r,
    )
    d = os.path.dirname(os.path.abspath(a.out))
    os.makedirs(d, exist_ok=True)
    ks.save(a.out)
    print("wrote %s: %r%s" % (a.out, ks, " (profile test master keys)" if a.dev else ""))


def cmd_seal(a):
    rec = keystore.seal_meter_key(_hexkey(a.transport, "--transport"), a.address,
                                  _hexkey(a.km, "--km"))
    print(rec.hex())


def cmd_import(a):
    ks = keystore.KeyStore.load(a.keystore)
    try:
        rec = bytes.fromhex(a.record)
    except ValueError:
        raise SystemExit("record: not hex")
    addr = ks.import_meter_key(rec)
    ks.save(a.keystore)
    print("meter %s: key imported into %s" % (addr, a.keystore))


def cmd_show(a):
    ks = keystore.KeyStore.load(a.keystore)
    print(repr(ks))
    for addr in ks.overrides():
        print("override", addr)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("out")
    c.add_argument("--terminal-id", default="000000000099")
    c.add_argument("--dev", action="store_true")
    c.add_argument("--mk-m")
    c.add_argument("--mk-c")
    c.add_argument("--transport")
    c.add_argument("--mk-r")
    s = sub.add_parser("seal")
    s.add_argument("--transport", required=True)
    s.add_argument("--address", required=True)
    s.add_argument("--km", required=True)
    i = sub.add_parser("import")
    i.add_argument("keystore")
    i.add_argument("record")
    w = sub.add_parser("show")
    w.add_argument("keystore")
    a = p.parse_args(argv)
    try:
        {"create": cmd_create, "seal": cmd_seal, "import": cmd_import, "show": cmd_show}[a.cmd](a)
    except keystore.KeyStoreError as e:
        raise SystemExit("error: %s" % e)


if __name__ == "__main__":
    main()
