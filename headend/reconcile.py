"""Sales against credits, per customer and per terminal, and everything an
operator must act on. A sale (card, count, meter, amount) is credited when
some terminal journalled a top-up result `credited` or `already` for that
meter, count and amount (docs/reporting.md)."""
import json
import time

DAY = 86400
SILENT_AFTER = 3600
_LANDED = "r.kind = 'topup' AND r.step = 'result' AND r.result IN ('credited', 'already')"
_CREDITED = "kind = 'topup' AND step = 'result' AND result = 'credited'"
# refusal screens that mean a meter waits for a technician, or for its opening card
_REREGISTER = ("meter_replaced", "meter_auth_failed")
_OPENING = ("meter_not_opened", "opening_card")


def reconcile(store, now=None, days=3):
    now = time.time() if now is None else now
    out = {"now": now, "days": days}
    _sales(store, now, days, out)
    _credits(store, out)
    _terminals(store, now, out)
    _meters(store, out)
    out["alarms"] = _alarms(store, out)
    out["summary"] = {k: len(v) for k, v in out.items() if isinstance(v, list)}
    return out


def _sales(store, now, days, out):
    rows = store.query(
        "SELECT s.card, s.count, s.customer, s.meter, s.amount, s.sold, s.sold_at,"
        " (SELECT MIN(r.terminal) FROM reports r WHERE " + _LANDED +
        " AND r.meter = s.meter AND r.count = s.count AND r.amount = s.amount)"
        " FROM sales s ORDER BY s.sold_at, s.card, s.count")
    good, waiting, late, customers = [], [], [], {}
    for card, count, customer, meter, amount, sold, sold_at, terminal in rows:
        sale = {"card": card, "count": count, "customer": customer, "meter": meter,
                "amount": amount, "sold": sold, "terminal": terminal}
        c = customers.setdefault(customer, {"customer": customer, "sold": 0, "sold_fen": 0,
                                            "credited": 0, "credited_fen": 0, "late": 0})
        c["sold"] += 1
        c["sold_fen"] += amount
        if terminal is not None:
            good.append(sale)
            c["credited"] += 1
            c["credited_fen"] += amount
        elif now - sold_at > days * DAY:
            sale["days"] = int((now - sold_at) // DAY)
            late.append(sale)
            c["late"] += 1
        else:
            waiting.append(sale)
    out.update(good=good, waiting=waiting, sold_not_credited=late,
               customers=[customers[k] for k in sorted(customers)])


def _credits(store, out):
    cols = ("terminal", "seq", "meter", "customer", "card", "count", "amount", "time")
    rows = store.query(
        "SELECT terminal, seq, meter, customer, card, count, amount, time FROM reports r"
        " WHERE " + _CREDITED + " AND NOT EXISTS (SELECT 1 FROM sales s WHERE"
        " s.meter = r.meter AND s.count = r.count AND s.amount = r.amount)"
        " ORDER BY terminal, seq")
    out["credited_not_sold"] = [dict(zip(cols, r)) for r in rows]
    twice = []
    for meter, count, n, t1, t2 in store.query(
            "SELECT meter, count, COUNT(*), MIN(terminal), MAX(terminal) FROM reports"
            " WHERE " + _CREDITED + " GROUP BY meter, count HAVING COUNT(*) > 1"
            " ORDER BY 1, 2"):
        twice.append({"what": "meter %s purchase %d credited %d times" % (meter, count, n),
                      "meter": meter, "count": count, "terminals": sorted({t1, t2})})
    for card, count, n, t1, t2 in store.query(
            "SELECT card, count, COUNT(DISTINCT terminal), MIN(terminal), MAX(terminal)"
            " FROM reports WHERE " + _CREDITED + " GROUP BY card, count"
            " HAVING COUNT(DISTINCT terminal) > 1 ORDER BY 1, 2"):
        twice.append({"what": "card %s purchase %d credited at %d terminals" % (card, count, n),
                      "card": card, "count": count, "terminals": [t1, t2]})
    out["credited_twice"] = twice


def _terminals(store, now, out):
    terms = {}
    for tid, n, top, low, credited, fen, last in store.query(
            "SELECT terminal, COUNT(*), MAX(seq), MIN(seq),"
            " CAST(SUM(CASE WHEN " + _CREDITED + " THEN 1 ELSE 0 END) AS BIGINT),"
            " CAST(SUM(CASE WHEN " + _CREDITED + " THEN amount ELSE 0 END) AS BIGINT),"
            " MAX(received)"
            " FROM reports GROUP BY terminal"):
        terms[tid] = {"terminal": tid, "reports": n, "seq": top, "missing": top - n,
                      "low": low, "credited": credited, "credited_fen": fen or 0,
                      "last_seen": last, "heartbeat": None, "alarms": 0}
    for tid, seq, kind, step, when in store.query(
            "SELECT r.terminal, r.seq, r.kind, r.step, r.time FROM reports r WHERE r.seq ="
            " (SELECT MAX(q.seq) FROM reports q WHERE q.terminal = r.terminal)"):
        terms[tid]["last"] = "seq %d %s%s at %s" % (seq, kind, "/" + step if step else "", when)
    for tid, boot, beat, htime, reported, pending, meters, received in store.query(
            "SELECT terminal, boot, beat, time, reported, pending, meters, received"
            " FROM heartbeats"):
        t = terms.setdefault(tid, {"terminal": tid, "reports": 0, "seq": 0, "missing": 0,
                                   "low": 1, "credited": 0, "credited_fen": 0,
                                   "last_seen": received, "alarms": 0, "last": None})
        t["last_seen"] = max(t["last_seen"], received)
        t["heartbeat"] = {"boot": boot, "beat": beat, "time": htime, "reported": reported,
                          "pending": pending, "meters": json.loads(meters)}
    for tid, n in store.query("SELECT terminal, COUNT(*) FROM alarms GROUP BY terminal"):
        if tid in terms:
            terms[tid]["alarms"] = n
    gaps = []
    for tid, seq in store.query(
            "SELECT r.terminal, r.seq FROM reports r WHERE NOT EXISTS (SELECT 1 FROM reports q"
            " WHERE q.terminal = r.terminal AND q.seq = r.seq + 1) AND r.seq < (SELECT MAX(m.seq)"
            " FROM reports m WHERE m.terminal = r.terminal) ORDER BY r.terminal, r.seq"):
        nxt = store.query("SELECT MIN(seq) FROM reports WHERE terminal = ? AND seq > ?",
                          (tid, seq))[0][0]
        gaps.append({"terminal": tid, "first": seq + 1, "last": nxt - 1})
    silent = []
    for tid in sorted(terms):
        t = terms[tid]
        if t["low"] and t["low"] > 1:
            gaps.append({"terminal": tid, "first": 1, "last": t["low"] - 1})
        hb = t["heartbeat"]
        if hb and hb["reported"] and hb["reported"] > t["seq"]:
            gaps.append({"terminal": tid, "first": t["seq"] + 1, "last": hb["reported"],
                         "note": "acknowledged by the broker, not stored here (yet)"})
        t["silent_s"] = int(now - t["last_seen"])
        if t["silent_s"] > SILENT_AFTER:
            silent.append({"terminal": tid, "last_seen": t["last_seen"],
                           "silent_min": t["silent_s"] // 60})
    out["terminals"] = [terms[k] for k in sorted(terms)]
    out["gaps"] = sorted(gaps, key=lambda g: (g["terminal"], g["first"]))
    out["silent_terminals"] = silent


def _meters(store, out):
    """Each meter's state from its journal events in order, then the newest poll."""
    state = {}

    def get(tid, meter):
        return state.setdefault((tid, meter), {"terminal": tid, "meter": meter, "silent": False,
                                               "relay_open": False, "reregister": None,
                                               "opening": None})
    for tid, kind, meter, what, body in store.query(
            "SELECT terminal, kind, meter, what, body FROM reports WHERE meter IS NOT NULL AND"
            " kind IN ('alarm', 'refusal', 'technician') ORDER BY terminal, seq"):
        m = get(tid, meter)
        if kind == "alarm" and what in ("meter_silent", "meter_back"):
            m["silent"] = what == "meter_silent"
        elif kind == "alarm" and what == "relay_open":
            m["relay_open"] = True
        elif kind == "refusal" and what in _REREGISTER:
            m["reregister"] = what
        elif kind == "refusal" and what in _OPENING:
            m["opening"] = what
        elif kind == "technician" and what == "registered":
            m["reregister"] = None
            old = json.loads(body).get("old_meter")
            if (tid, old) in state:
                state[(tid, old)]["reregister"] = None
    for t in out["terminals"]:
        hb = t["heartbeat"]
        for meter, poll in sorted(((hb or {}).get("meters") or {}).items()):
            m = get(t["terminal"], meter)
            if poll == "silent":
                m["silent"] = True
            elif isinstance(poll, list) and len(poll) >= 4:
                m["silent"] = False
                m["relay_open"] = bool(poll[2])
                m["opening"] = None if poll[3] else "not opened (poll)"
    ms = [state[k] for k in sorted(state)]
    out["meters_silent"] = [m for m in ms if m["silent"]]
    out["relays_tripped"] = [m for m in ms if m["relay_open"]]
    out["awaiting_registration"] = [m for m in ms if m["reregister"]]
    out["awaiting_opening"] = [m for m in ms if m["opening"]]


def _alarms(store, out):
    """Everything alarmed: refused reports, the terminals' own alarm records,
    and what reconciliation found."""
    alarms = [{"at": at, "terminal": tid, "kind": kind, "detail": detail}
              for at, tid, kind, detail in store.query(
                  "SELECT at, terminal, kind, detail FROM alarms ORDER BY at, kind")]
    for tid, seq, what, t, meter, body in store.query(
            "SELECT terminal, seq, what, time, meter, body FROM reports WHERE kind = 'alarm'"
            " ORDER BY terminal, seq"):
        detail = json.loads(body).get("detail", "")
        alarms.append({"at": None, "terminal": tid, "kind": "terminal:%s" % what,
                       "detail": "seq %d at %s meter %s %s" % (seq, t, meter or "-", detail)})
    for c in out["credited_not_sold"]:
        alarms.append({"at": None, "terminal": c["terminal"], "kind": "credited_not_sold",
                       "detail": "meter %s purchase %d (%d fen, card %s) has no sale" % (
                           c["meter"], c["count"], c["amount"], c["card"])})
    for c in out["credited_twice"]:
        alarms.append({"at": None, "terminal": ",".join(c["terminals"]),
                       "kind": "credited_twice", "detail": c["what"]})
    for g in out["gaps"]:
        alarms.append({"at": None, "terminal": g["terminal"], "kind": "sequence_gap",
                       "detail": "records %d..%d missing%s" % (
                           g["first"], g["last"], (": " + g["note"]) if "note" in g else "")})
    return alarms
