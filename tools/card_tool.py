#!/usr/bin/env python3
"""Sales-office card tool: issue, sell to, read back and dump prepaid user
cards through any PC/SC reader (a USB reader, or pcscd's virtual vpcd reader
with tools/card_sim.py vpcd).

The tool holds the card master key MK_C: give it as --card-master-key HEX or,
better (it stays out of the shell history), as --key-file FILE holding the 32
hex digits. The key is never printed.

Typical day at the sales office:

  1. A new customer: issue an opening card for their meter
       card_tool.py --key-file mkc.hex issue --type opening \\
           --meter 000000000001 --customer 112233445566
  2. Sell: write the purchase onto the card (amount in yuan; count + 1); the
     sale is appended to the ledger the head-end imports (--ledger FILE,
     default build/ledger.jsonl: one JSON line a sale)
       card_tool.py --key-file mkc.hex sell --amount 100.00
  3. The customer comes back: did the last purchase reach the meter?
       card_tool.py --key-file mkc.hex status
  4. Anything odd: show every file and check the card is genuine
       card_tool.py --key-file mkc.hex dump

Blank cards come from the card supplier personalised with their serial and
K_c = KDF(MK_C, serial); `issue` checks that before writing anything.

A lost card: issue a blank card as `--type reissued` (for a never-opened
meter: `--type opening`) with --count set to the customer's last purchase
count.

A technician card (technician mode at the terminals: re-registering a
replaced meter): issue it with the technician's 12-digit id, then set its
PIN, typed on stdin (never on the command line); `pin` also unblocks a card
blocked by three wrong PINs:
       card_tool.py --key-file mkc.hex issue --type technician --customer 900000000001
       card_tool.py --key-file mkc.hex pin        (then type 6 digits, Enter)

Without hardware: `tools/pcsc_env.py` runs pcscd with a virtual reader and
`tools/card_sim.py vpcd --mk-c HEX --fault unissued` puts a blank card in it.
Exit status: 0 done, 1 the card or the reader refused, 2 bad usage.
"""
import argparse
import os
import sys
import time

import hostpath  # noqa: F401
import card_model  # noqa: E402  (host SM4 through OpenSSL; puts firmware/ on the path)
import card_files as cf  # noqa: E402
from headend import ledger  # noqa: E402  (the head-end imports the same lines)

DEFAULT_LEDGER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "build", "ledger.jsonl")
_TYPES = {"opening": cf.OPENING, "purchase": cf.PURCHASE, "reissued": cf.REISSUED,
          "technician": cf.TECHNICIAN}
_NO_METER = "000000000000"  # a technician card's meter number
_SW_TEXT = {0x6A82: "file not found", 0x6982: "security status not satisfied",
            0x6988: "MAC refused", 0x6B00: "unissued card", 0x6D00: "unknown instruction"}


class ToolError(Exception):
    """Something the operator must hear about; exit status 1."""


class SwError(ToolError):
    def __init__(self, sw, what):
        super().__init__("%s: card answered %04X (%s)" % (what, sw, _SW_TEXT.get(sw, "error")))
        self.sw = sw


def parse_yuan(text):
    """'100.00' -> 10000 fen; exact, no floats."""
    t = text.strip()
    whole, _, frac = t.partition(".")
    if not whole.isdigit() or (frac and (not frac.isdigit() or len(frac) > 2)):
        raise argparse.ArgumentTypeError("amount like 100 or 100.50, got %r" % text)
    fen = int(whole) * 100 + int((frac + "00")[:2])
    if not 0 < fen <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError("amount out of range")
    return fen


def digits12(text):
    try:
        cf.bcd_from_digits(text)
    except cf.CardDataError:
        raise argparse.ArgumentTypeError("need 12 digits, got %r" % text)
    return text


