"""The whole terminal on the unix board, under the MicroPython unix port:
parse the command line, build the board, run the app (firmware/app.py),
the same app a flashed board runs from its main.py.

  micropython boards/unix/terminal.py --bus tcp:HOST:PORT --meters FILE [--once]
"""
import sys

# Modules are found as on a board, where they are frozen flat: this folder
# (the board), then firmware/ and drivers/, ahead of anything else.
_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
for _i, _sub in enumerate(("/../../firmware", "/../../drivers")):
    if _HERE + _sub not in sys.path:
        sys.path.insert(1 + _i, _HERE + _sub)

import json  # noqa: E402

# A string of its own: the MicroPython unix port keeps no module docstring.
USAGE = """usage: micropython boards/unix/terminal.py --bus BUS --meters FILE [options]
  --bus tcp:HOST:PORT | /dev/pts/N   the meter bus (RS-485 converter, PTY, adapter)
  --meters FILE                      JSON list of {"address", "meter_number",
                                     "customer" (12 digits each), "state"}: seeds
                                     the records on first boot
  --state DIR                        the terminal's flash image (records, journal)
  --keys FILE                        development keys: {"terminal_id", "mk_m", "mk_c"}
  --once                             poll every meter once, print, exit 0
  --baud N                           bus speed (2400, 8E1)
  --interval S                       seconds between polls (5)
  --card-slot tcp:HOST:PORT          listen for cards (a connection = a card)
  --keystore FILE                    the terminal's provisioned key store
  --display console|none             the panel on the console (console on a tty)
  --screenshot DIR                   save every screen pushed as a PNG
  --lang zh|en                       the screen's first language (zh)
  --hint TEXT                        a help line kept under the panel
  --auto-ok                          answer OK to every question (tests, benchmarks)
  --inbox DIR                        key packages for re-registration (<--state>/inbox)
  --keypad stdin                     keys from stdin even without the panel (tests)
  --mqtt tcp:HOST:PORT | tls:HOST:PORT  report to the head-end's MQTT broker
                                     (needs a key store with a reporting key)
  --mqtt-credentials FILE            the broker login: {"username", "password"}
  --mqtt-ca FILE                     with tls: the CA certificate the broker's must
                                     chain to (PEM or DER)
  --low-balance FEN                  alarm when a polled balance is under it"""

_VALUED = ("--bus", "--meters", "--baud", "--interval", "--card-slot", "--keystore",
           "--display", "--screenshot", "--lang", "--hint", "--state", "--keys", "--inbox",
           "--keypad", "--mqtt", "--mqtt-credentials", "--mqtt-ca", "--low-balance")
_STATES = ("active", "replaced", "awaiting_opening")
_BAUDS = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


class UsageError(Exception):
    """A command line the terminal cannot run with: one line, exit 2."""


class SetupError(Exception):
    """A file, device or port the terminal cannot use: one line, exit 2."""


def parse_args(argv):
    opts = {"bus": None, "meters": None, "once": False, "baud": "2400", "interval": "5",
            "card-slot": None, "keystore": None, "display": None, "screenshot": None,
            "lang": "zh", "hint": None, "auto-ok": False, "state": None, "keys": None,
            "inbox": None, "keypad": None,
            "mqtt": None, "mqtt-credentials": None, "mqtt-ca": None, "low-balance": None}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            raise UsageError("")
        if a in ("--once", "--auto-ok"):
            opts[a[2:]] = True
        elif a in _VALUED:
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise UsageError(a + " needs a value")
            i += 1
            opts[a[2:]] = argv[i]
        else:
            raise UsageError("unknown option %s (--help lists them)" % a)
        i += 1
    if opts["display"] not in (None, "console", "none"):
        raise UsageError("--display is console or none, not %r" % opts["display"])
    if opts["keypad"] not in (None, "stdin"):
        raise UsageError("--keypad is stdin, not %r" % opts["keypad"])
    if opts["lang"] not in ("zh", "en"):
        raise UsageError("--lang is zh or en, not %r" % opts["lang"])
    if opts["card-slot"] and not (opts["keystore"] or opts["keys"] or opts["state"]):
        raise UsageError("--card-slot needs --keystore, --keys or a provisioned --state "
                         "(the card master key)")
    if opts["card-slot"] and not opts["state"]:
        raise UsageError("--card-slot needs --state DIR (the terminal's flash: meter records "
                         "and the journal)")
    if opts["keystore"] and opts["keys"]:
        raise UsageError("--keystore and --keys: give one")
    if not opts["card-slot"] and not (opts["bus"] and opts["meters"]):
        raise UsageError("--bus and --meters are required (or a --card-slot)")
    if opts["bus"] and not opts["meters"]:
        raise UsageError("--bus needs --meters (the meters this terminal manages)")
    opts["baud"] = _number("--baud", opts["baud"])
    if opts["baud"] not in _BAUDS:
        raise UsageError("--baud %d is not a serial speed (DL/T 645 meters use 2400)"
                         % opts["baud"])
    opts["interval"] = _number("--interval", opts["interval"])
    if opts["interval"] < 1:
        raise UsageError("--interval is at least 1 second")
    if opts["bus"] and opts["bus"].startswith("tcp:"):
        _tcp_spec("--bus", opts["bus"])
    if opts["card-slot"]:
        _tcp_spec("--card-slot", opts["card-slot"])
    if opts["mqtt"]:
        tls = opts["mqtt"].startswith("tls:")
        host, port = _tcp_spec("--mqtt", "tcp:" + opts["mqtt"][4:] if tls else opts["mqtt"])
        if not host:
            raise UsageError("--mqtt wants tcp:HOST:PORT or tls:HOST:PORT, not %r"
                             % opts["mqtt"])
        if not opts["state"]:
            raise UsageError("--mqtt needs --state DIR (the journal is what it reports)")
        opts["mqtt"] = {"host": host, "port": port, "tls": tls}
        if opts["mqtt-ca"] and not tls:
            raise UsageError("--mqtt-ca needs --mqtt tls:HOST:PORT")
    elif opts["mqtt-credentials"] or opts["mqtt-ca"]:
        raise UsageError("--mqtt-credentials and --mqtt-ca need --mqtt (the broker)")
    if opts["low-balance"] is not None:
        opts["low-balance"] = _number("--low-balance", opts["low-balance"])
    return opts


