#!/usr/bin/env python3
"""Re-registration data for a technician (issue 11): the key package a
terminal accepts for a meter of another key batch, and a printable work
order that carries no key.

    work_order.py package --meter 12DIGITS [--address 12DIGITS] --keys FILE|- --out DIR
        Seal the new meter's K_m under the terminal's transport key K_t and
        write DIR/<meter>.key (the 26-byte sealed record as hex: address |
        SM4(K_enc, K_m) | MAC). The keys come from FILE (owner-only, mode
        600) or from stdin ("-"), never from the command line: JSON
        {"km": 32 hex, "transport": 32 hex}. Prints the file and its SHA-256.
    work_order.py print --terminal 12DIGITS --customer 12DIGITS --old-meter 12DIGITS
                        --new-meter 12DIGITS [--address 12DIGITS]
                        (--key derived | --key package --package FILE)
        A work order to print and hand to the technician: which terminal,
        customer, old and new meter, bus address, key kind, and for a
        package its file name and SHA-256 (the terminal checks the MAC; the
        hash lets the technician see it is the file the office made).

At the terminal: the technician puts the package in the terminal's inbox
(unix board: <--state>/inbox; a board: /inbox, with mpremote), inserts the
technician card, types the PIN, menu 2, the customer number, confirms the
address and meter number read from the bus, and picks the key kind.
Bad input: one line naming it, exit status 2.
"""
import argparse
import hashlib
import json
import os
import stat
import sys

import hostpath  # noqa: F401

import keystore  # noqa: E402


class Bad(Exception):
    """One line for the user; exit status 2."""


def digits12(text):
    if len(text) != 12 or not text.isdigit():
        raise argparse.ArgumentTypeError("%r is not 12 digits" % text)
    return text


def _key(d, name, where):
    v = d.get(name)
    try:
        k = bytes.fromhex(v) if isinstance(v, str) else b""
    except ValueError:
        k = b""
    if len(k) != 16:
        raise Bad('%s: "%s" must be 32 hex digits (16 bytes)' % (where, name))
    return k


def read_keys(source):
    """{"km", "transport"} from a protected file or stdin -> (K_m, K_t)."""
    if source == "-":
        where, text = "stdin", sys.stdin.read()
    else:
        where = "keys file %s" % source
        try:
            mode = os.stat(source).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise Bad("%s is readable by others: chmod 600 it (it holds keys)" % where)
            with open(source) as f:
                text = f.read(4096)
        except OSError as e:
            raise Bad("%s: cannot read it (%s)" % (where, e.strerror)) from None
    try:
        d = json.loads(text)
    except ValueError:
        raise Bad('%s: want JSON {"km": 32 hex, "transport": 32 hex}' % where) from None
    if not isinstance(d, dict):
        raise Bad('%s: want JSON {"km": 32 hex, "transport": 32 hex}' % where)
    return _key(d, "km", where), _key(d, "transport", where)


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def cmd_package(a):
    km, kt = read_keys(a.keys)
    address = a.address or a.meter
    try:
        sealed = keystore.seal_meter_key(kt, address, km)
    except keystore.KeyStoreError as e:
        raise Bad(str(e)) from None
    if not os.path.isdir(a.out):
        raise Bad("--out %s is not a folder" % a.out)
    path = os.path.join(a.out, "%s.key" % a.meter)
    with open(path, "w") as f:
        f.write(sealed.hex() + "\n")
    print("%s  sha256 %s" % (path, sha256_file(path)))


def work_order(terminal, customer, old, new, address, kind, package=None):
    """The printable text: no key, only the package's name and hash."""
    lines = ["WORK ORDER: re-register a replaced meter", "",
             "terminal        %s" % terminal,
             "customer        %s" % customer,
             "old meter       %s" % old,
             "new meter       %s" % new,
             "bus address     %s" % address,
             "keys            %s" % ("derived from the terminal's master key (same batch)"
                                     if kind == "derived" else "key package (another batch)")]
    if package:
        lines += ["package file    %s" % os.path.basename(package),
                  "package sha256  %s" % sha256_file(package)]
    lines += ["", "At the terminal:",
              "1. Mark the old meter replaced if not done (menu 1, customer number).",
              "2. Install the new meter; leave it alone on its bus segment if you can.",
              ("3. Copy %s into the terminal's inbox." % os.path.basename(package)) if package
              else "3. No package: the terminal derives the keys.",
              "4. Technician card, PIN, menu 2, customer %s; confirm address %s and"
              % (customer, address),
              "   meter %s as read from the bus; keys: %s." % (new, "2 (package)"
                                                              if package else "1 (derived)"),
              "5. The terminal authenticates the meter before saving; then the customer's",
              "   first purchase is made AT THE METER (opening card), not at the terminal.",
              "", "Signed: ____________________   Date: ____________"]
    return "\n".join(lines)


def cmd_print(a):
    if a.key == "package":
        if not a.package:
            raise Bad("--key package needs --package FILE (made by: work_order.py package)")
        try:
            with open(a.package) as f:
                sealed = bytes.fromhex(f.read(80).strip())
        except (OSError, ValueError):
            raise Bad("--package %s: not a key package file" % a.package) from None
        if len(sealed) != 26:
            raise Bad("--package %s: not a key package file" % a.package)
        if os.path.basename(a.package) != "%s.key" % a.new_meter:
            raise Bad("--package %s: the terminal looks for %s.key" % (a.package, a.new_meter))
    elif a.package:
        raise Bad("--package goes with --key package")
    print(work_order(a.terminal, a.customer, a.old_meter, a.new_meter,
                     a.address or a.new_meter, a.key, a.package))


def build_parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("package", help="seal a meter key for a terminal")
    k.add_argument("--meter", type=digits12, required=True, help="the new meter's number")
    k.add_argument("--address", type=digits12, help="its bus address (default: the number)")
    k.add_argument("--keys", required=True, metavar="FILE|-",
                   help='JSON {"km", "transport"}: an owner-only file, or - for stdin')
    k.add_argument("--out", required=True, help="folder for <meter>.key")
    w = sub.add_parser("print", help="a printable work order (no key in it)")
    w.add_argument("--terminal", type=digits12, required=True)
    w.add_argument("--customer", type=digits12, required=True)
    w.add_argument("--old-meter", type=digits12, required=True)
    w.add_argument("--new-meter", type=digits12, required=True)
    w.add_argument("--address", type=digits12)
    w.add_argument("--key", choices=("derived", "package"), required=True)
    w.add_argument("--package", help="the <meter>.key file made by `package`")
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    try:
        (cmd_package if a.cmd == "package" else cmd_print)(a)
    except Bad as e:
        print("work_order: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
