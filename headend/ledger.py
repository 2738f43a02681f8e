"""The sales office's ledger: one JSON object a line, appended by
`tools/card_tool.py sell --ledger FILE` for every sale:

  {"card": "16 hex", "count": 3, "customer": "12 digits", "meter": "12 digits",
   "amount": 10000, "time": "2026-11-29T08:30:00Z"}

(amount in fen). A sale is (card, count): importing a ledger again, or a
longer copy of it, adds only the new lines."""
import calendar
import json
import time


class LedgerError(Exception):
    """A line the head-end will not import (names the file and line)."""


def _digits(v, n):
    return isinstance(v, str) and len(v) == n and v.isdigit()


def parse_line(text, where):
    try:
        s = json.loads(text)
    except ValueError:
        raise LedgerError("%s: not a JSON object" % where)
    if not isinstance(s, dict):
        raise LedgerError("%s: not a JSON object" % where)
    card = s.get("card")
    if not (isinstance(card, str) and len(card) == 16
            and all(c in "0123456789abcdef" for c in card)):
        raise LedgerError("%s: card %r is not 16 lowercase hex digits" % (where, card))
    for key in ("customer", "meter"):
        if not _digits(s.get(key), 12):
            raise LedgerError("%s: %s %r is not 12 digits" % (where, key, s.get(key)))
    for key, low in (("count", 1), ("amount", 1)):
        v = s.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise LedgerError("%s: %s %r is not a whole number >= %d" % (where, key, v, low))
    try:
        sold_at = calendar.timegm(time.strptime(s.get("time", ""), "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        raise LedgerError("%s: time %r is not YYYY-MM-DDThh:mm:ssZ" % (where, s.get("time")))
    return {"card": card, "count": s["count"], "customer": s["customer"], "meter": s["meter"],
            "amount": s["amount"], "sold": s["time"], "sold_at": float(sold_at),
            "where": where}


def read(path):
    """Every sale in the file, or LedgerError on the first bad line."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise LedgerError("cannot read ledger %s: %s" % (path, e))
    return [parse_line(t, "%s line %d" % (path, n)) for n, t in enumerate(lines, 1)
            if t.strip()]


def import_file(store, path):
    """(new, already known); nothing is imported if any line is bad."""
    return store.put_sales(read(path))


def sale_line(card, count, customer, meter, amount, when=None):
    """The line card_tool.py appends (`when`: seconds since the epoch)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
    return json.dumps({"card": card, "count": count, "customer": customer, "meter": meter,
                       "amount": amount, "time": stamp}, sort_keys=True)