def _number(name, v):
    if not v.isdigit():
        raise UsageError("%s takes a whole number, not %r" % (name, v))
    return int(v)


def _tcp_spec(name, spec):
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] != "tcp" or (not parts[1] and name != "--card-slot"):
        raise UsageError("%s wants tcp:HOST:PORT, not %r" % (name, spec))
    if not parts[2].isdigit() or not 0 < int(parts[2]) < 65536:
        raise UsageError("%s: the port in %r must be a number 1..65535" % (name, spec))
    return parts[1], int(parts[2])


def load_meters(path):
    """-> (bus addresses to poll, entries to seed the records with)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise SetupError("meters file %s not found or unreadable: check --meters" % path)
    try:
        meters = json.loads(text)
    except ValueError:
        raise SetupError("meters file %s is not valid JSON: fix it or check --meters" % path)
    if not isinstance(meters, list) or not meters:
        raise SetupError("meters file %s must be a JSON list of meters, with at least one"
                         % path)
    addresses, seed, numbers = [], [], []
    for n, m in enumerate(meters, 1):
        where = "meters file %s, meter %d" % (path, n)
        if not isinstance(m, dict):
            raise SetupError("%s: an entry is an object {\"address\": ...}" % where)
        a = _digits12(where, m, "address", True)
        number = _digits12(where, m, "meter_number", False) or a
        customer = _digits12(where, m, "customer", False)
        state = m.get("state", "active")
        if state not in _STATES:
            raise SetupError("%s: \"state\" is one of %s, not %r" % (where, ", ".join(_STATES),
                                                                      state))
        if a in addresses or number in numbers:
            raise SetupError("meters file %s lists meter %s twice" % (path, number))
        addresses.append(a)
        numbers.append(number)
        if customer:  # a meter without a customer is polled, never sold to
            seed.append({"address": a, "meter_number": number, "customer": customer,
                         "state": state})
    return addresses, seed


def _digits12(where, m, key, required):
    v = m.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str) or len(v) != 12 or not v.isdigit():
        raise SetupError("%s: \"%s\" must be 12 digits, got %r" % (where, key, v))
    return v


def load_dev_keys(path):
    """A development key file (never a production key): terminal id and the
    two master keys, and optionally the reporting master key "mk_r"; the
    transport key is derived from MK_M."""
    import sm4
    from keystore import KeyStore, KeyStoreError, report_key
    try:
        with open(path) as f:
            d = json.loads(f.read())
        mk_m = bytes.fromhex(d["mk_m"])
        k_r = report_key(bytes.fromhex(d["mk_r"]), d["terminal_id"]) if "mk_r" in d else None
        return KeyStore(d["terminal_id"], mk_m, bytes.fromhex(d["mk_c"]),
                        sm4.kdf(mk_m, b"DEVTRANS"), k_r)
    except OSError:
        raise SetupError("key file %s not found or unreadable: check --keys" % path)
    except (ValueError, KeyError, TypeError, AttributeError, KeyStoreError) as e:
        raise SetupError("key file %s: want {\"terminal_id\": 12 digits, \"mk_m\": 32 hex, "
                         "\"mk_c\": 32 hex} (%s)" % (path, e))


def load_credentials(path):
    """The broker login, kept out of the command line (ps shows it)."""
    try:
        with open(path) as f:
            d = json.loads(f.read())
    except OSError:
        raise SetupError("credentials file %s not found or unreadable: check "
                         "--mqtt-credentials" % path)
    except ValueError:
        raise SetupError("credentials file %s is not valid JSON: want {\"username\": ..., "
                         "\"password\": ...}" % path)
    if not isinstance(d, dict) or not isinstance(d.get("username"), str) or \
            not isinstance(d.get("password", ""), str):
        raise SetupError("credentials file %s: want {\"username\": text, \"password\": "
                         "text}" % path)
    return d["username"], d.get("password")


def load_keystore(path):
    from keystore import KeyStore, KeyStoreError
    try:
        return KeyStore.load(path)
    except KeyStoreError as e:
        raise SetupError(str(e))


def open_error(opts, e):
    """Which part failed to open, and what to do: a one-line SetupError."""
    import errno
    code = e.args[0] if e.args and isinstance(e.args[0], int) else None
    if code == errno.EADDRINUSE:
        return SetupError("card slot %s: the port is in use (another terminal running?): "
                          "stop it or choose another --card-slot" % opts["card-slot"])
    bus = opts["bus"] or ""
    if bus.startswith("tcp:"):
        if code == errno.ECONNREFUSED:
            return SetupError("bus %s: nothing listens there: start the RS-485 converter "
                              "or the meter simulator, or check --bus" % bus)
        if (isinstance(code, int) and code < 0) or isinstance(e, IndexError) \
                or "addrinfo" in str(e):  # the unix port's getaddrinfo failure
            return SetupError("bus %s: host not found: check the host name in --bus" % bus)
        return SetupError("bus %s: cannot connect (%s): check --bus" % (bus, e))
    if code == errno.ENOENT:
        return SetupError("bus %s: no such device: check --bus (a PTY or serial adapter)" % bus)
    if code == 25:  # ENOTTY (MicroPython's errno lacks the name): termios on a file
        return SetupError("bus %s is not a serial device or PTY: check --bus" % bus)
    return SetupError("cannot open %s: %s" % (bus or opts["card-slot"], e))


def main(argv):
    import board
    try:
        opts = parse_args(argv)
        config = dict(opts)
        config["auto_ok"] = opts["auto-ok"]
        if opts["meters"]:
            config["meters"], config["seed"] = load_meters(opts["meters"])
        if opts["keystore"]:
            config["keystore"] = load_keystore(opts["keystore"])
            config["keystore_path"] = opts["keystore"]  # re-registration saves keys there
        elif opts["keys"]:
            config["keystore"] = load_dev_keys(opts["keys"])
        elif opts["card-slot"]:
            load_flash_keystore(board, config, opts)
        if opts["mqtt-credentials"]:
            config["mqtt"]["username"], config["mqtt"]["password"] = \
                load_credentials(opts["mqtt-credentials"])
        if opts["mqtt-ca"]:
            try:
                open(opts["mqtt-ca"], "rb").close()
            except OSError:
                raise SetupError("CA certificate %s not found or unreadable: check --mqtt-ca"
                                 % opts["mqtt-ca"])
            config["mqtt"]["ca"] = opts["mqtt-ca"]
        if opts["low-balance"] is not None:
            config["low_balance"] = opts["low-balance"]
        run(board, config, opts)
    except UsageError as e:
        if not str(e):
            print(USAGE)
            return 0  # --help is not an error
        print("terminal: %s" % e)
        return 2
    except SetupError as e:
        print("terminal: %s" % e)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        board.close()
    return 0


def load_flash_keystore(board, config, opts):
    """No key file given: the key store tools/provision.py put on the flash,
    where a board keeps it (/keys/keystore.bin under the flash's root)."""
    import storage
    try:
        root = board.storage(config)
    except storage.StorageError as e:
        raise SetupError("--state %s: %s" % (opts["state"], e))
    path = root + "/keys/keystore.bin"
    try:
        import os
        os.stat(path)
    except OSError:
        raise SetupError("--state %s: no key store on this flash: provision it "
                         "(tools/provision.py) or give --keystore FILE" % opts["state"])
    config["keystore"] = load_keystore(path)
    config["keystore_path"] = path


def run(board, config, opts):
    import asyncio
    import app
    import storage
    try:
        asyncio.run(app.main(board, config))
    except (OSError, IndexError) as e:  # IndexError: getaddrinfo found no address
        raise open_error(opts, e)
    except storage.StorageError as e:  # the flash image
        raise SetupError("--state %s: %s" % (opts["state"], e))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
