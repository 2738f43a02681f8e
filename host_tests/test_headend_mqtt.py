"""The head-end with real parts: Debian's mosquitto, `python -m headend
serve` as a process, simulated terminals publishing per docs/reporting.md.
A report arrives once with its MAC checked; a forged one is refused and
alarmed; a worker killed mid-store loses nothing; two workers on one shared
subscription and one PostgreSQL store every report once; 1,000 terminals
on loopback are all stored once (speed: tools/bench_headend.py)."""
import os
import re
import signal
import subprocess
import sys

import pytest

import fake_terminals as ft
from headend.store import Store
from headend_ctl import ROOT, Serve, mosquitto, new_pg_db, pg_cluster, wait_rows  # noqa: F401

TID = "000000000099"


def stored(url, sql):
    s = Store(url, create=False)
    try:
        return [tuple(r) for r in s.query(sql)]
    finally:
        s.close()


def cli(*args):
    p = subprocess.run([sys.executable, "-m", "headend"] + list(args), cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def handled(log):
    return int(re.search(r"stopped after (\d+) reports", log).group(1))


def test_a_report_arrives_once_with_its_mac_checked(mosquitto, tmp_path):  # noqa: F811
    db = str(tmp_path / "h.db")
    worker = Serve(mosquitto.url, db)
    try:
        t = ft.FakeTerminal(TID)
        msgs = [t.record("boot", reason="power_on", open=0)]
        msgs += t.topup("000000000001", "112233445566", "8800000000000042", 10000, 2)
        topic, payload = msgs[2]
        forged = (topic, payload.replace(b"10000", b"99999"))
        msgs += [msgs[2], forged, t.heartbeat({"000000000001": [10000, 2, False, True]})]
        ft.publish_all("127.0.0.1", mosquitto.port, msgs, connections=1)
        assert wait_rows(db, "SELECT COUNT(*) FROM alarms", 1) == 1
        assert wait_rows(db, "SELECT COUNT(*) FROM heartbeats", 1) == 1
    finally:
        log = worker.stop()
    assert stored(db, "SELECT seq, kind, step, amount FROM reports ORDER BY seq") == [
        (1, "boot", None, None), (2, "topup", "intent", 10000),
        (3, "topup", "result", 10000), (4, "topup", "done", 10000)]
    assert stored(db, "SELECT terminal, kind FROM alarms") == [(TID, "bad_mac")]
    assert "terminals/%s/journal: refused:bad_mac" % TID in log
    assert '"duplicate": 1' in log and '"stored": 5' in log, log


def test_a_worker_killed_mid_store_loses_nothing(mosquitto, tmp_path):  # noqa: F811
    db = str(tmp_path / "h.db")
    msgs = ft.load_reports(100, 3)  # 100 terminals, 1,100 reports
    journal = len(msgs) - 100
    worker = Serve(mosquitto.url, db)
    ft.publish_all("127.0.0.1", mosquitto.port, msgs)
    wait_rows(db, "SELECT COUNT(*) FROM reports", 50)
    os.kill(worker.proc.pid, signal.SIGKILL)  # between two reports, or in one
    worker.stop()
    again = Serve(mosquitto.url, db)  # the same session: the broker kept the rest
    try:
        assert wait_rows(db, "SELECT COUNT(*) FROM reports", journal) == journal
        assert wait_rows(db, "SELECT COUNT(*) FROM heartbeats", 100) == 100
    finally:
        again.stop()
    assert stored(db, "SELECT COUNT(DISTINCT terminal), COUNT(*) FROM reports") == \
        [(100, journal)]
    assert stored(db, "SELECT COUNT(*) FROM alarms") == [(0,)]


def test_two_workers_on_a_shared_subscription_store_each_report_once(
        mosquitto, pg_cluster):  # noqa: F811
    db = new_pg_db(pg_cluster)
    Store(db).close()  # tables made before both start
    workers = [Serve(mosquitto.url, db, client_id="headend-%d" % i) for i in (1, 2)]
    msgs = ft.load_reports(200, 1)  # 200 terminals: boot, a top-up, a heartbeat
    journal = len(msgs) - 200
    logs = []
    try:
        ft.publish_all("127.0.0.1", mosquitto.port, msgs)
        assert wait_rows(db, "SELECT COUNT(*) FROM reports", journal) == journal
        assert wait_rows(db, "SELECT COUNT(*) FROM heartbeats", 200) == 200
        ft.publish_all("127.0.0.1", mosquitto.port, msgs[:300], name="republish")
        # then a second heartbeat from each: queued behind the re-published
        # reports at whichever worker, so when all are in, all were handled
        later = [ft.FakeTerminal(ft.tid_of(i + 1)) for i in range(200)]
        for f in later:
            f.beat = 1
        ft.publish_all("127.0.0.1", mosquitto.port, [f.heartbeat() for f in later],
                       name="later")
        assert wait_rows(db, "SELECT COUNT(*) FROM heartbeats WHERE beat = 2", 200) == 200
        assert wait_rows(db, "SELECT COUNT(*) FROM reports", journal) == journal
    finally:
        logs = [w.stop() for w in workers]
    counts = [handled(log) for log in logs]
    assert all(counts) and sum(counts) == len(msgs) + 300 + 200, (counts, logs)
    assert stored(db, "SELECT COUNT(*), COUNT(DISTINCT terminal || '/' || seq) FROM reports") \
        == [(journal, journal)]
    assert stored(db, "SELECT COUNT(*) FROM alarms") == [(0,)]


@pytest.mark.slow
def test_a_thousand_terminals_on_loopback_are_stored_once(mosquitto, tmp_path):  # noqa: F811
    db = str(tmp_path / "h.db")
    worker = Serve(mosquitto.url, db)
    msgs = ft.load_reports(1000, 5)  # 1,000 terminals: 17,000 reports, stored while sent
    journal = len(msgs) - 1000
    try:
        ft.publish_all("127.0.0.1", mosquitto.port, msgs, connections=8)
        assert wait_rows(db, "SELECT COUNT(*) FROM reports", journal, timeout=600) == journal
        assert wait_rows(db, "SELECT COUNT(*) FROM heartbeats", 1000, timeout=600) == 1000
    finally:
        log = worker.stop()
    assert handled(log) == len(msgs)
    assert stored(db, "SELECT COUNT(DISTINCT terminal), MIN(seq), MAX(seq) FROM reports") == \
        [(1000, 1, 16)]
    assert stored(db, "SELECT COUNT(*) FROM alarms") == [(0,)]


def test_a_retired_worker_no_longer_takes_a_share(mosquitto, tmp_path):  # noqa: F811
    """A persistent session left offline stays in the share group: the
    broker queues its share for it. `headend retire` ends it."""
    db = str(tmp_path / "h.db")
    Serve(mosquitto.url, db, client_id="old").stop()
    rc, out, err = cli("retire", "--mqtt", mosquitto.url, "--client-id", "old")
    assert rc == 0 and "session old ended" in out, err
    worker = Serve(mosquitto.url, db, client_id="new")
    msgs = ft.load_reports(50, 1)
    try:
        ft.publish_all("127.0.0.1", mosquitto.port, msgs)
        assert wait_rows(db, "SELECT COUNT(*) FROM heartbeats", 50) == 50
        assert wait_rows(db, "SELECT COUNT(*) FROM reports", 200) == 200
    finally:
        worker.stop()
