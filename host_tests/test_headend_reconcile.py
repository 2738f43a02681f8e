"""Reconciliation from a scripted ledger and journals (headend_script.py):
each category the issue lists, on SQLite and PostgreSQL, through the CLI
too; the ledger imported idempotently; bad values are one line and exit 2."""
import json
import os
import subprocess
import sys

import pytest

from headend import ledger, reconcile
from headend.store import Store
from headend_ctl import ROOT, db_url, pg_cluster  # noqa: F401 - fixtures
from headend_script import A, B, C, card, cust, m, scripted


def cli(*args):
    p = subprocess.run([sys.executable, "-m", "headend"] + list(args), cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def day(db_url, tmp_path):  # noqa: F811
    s = Store(db_url)
    now = scripted(s, str(tmp_path / "ledger.jsonl"))
    yield s, now
    s.close()


def test_every_category(day):
    store, now = day
    rep = reconcile.reconcile(store, now=now, days=3)
    key = lambda rows, *ks: sorted(tuple(r[k] for k in ks) for r in rows)  # noqa: E731
    assert key(rep["good"], "card", "count", "terminal") == [(card(1), 2, A), (card(5), 7, A)]
    assert key(rep["sold_not_credited"], "customer", "meter", "count", "days") == \
        [(cust(2), m(2), 3, 10)]
    assert key(rep["waiting"], "card", "count") == [(card(3), 4)]
    assert key(rep["credited_not_sold"], "terminal", "meter", "count", "amount") == \
        [(A, m(4), 9, 3000)]
    assert [t["what"] for t in rep["credited_twice"]] == [
        "meter %s purchase 7 credited 2 times" % m(5),
        "card %s purchase 7 credited at 2 terminals" % card(5)]
    assert [t["terminal"] for t in rep["silent_terminals"]] == [C]
    assert key(rep["meters_silent"], "terminal", "meter") == [(A, m(7)), (B, m(12))]
    assert key(rep["relays_tripped"], "terminal", "meter") == [(A, m(8)), (B, m(13))]
    assert key(rep["awaiting_registration"], "meter", "reregister") == \
        [(m(10), "meter_replaced")]  # m(11) was re-registered by the technician
    assert key(rep["awaiting_opening"], "meter") == [(m(9),), (m(14),)]
    assert [(g["terminal"], g["first"], g["last"]) for g in rep["gaps"]] == [(B, 10, 11)]
    kinds = sorted(a["kind"] for a in rep["alarms"])
    assert kinds == ["bad_mac", "credited_not_sold", "credited_twice", "credited_twice",
                     "sequence_gap", "terminal:meter_silent", "terminal:relay_open"]
    per_customer = {c["customer"]: c for c in rep["customers"]}
    assert per_customer[cust(1)]["credited_fen"] == 10000
    assert per_customer[cust(2)]["late"] == 1 and per_customer[cust(2)]["credited"] == 0
    per_terminal = {t["terminal"]: t for t in rep["terminals"]}
    assert per_terminal[A]["credited"] == 3 and per_terminal[A]["credited_fen"] == 16000
    assert per_terminal[A]["heartbeat"]["meters"][m(7)] == "silent"
    assert per_terminal[A]["alarms"] == 1  # the forged report under its topic
    # N days is the operator's: after 12 days nothing sold is merely late
    assert reconcile.reconcile(store, now=now, days=12)["sold_not_credited"] == []


def test_cli_report_and_ledger_import(db_url, tmp_path):  # noqa: F811
    path = str(tmp_path / "ledger.jsonl")
    s = Store(db_url)
    scripted(s, path)
    s.close()
    rc, out, err = cli("import-ledger", path, "--db", db_url)
    assert (rc, out.strip()) == (0, "imported 0 new sales from %s (4 already known)" % path), err
    with open(path, "a") as f:  # the office sells on; the longer ledger imports the new line
        f.write(ledger.sale_line(card(6), 1, cust(6), m(6), 700) + "\n")
    rc, out, err = cli("import-ledger", path, "--db", db_url)
    assert (rc, out.strip()) == (0, "imported 1 new sales from %s (4 already known)" % path), err
    rc, out, err = cli("report", "--db", db_url)
    assert rc == 0, err
    for line in ("!! Credited twice (must never happen): 2",
                 "!! Credited but never sold (forged card or fraud): 1",
                 "!! Sold but not credited after 3 days (call the customer): 1",
                 "!! Terminals silent for more than an hour: 1",
                 "!! Journal records missing (sequence gaps): 1",
                 "!! Meters not answering: 2", "!! Tripped relays", "re-registration",
                 "!! Meters awaiting their opening card (at the meter): 2",
                 "Sold, not yet credited (within 3 days): 2", "Sold and credited: 2",
                 "Per customer: 5", "Per terminal: last report: 3"):
        assert line in out, out
    assert "%s  %s" % (cust(2), m(2)) in out
    rc, out, err = cli("report", "--db", db_url, "--json", "--days", "30")
    assert rc == 0 and json.loads(out)["summary"]["sold_not_credited"] == 0, err


def test_a_bad_ledger_line_imports_nothing(tmp_path):
    db = str(tmp_path / "h.db")
    path = str(tmp_path / "ledger.jsonl")
    good = ledger.sale_line(card(1), 2, cust(1), m(1), 10000)
    for bad, says in (('{"card": "zz"}', "card 'zz' is not 16 lowercase hex digits"),
                      ("not json", "not a JSON object"),
                      (good.replace('"amount": 10000', '"amount": -1'), "amount -1"),
                      (good.replace("Z", ""), "is not YYYY-MM-DDThh:mm:ssZ")):
        with open(path, "w") as f:
            f.write(good + "\n" + bad + "\n")
        rc, out, err = cli("import-ledger", path, "--db", db)
        assert rc == 2 and err.count("\n") == 1 and "line 2: " in err and says in err, err
    rc, out, err = cli("report", "--db", db)
    assert "Per customer: 0" in out
    with open(path, "w") as f:  # the same sale, another amount: refused
        f.write(good + "\n")
    assert cli("import-ledger", path, "--db", db)[0] == 0
    with open(path, "w") as f:
        f.write(good.replace("10000", "20000") + "\n")
    rc, out, err = cli("import-ledger", path, "--db", db)
    assert rc == 2 and "differs from the sale imported before" in err, err


@pytest.mark.parametrize("args, says", [
    (["serve", "--mqtt", "udp:x:1", "--db", "x.db", "--dev"], "--mqtt wants tcp:HOST:PORT"),
    (["serve", "--mqtt", "tcp:127.0.0.1:1", "--db", "x.db"], "give --mk-r-file FILE"),
    (["serve", "--mqtt", "tcp:127.0.0.1:1", "--db", "x.db", "--mk-r-file", "/nonexistent"],
     "cannot read --mk-r-file /nonexistent"),
    (["serve", "--mqtt", "tcp:127.0.0.1:1", "--db", "x.db", "--dev", "--http", "70000"],
     "want a port number"),
    (["report", "--db", "/nonexistent/dir/h.db"], "cannot open database /nonexistent/dir/h.db"),
    (["report", "--db", "postgresql://u@127.0.0.1:1/x"], "cannot open database"),
    (["report", "--db", "h.db", "--days", "-1"], "want a number of days"),
    (["import-ledger", "/nonexistent.jsonl", "--db", ":memory:"], "cannot read ledger"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_values_are_one_line_and_exit_2(args, says, tmp_path):
    p = subprocess.run([sys.executable, "-m", "headend"] + args, cwd=str(tmp_path),
                       env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and says in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_a_bad_mk_r_file_is_refused(tmp_path):
    key = tmp_path / "mkr.hex"
    key.write_text("00112233")
    rc, _out, err = cli("serve", "--mqtt", "tcp:127.0.0.1:1", "--db", str(tmp_path / "h.db"),
                       "--mk-r-file", str(key))
    assert rc == 2 and "must hold MK_R as 32 hex digits" in err and "00112233" not in err, err


def test_records_the_broker_acknowledged_but_never_arrived_are_a_gap(tmp_path):
    """The last records lost leave no hole below them: the heartbeat's
    `reported` (what the broker acknowledged) shows them."""
    import fake_terminals as ft
    from headend.ingest import Ingest
    from headend.reportmac import Verifier
    s = Store(str(tmp_path / "h.db"))
    ing = Ingest(s, Verifier(ft.DEV_MK_R))
    t = ft.FakeTerminal("000000000077")
    ing.handle(*t.record("boot"))
    t.record("boot")
    t.record("boot")  # seq 2 and 3 published, acknowledged, never stored
    ing.handle(*t.heartbeat())
    gaps = reconcile.reconcile(s)["gaps"]
    s.close()
    assert [(g["terminal"], g["first"], g["last"]) for g in gaps] == [("000000000077", 2, 3)]
    assert "not stored here" in gaps[0]["note"]
