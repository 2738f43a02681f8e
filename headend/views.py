"""What the operator sees, once for the CLI (text) and the web page (HTML):
the reconciliation's sections in order, each with its columns."""
import html
import time


def yuan(fen):
    if fen is None:
        return ""
    return "%s%d.%02d" % ("-" if fen < 0 else "", abs(fen) // 100, abs(fen) % 100)


def _when(t):
    return "" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def _hb(t):
    hb = t["heartbeat"]
    if not hb:
        return "none"
    return "boot %d beat %d at %s, reported %s, pending %s, %d meters" % (
        hb["boot"], hb["beat"], hb["time"], hb["reported"], hb["pending"], len(hb["meters"]))


_SALE = (("card", "card"), ("customer", "customer"), ("meter", "meter"), ("count", "count"),
         ("yuan", lambda r: yuan(r["amount"])), ("sold", "sold"))
_METER = (("terminal", "terminal"), ("meter", "meter"))

# (key, title, alarm?, columns: (heading, key or function))
SECTIONS = (
    ("alarms", "Alarms", True,
     (("kind", "kind"), ("terminal", "terminal"), ("detail", "detail"),
      ("raised", lambda r: _when(r["at"])))),
    ("credited_twice", "Credited twice (must never happen)", True,
     (("what", "what"), ("terminals", lambda r: ", ".join(r["terminals"])))),
    ("credited_not_sold", "Credited but never sold (forged card or fraud)", True,
     (("terminal", "terminal"), ("seq", "seq"), ("meter", "meter"), ("customer", "customer"),
      ("card", "card"), ("count", "count"), ("yuan", lambda r: yuan(r["amount"])),
      ("time", "time"))),
    ("sold_not_credited", "Sold but not credited after {days} days (call the customer)", True,
     _SALE + (("days", "days"),)),
    ("silent_terminals", "Terminals silent for more than an hour", True,
     (("terminal", "terminal"), ("last seen", lambda r: _when(r["last_seen"])),
      ("minutes", "silent_min"))),
    ("gaps", "Journal records missing (sequence gaps)", True,
     (("terminal", "terminal"), ("first", "first"), ("last", "last"),
      ("note", lambda r: r.get("note", "")))),
    ("meters_silent", "Meters not answering", True, _METER),
    ("relays_tripped", "Tripped relays (credit the meter, then the card at the meter)", True,
     _METER),
    ("awaiting_registration", "Meters awaiting re-registration (send a technician)", True,
     _METER + (("why", "reregister"),)),
    ("awaiting_opening", "Meters awaiting their opening card (at the meter)", True,
     _METER + (("why", "opening"),)),
    ("waiting", "Sold, not yet credited (within {days} days)", False,
     _SALE),
    ("good", "Sold and credited", False, _SALE + (("terminal", "terminal"),)),
    ("customers", "Per customer", False,
     (("customer", "customer"), ("sold", "sold"), ("sold yuan", lambda r: yuan(r["sold_fen"])),
      ("credited", "credited"), ("credited yuan", lambda r: yuan(r["credited_fen"])),
      ("late", "late"))),
    ("terminals", "Per terminal: last report", False,
     (("terminal", "terminal"), ("last seen", lambda r: _when(r["last_seen"])),
      ("reports", "reports"), ("last record", "last"), ("credited", "credited"),
      ("credited yuan", lambda r: yuan(r["credited_fen"])), ("alarms", "alarms"),
      ("heartbeat", _hb))),
)


def _cell(row, how):
    v = how(row) if callable(how) else row.get(how)
    return "" if v is None else str(v)


def _title(title, rep):
    return title.format(days=rep["days"])


def text(rep):
    out = ["Head-end reconciliation at %s UTC" % _when(rep["now"])]
    for key, title, alarm, cols in SECTIONS:
        rows = rep[key]
        mark = "!! " if alarm and rows else ""
        out.append("")
        out.append("%s%s: %d" % (mark, _title(title, rep), len(rows)))
        if not rows:
            continue
        table = [[h for h, _ in cols]] + [[_cell(r, how) for _, how in cols] for r in rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
        for line in table:
            out.append("  " + "  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
    return "\n".join(out) + "\n"


_STYLE = """body{font-family:sans-serif;margin:1em}
table{border-collapse:collapse;margin:.3em 0 1em}
td,th{border:1px solid #bbb;padding:2px 6px;font-size:13px;text-align:left}
th{background:#eee}h2{font-size:16px;margin:.8em 0 .2em}.alarm{color:#b00}
.ok{color:#070}.n{font-weight:normal;color:#555}"""


def page(rep, refresh_s=30):
    e = html.escape
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
           "<meta http-equiv='refresh' content='%d'>" % refresh_s,
           "<title>Head-end</title><style>%s</style></head><body>" % _STYLE,
           "<h1>Head-end: reconciliation and alarms</h1>",
           "<p>At %s UTC. <a href='/report.json'>JSON</a></p>" % e(_when(rep["now"]))]
    for key, title, alarm, cols in SECTIONS:
        rows = rep[key]
        cls = "alarm" if alarm and rows else ("ok" if alarm else "")
        out.append("<h2 id='%s' class='%s'>%s <span class='n'>(%d)</span></h2>"
                   % (key, cls, e(_title(title, rep)), len(rows)))
        if not rows:
            continue
        out.append("<table><tr>%s</tr>" % "".join("<th>%s</th>" % e(h) for h, _ in cols))
        for r in rows:
            out.append("<tr>%s</tr>" % "".join("<td>%s</td>" % e(_cell(r, how))
                                                for _, how in cols))
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)
