"""One report in, one outcome out: MAC and terminal checked (reportmac),
fields checked, then stored once (store). Anything refused raises an alarm
and is still an outcome: the MQTT worker acknowledges it (a bad report
redelivered forever would stop the queue behind it)."""
import json
import time

from headend.reportmac import BadReport

_BIG = 1 << 62  # fits a BIGINT
_LONG = 200
_KINDS = ("topup", "refusal", "technician", "alarm", "boot")
# the one kind-specific key kept in the `what` column
_WHAT = {"refusal": "screen", "technician": "action", "alarm": "alarm", "boot": "reason"}


def _int(rec, key, low=0, default=None):
    v = rec.get(key)
    if v is None:
        return default
    if not isinstance(v, int) or isinstance(v, bool) or not low <= v < _BIG:
        raise BadReport("malformed", "%r is not a whole number >= %d" % (key, low))
    return v


def _str(rec, key):
    v = rec.get(key)
    if v is None:
        return None
    # what either database refuses must be refused here, or it would stop the queue
    if not isinstance(v, str) or len(v) > _LONG or "\x00" in v or not _utf8(v):
        raise BadReport("malformed", "%r is not a short string" % key)
    return v


def _utf8(v):
    try:
        v.encode("utf-8")
        return True
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in the JSON)
        return False


def _parse(tid, body):
    try:
        rec = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadReport("malformed", "the body is not JSON")
    if not isinstance(rec, dict):
        raise BadReport("malformed", "the body is not a JSON object")
    if rec.get("t") != tid:
        raise BadReport("wrong_terminal", "body says terminal %r, topic says %s"
                        % (rec.get("t"), tid))
    return rec


def journal_row(tid, rec, body):
    kind = rec.get("kind")
    if kind not in _KINDS:
        raise BadReport("malformed", "kind %r is not one of %s" % (kind, ", ".join(_KINDS)))
    seq = _int(rec, "seq", 1)
    if seq is None:
        raise BadReport("malformed", "no 'seq'")
    relay = rec.get("relay_open")
    return {"terminal": tid, "seq": seq, "kind": kind, "time": _str(rec, "time"),
            "step": _str(rec, "step"), "meter": _str(rec, "meter"),
            "customer": _str(rec, "customer"), "card": _str(rec, "card"),
            "amount": _int(rec, "amount"), "count": _int(rec, "count"),
            "result": _str(rec, "result"), "what": _str(rec, _WHAT.get(kind, "")),
            "relay_open": None if relay is None else int(bool(relay)),
            "body": body.decode("utf-8")}


def heartbeat_row(tid, rec, body):
    meters = rec.get("meters", {})
    if not isinstance(meters, dict):
        raise BadReport("malformed", "'meters' is not an object")
    return {"terminal": tid, "boot": _int(rec, "boot", 0, 0), "beat": _int(rec, "beat", 0, 0),
            "time": _str(rec, "time"), "reported": _int(rec, "reported"),
            "pending": _int(rec, "pending"), "meters": json.dumps(meters, sort_keys=True),
            "body": body.decode("utf-8")}


class Ingest:
    """handle(topic, payload) -> 'stored' | 'duplicate' | 'conflict' | 'stale' |
    'refused:<alarm kind>'. Counts outcomes in `counts`."""

    def __init__(self, store, verifier, clock=time.time):
        self.store = store
        self.verifier = verifier
        self.clock = clock
        self.counts = {}

    def handle(self, topic, payload):
        return self.handle_batch([(topic, payload)])[0]

    def handle_batch(self, items):
        """Outcomes of (topic, payload) pairs, all in one transaction: one
        commit for the lot, so the caller acknowledges them together."""
        now = self.clock()
        with self.store.tx() as cur:
            outcomes = [self._one(cur, topic, payload, now) for topic, payload in items]
        for outcome in outcomes:
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
        return outcomes

    def _one(self, cur, topic, payload, now):
        try:
            tid, channel, body = self.verifier.check(topic, payload)
            rec = _parse(tid, body)
            row = (journal_row if channel == "journal" else heartbeat_row)(tid, rec, body)
            row.update(received=now, topic=topic, payload=payload)
            if channel == "journal":
                return self.store.put_record_in(cur, row)
            return self.store.put_heartbeat_in(cur, row)
        except BadReport as e:
            parts = topic.split("/")
            tid = parts[1] if len(parts) > 1 else None
            self.store.alarm_in(cur, now, tid, e.kind, str(e), topic, payload)
            return "refused:" + e.kind