def yuan(fen):
    sign = "-" if fen < 0 else ""
    return "%s%d.%02d" % (sign, abs(fen) // 100, abs(fen) % 100)


class PcscCard:
    """A card in a PC/SC reader: transmit() answers 61xx and 6Cxx itself."""

    def __init__(self, reader_name=None, wait=0.0):
        try:
            from smartcard.System import readers
            from smartcard.Exceptions import CardConnectionException, NoCardException
        except ImportError as e:
            raise ToolError("pyscard is not installed (%s)" % e)
        try:
            rs = readers()
        except Exception as e:  # noqa: BLE001 - pcscd down shows up here
            raise ToolError("no PC/SC service (is pcscd running?): %s" % e)
        if reader_name:
            rs = [r for r in rs if reader_name in str(r)]
        if not rs:
            raise ToolError("no reader%s" % (" matching %r" % reader_name if reader_name else ""))
        last = None
        deadline = time.monotonic() + wait
        while True:
            for r in rs:
                conn = r.createConnection()
                try:
                    conn.connect()
                except (NoCardException, CardConnectionException) as e:
                    last = e
                    continue
                self.conn = conn
                self.reader = str(r)
                self.atr = bytes(conn.getATR())
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        raise ToolError("no card in %s (%s)" % (", ".join(str(r) for r in rs), last))

    def transmit(self, apdu):
        try:
            return self._transmit(apdu)
        except Exception as e:  # noqa: BLE001 - pyscard raises plain exceptions on removal
            raise ToolError("reader %s: %s (card pulled?)" % (self.reader, e))

    def _transmit(self, apdu):
        data, sw1, sw2 = self.conn.transmit(list(apdu))
        out = bytes(data)
        while True:
            if sw1 == 0x61:
                data, sw1, sw2 = self.conn.transmit([0x00, 0xC0, 0, 0, sw2])
                out += bytes(data)
            elif sw1 == 0x6C and len(apdu) == 5:
                apdu = bytes(apdu[:4]) + bytes((sw2,))
                data, sw1, sw2 = self.conn.transmit(list(apdu))
                out = bytes(data)
            else:
                return out, sw1 << 8 | sw2

    def close(self):
        try:
            self.conn.disconnect()
        except Exception:  # noqa: BLE001 - the card may already be gone
            pass


class Office:
    """The sales office's card operations, over any `transmit` object."""

    def __init__(self, card, mk_c):
        self.card = card
        self._mk = mk_c
        self._kc = None
        self.serial = None

    def apdu(self, apdu, what):
        data, sw = self.card.transmit(apdu)
        if sw != 0x9000:
            raise SwError(sw, what)
        return data

    def read(self, sfi, n, what):
        data = self.apdu(bytes((0, 0xB0, 0x80 | sfi, 0, n)), "read " + what)
        if len(data) != n:
            raise ToolError("%s: %d bytes, want %d" % (what, len(data), n))
        return data

    def open(self):
        """Select DF01, read the serial, prove the card holds K_c."""
        self.apdu(b"\x00\xa4\x00\x00\x02\xdf\x01", "select DF01")
        self.serial = self.read(cf.SFI_SERIAL, cf.SERIAL_LEN, "serial")
        self._kc = card_model.kdf(self._mk, self.serial)
        rt = os.urandom(8)
        got = self.apdu(b"\x00\x88\x00\x01\x08" + rt, "internal authenticate")
        if got != card_model.sm4_block(self._kc, rt + bytes(b ^ 0xFF for b in rt))[:8]:
            raise ToolError("card %s is NOT genuine (internal authenticate failed: "
                            "clone, or another card master key)" % self.serial.hex())

    def write(self, sfi, data, what):
        rc = self.apdu(b"\x00\x84\x00\x00\x04", "get challenge")
        hdr = bytes((0x04, 0xD6, 0x80 | sfi, 0, len(data) + 4))
        self.apdu(hdr + data + card_model.mac(self._kc, rc + hdr + data), "write " + what)

    def issued(self):
        """(parameter bytes, purse tuple) or None for a blank card."""
        try:
            param = self.read(cf.SFI_PARAM, cf.PARAM_LEN, "parameter")
        except SwError as e:
            if e.sw == 0x6B00:
                return None
            raise
        purse = cf.parse_purse(self.read(cf.SFI_PURSE, cf.PURSE_LEN, "purse"))
        return param, purse

    def check_purse(self, param, purse):
        amount, count, s = purse
        return card_model.mac(self._kc, cf.sale_mac_input(param, amount, count)) == s

    def write_purse(self, param, amount, count):
        s = card_model.mac(self._kc, cf.sale_mac_input(param, amount, count))
        self.write(cf.SFI_PURSE, cf.pack_purse(amount, count, s), "purse")
        if self.issued() != (param, (amount, count, s)):
            raise ToolError("read-back after writing the purse does not match")

    def issue(self, card_type, meter, customer, count=0, force=False):
        self.open()
        if self.issued() is not None and not force:
            raise ToolError("card %s is already issued (use --force to re-issue it)"
                            % self.serial.hex())
        param = cf.pack_param(card_type, meter, customer)
        self.write(cf.SFI_PARAM, param, "parameter")
        if card_type == cf.TECHNICIAN:  # no sale on it: the purse is all zeros
            self.write(cf.SFI_PURSE, bytes(cf.PURSE_LEN), "purse")
            return ["issued technician card %s: technician %s; now set its PIN (pin)"
                    % (self.serial.hex(), customer)]
        self.write_purse(param, 0, count)
        return ["issued %s card %s: customer %s, meter %s, count %d"
                % (cf.TYPE_NAMES[card_type], self.serial.hex(), customer, meter, count)]

    def _issued_checked(self):
        got = self.issued()
        if got is None:
            raise ToolError("card %s is blank: issue it first" % self.serial.hex())
        if not self.check_purse(*got):
            raise ToolError("purse on card %s is FORGED (sale MAC S wrong)" % self.serial.hex())
        return got

    def set_pin(self, pin):
        """A technician card's PIN (6 digits), set or unblocked: RESET RETRY
        COUNTER with secure messaging, 04 2C 00 01 0A PIN M,
        M = MAC(K_c, RC || header || PIN) (our addition to the profile)."""
        if len(pin) != 6 or not pin.isdigit():
            raise ToolError("a PIN is 6 digits")
        self.open()
        got = self.issued()
        if got is None or got[0][0] != cf.TECHNICIAN:
            raise ToolError("card %s is not a technician card" % self.serial.hex())
        rc = self.apdu(b"\x00\x84\x00\x00\x04", "get challenge")
        hdr = b"\x04\x2c\x00\x01\x0a"
        self.apdu(hdr + pin.encode() + card_model.mac(self._kc, rc + hdr + pin.encode()),
                  "set PIN")
        return ["PIN set on technician card %s (3 tries)" % self.serial.hex()]

    def returned(self):
        return cf.parse_return(self.read(cf.SFI_RETURN, cf.RETURN_LEN, "return"))

    def sell(self, amount, force=False):
        self.open()
        param, (amount_now, count, _) = self._issued_checked()
        ret = self.returned()
        # an issued card's empty purse (amount 0) has nothing waiting for a meter
        if amount_now and (ret is None or ret["count"] != count) and not force:
            raise ToolError("purchase %d on this card has not reached the meter yet; "
                            "take the card to the terminal or meter first (or --force)" % count)
        self.write_purse(param, amount, count + 1)
        _type, meter, customer = cf.parse_param(param)
        self.sale = ledger.sale_line(self.serial.hex(), count + 1, customer, meter, amount)
        return ["sold %s yuan on card %s: purchase count %d"
                % (yuan(amount), self.serial.hex(), count + 1)]

    def status(self):
        """Return (reached: bool, lines)."""
        self.open()
        _param, (amount, count, _) = self._issued_checked()
        ret = self.returned()
        if ret is None:
            return False, ["purchase %d (%s yuan): no write-back on the card yet, "
                           "NOT confirmed at the meter" % (count, yuan(amount))]
        ok = ret["count"] == count and ret["result"] in (cf.RET_CREDITED, cf.RET_ALREADY)
        t = ret["time"]
        lines = ["purchase %d (%s yuan): %s" % (count, yuan(amount),
                 "REACHED the meter" if ok else "NOT reached the meter"),
                 "meter says: %s, count %d, balance %s yuan" % (
                     cf.RESULT_NAMES.get(ret["result"], "result %d" % ret["result"]),
                     ret["count"], yuan(ret["balance"])),
                 "written by terminal %s at 20%02d-%02d-%02d %02d:%02d" % ((ret["terminal"],) + t)]
        return ok, lines

    def dump(self):
        self.open()
        lines = ["serial: %s (genuine)" % self.serial.hex()]
        got = self.issued()
        if got is None:
            return lines + ["blank card (unissued)"]
        param, purse = got
        card_type, meter, customer = cf.parse_param(param)
        lines += ["type: %s" % cf.TYPE_NAMES[card_type], "meter: %s" % meter,
                  "customer: %s" % customer,
                  "purse: %s yuan, purchase count %d, sale MAC %s" % (
                      yuan(purse[0]), purse[1],
                      "OK" if self.check_purse(param, purse) else "FORGED")]
        ret = self.returned()
        lines.append("return file: %s" % ("empty" if ret is None else ret))
        return lines


def _append_ledger(path, line):
    """The card holds the sale already: a ledger that cannot be written is
    said loudly, with the line to add by hand."""
    try:
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise ToolError("sale written to the card but NOT to ledger %s (%s): add this line "
                        "by hand: %s" % (path, e.strerror, line))


def _key(a):
    text = a.card_master_key
    if a.key_file:
        with open(a.key_file) as f:
            text = f.read().strip()
    if not text:
        raise ToolError("no card master key: give --key-file FILE or --card-master-key HEX")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 16:
        raise ToolError("the card master key must be 32 hex digits")
    return key


def _issue_meter(a):
    """A technician card has meter 000000000000; every other card needs one.
    -> what is wrong with the command line, or None."""
    if a.type == "technician":
        if a.meter not in (None, _NO_METER):
            return "a technician card has no meter (leave out --meter)"
        a.meter = _NO_METER
    elif a.meter is None:
        return "issue --type %s needs --meter (12 digits)" % a.type
    return None


def build_parser():
    p = argparse.ArgumentParser(prog="card_tool.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--card-master-key", metavar="HEX", help="MK_C, 32 hex digits")
    p.add_argument("--key-file", metavar="FILE", help="file holding MK_C as hex")
    p.add_argument("--reader", metavar="NAME", help="use the reader whose name contains NAME")
    p.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                   help="wait this long for a card to be inserted")
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("issue", help="issue a blank card to a customer and meter")
    i.add_argument("--type", choices=sorted(_TYPES), required=True)
    i.add_argument("--meter", type=digits12, help="12-digit meter number (not on a "
                   "technician card)")
    i.add_argument("--customer", type=digits12, required=True,
                   help="12-digit customer number (a technician card: the technician's id)")
    i.add_argument("--count", type=int, default=0, help="purchase count so far (reissue)")
    i.add_argument("--force", action="store_true", help="re-issue an issued card")
    s = sub.add_parser("sell", help="write a purchase onto the card (count + 1)")
    s.add_argument("--amount", type=parse_yuan, required=True, help="yuan, e.g. 100.00")
    s.add_argument("--force", action="store_true",
                   help="sell although the last purchase is unconfirmed")
    s.add_argument("--ledger", metavar="FILE", default=DEFAULT_LEDGER,
                   help="append the sale here for the head-end (default %(default)s)")
    sub.add_parser("status", help="did the last purchase reach the meter? (exit 1 if not)")
    sub.add_parser("dump", help="show every file and check the card")
    sub.add_parser("pin", help="set (or unblock) a technician card's PIN, read from stdin")
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    bad = _issue_meter(a) if a.cmd == "issue" else None
    if bad:
        print("card_tool: %s" % bad, file=sys.stderr)
        return 2
    card = None
    try:
        key = _key(a)
        card = PcscCard(a.reader, a.wait)
        office = Office(card, key)
        ok = True
        if a.cmd == "issue":
            lines = office.issue(_TYPES[a.type], a.meter, a.customer, a.count, a.force)
        elif a.cmd == "pin":
            lines = office.set_pin(sys.stdin.readline().strip())
        elif a.cmd == "sell":
            lines = office.sell(a.amount, a.force)
            _append_ledger(a.ledger, office.sale)
            lines.append("ledger: %s" % a.ledger)
        elif a.cmd == "status":
            ok, lines = office.status()
        else:
            lines = office.dump()
        print("\n".join(lines))
        return 0 if ok else 1
    except (ToolError, cf.CardDataError) as e:
        print("card_tool: %s" % e, file=sys.stderr)
        return 1
    finally:
        if card is not None:
            card.close()


if __name__ == "__main__":
    sys.exit(main())
