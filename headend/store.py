"""The head-end's tables, on SQLite (a path or sqlite:///path, the embedded
default) or PostgreSQL (postgresql://...): the SQL is written once with `?`
placeholders, turned into `%s` for psycopg.

Every (terminal, seq) is stored once: the primary key decides, so two workers
racing on one report (a redelivery) store it once. Every write is one
transaction; the MQTT worker acknowledges a report only after it returns."""
import hashlib
import sqlite3
from contextlib import contextmanager

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS reports (
        terminal TEXT NOT NULL, seq BIGINT NOT NULL, kind TEXT, time TEXT,
        step TEXT, meter TEXT, customer TEXT, card TEXT, amount BIGINT, count BIGINT,
        result TEXT, what TEXT, relay_open INTEGER, body TEXT NOT NULL,
        received DOUBLE PRECISION NOT NULL, PRIMARY KEY (terminal, seq))""",
    "CREATE INDEX IF NOT EXISTS reports_meter ON reports (meter, count)",
    """CREATE TABLE IF NOT EXISTS heartbeats (
        terminal TEXT PRIMARY KEY, boot BIGINT NOT NULL, beat BIGINT NOT NULL, time TEXT,
        reported BIGINT, pending BIGINT, meters TEXT, body TEXT NOT NULL,
        received DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS alarms (
        digest TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL, terminal TEXT,
        kind TEXT NOT NULL, detail TEXT, topic TEXT, payload TEXT)""",
    """CREATE TABLE IF NOT EXISTS sales (
        card TEXT NOT NULL, count BIGINT NOT NULL, customer TEXT NOT NULL,
        meter TEXT NOT NULL, amount BIGINT NOT NULL, sold TEXT NOT NULL,
        sold_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (card, count))""",
    "CREATE INDEX IF NOT EXISTS sales_meter ON sales (meter, count)",
)

_REPORT_COLS = ("terminal", "seq", "kind", "time", "step", "meter", "customer", "card",
                "amount", "count", "result", "what", "relay_open", "body", "received")
_INSERT_REPORT = "INSERT INTO reports (%s) VALUES (%s) ON CONFLICT (terminal, seq) DO NOTHING" % (
    ", ".join(_REPORT_COLS), ", ".join("?" * len(_REPORT_COLS)))
_HB_COLS = ("terminal", "boot", "beat", "time", "reported", "pending", "meters", "body",
            "received")
_UPSERT_HEARTBEAT = (
    "INSERT INTO heartbeats (%s) VALUES (%s) ON CONFLICT (terminal) DO UPDATE SET %s"
    " WHERE (excluded.boot, excluded.beat) > (heartbeats.boot, heartbeats.beat)" % (
        ", ".join(_HB_COLS), ", ".join("?" * len(_HB_COLS)),
        ", ".join("%s = excluded.%s" % (c, c) for c in _HB_COLS[1:])))
_INSERT_ALARM = ("INSERT INTO alarms (digest, at, terminal, kind, detail, topic, payload)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING")
_INSERT_SALE = ("INSERT INTO sales (card, count, customer, meter, amount, sold, sold_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (card, count) DO NOTHING")


class StoreError(Exception):
    """A database the head-end cannot use (one line for the operator)."""


def is_postgres(url):
    return url.startswith(("postgresql://", "postgres://"))


class Store:
    def __init__(self, url, create=True):
        self.url = url
        self.pg = is_postgres(url)
        try:
            if self.pg:
                import psycopg
                self.conn = psycopg.connect(url, autocommit=True)
            else:
                path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
                self.conn = sqlite3.connect(path, timeout=60, isolation_level=None,
                                            check_same_thread=False)
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=FULL")
        except Exception as e:  # noqa: BLE001 - either driver's error, said in one line
            raise StoreError("cannot open database %s: %s" % (_safe(url), _first_line(e)))
        if create:
            self._create()

    def _create(self):
        with self.tx() as cur:
            if self.pg:  # two workers starting together must not race on CREATE
                cur.execute("SELECT pg_advisory_xact_lock(6457)")
            for sql in _SCHEMA:
                cur.execute(sql)

    def close(self):
        self.conn.close()

    def _sql(self, sql):
        return sql.replace("?", "%s") if self.pg else sql

    @contextmanager
    def tx(self):
        """One transaction; its cursor's execute takes `?` SQL."""
        cur = _Cursor(self.conn.cursor(), self._sql)
        if self.pg:
            with self.conn.transaction():
                yield cur
            return
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def query(self, sql, args=()):
        """Rows of a read; a database error is a StoreError (one line)."""
        cur = self.conn.cursor()
        try:
            cur.execute(self._sql(sql), args)
            return cur.fetchall()
        except Exception as e:  # noqa: BLE001 - sqlite3.Error or psycopg.Error
            raise StoreError("database %s: %s" % (_safe(self.url), _first_line(e)))
        finally:
            cur.close()

    # -- writes: put_x in a transaction of its own, put_x_in in the caller's -----------
    def put_record(self, row):
        with self.tx() as cur:
            return self.put_record_in(cur, row)

    def put_heartbeat(self, row):
        with self.tx() as cur:
            return self.put_heartbeat_in(cur, row)

    def put_record_in(self, cur, row):
        """Store a journal record (a dict of _REPORT_COLS). 'stored', 'duplicate'
        (same body: dropped) or 'conflict' (another body under that seq: alarmed)."""
        cur.execute(_INSERT_REPORT, tuple(row.get(c) for c in _REPORT_COLS))
        if cur.rowcount == 1:
            return "stored"
        cur.execute("SELECT body FROM reports WHERE terminal = ? AND seq = ?",
                    (row["terminal"], row["seq"]))
        if cur.fetchone()[0] == row["body"]:
            return "duplicate"
        self.alarm_in(cur, row["received"], row["terminal"], "conflict",
                    "seq %d: another body under a stored sequence number (replay or "
                    "forgery)" % row["seq"], row["topic"], row["payload"])
        return "conflict"

    def put_heartbeat_in(self, cur, row):
        """'stored', 'duplicate', 'stale' (older than the one kept: dropped) or
        'conflict' (another body under the kept (boot, beat): alarmed)."""
        cur.execute(_UPSERT_HEARTBEAT, tuple(row.get(c) for c in _HB_COLS))
        if cur.rowcount == 1:
            return "stored"
        cur.execute("SELECT boot, beat, body FROM heartbeats WHERE terminal = ?",
                    (row["terminal"],))
        boot, beat, body = cur.fetchone()
        if (boot, beat) != (row["boot"], row["beat"]):
            # older: a replay, or one another worker took late (a backlog shared
            # round robin): dropped either way, never worth an operator's time
            return "stale"
        if body == row["body"]:
            return "duplicate"
        self.alarm_in(cur, row["received"], row["terminal"], "heartbeat_conflict",
                      "another heartbeat under (boot %d, beat %d)" % (boot, beat),
                      row["topic"], row["payload"])
        return "conflict"

    def alarm(self, at, terminal, kind, detail, topic, payload):
        with self.tx() as cur:
            self.alarm_in(cur, at, terminal, kind, detail, topic, payload)

    @staticmethod
    def alarm_in(cur, at, terminal, kind, detail, topic, payload):
        # keyed by what was received: a redelivered bad report is one alarm
        text = bytes(payload).decode("utf-8", "replace")[:1000].replace("\x00", "\\x00")
        digest = hashlib.sha256(("%s\0%s\0" % (kind, topic)).encode() + bytes(payload))
        cur.execute(_INSERT_ALARM, (digest.hexdigest(), at, terminal, kind, detail[:300], topic,
                                    text))

    def put_sales(self, sales):
        """Insert ledger rows; (new, known). A row that differs from the one
        stored under its (card, count) raises StoreError and stores nothing."""
        new = 0
        with self.tx() as cur:
            for s in sales:
                cur.execute(_INSERT_SALE, (s["card"], s["count"], s["customer"], s["meter"],
                                           s["amount"], s["sold"], s["sold_at"]))
                if cur.rowcount == 1:
                    new += 1
                    continue
                cur.execute("SELECT customer, meter, amount FROM sales WHERE card = ? AND "
                            "count = ?", (s["card"], s["count"]))
                if tuple(cur.fetchone()) != (s["customer"], s["meter"], s["amount"]):
                    raise StoreError("%s: card %s purchase %d differs from the sale imported "
                                     "before" % (s["where"], s["card"], s["count"]))
        return new, len(sales) - new


class _Cursor:
    def __init__(self, cur, sql):
        self._cur = cur
        self._sql = sql

    def execute(self, sql, args=()):
        self._cur.execute(self._sql(sql), args)

    def fetchone(self):
        return self._cur.fetchone()

    @property
    def rowcount(self):
        return self._cur.rowcount


def _first_line(e):
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _safe(url):
    """The URL without a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return scheme + "://" + rest.split("@", 1)[1]
    return url
