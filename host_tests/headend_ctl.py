"""Fixtures for the head-end tests: a database of each kind (a SQLite file;
a fresh database in one throwaway PostgreSQL cluster per test module), a
mosquitto, a head-end worker as a process, and the simulated terminals."""
import os
import subprocess
import sys
import threading
import uuid

import pytest

import headend_rig
import procs
from headend.store import Store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV_MK_R = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")


@pytest.fixture(scope="module")
def pg_cluster():
    why = headend_rig.postgres_missing()
    if why:
        pytest.skip(why + ": make setup installs debian-packages.txt")
    pg = headend_rig.Postgres()
    yield pg
    pg.stop()


def new_pg_db(cluster):
    import psycopg
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(cluster.url, autocommit=True) as c:
        c.execute("CREATE DATABASE " + name)
    return cluster.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database URL of each kind."""
    if request.param == "sqlite":
        return str(tmp_path / "headend.db")
    return new_pg_db(request.getfixturevalue("pg_cluster"))


@pytest.fixture
def mosquitto():
    m = headend_rig.Mosquitto()
    yield m
    m.stop()


class Serve:
    """`python -m headend serve` as a process; its stderr lines collected."""

    def __init__(self, mqtt, db, client_id="headend-1", http=None, extra=()):
        args = [sys.executable, "-m", "headend", "serve", "--mqtt", mqtt, "--db", db, "--dev",
                "--client-id", client_id] + (["--http", str(http)] if http else []) + list(extra)
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for("subscribed to")

    def _read(self):
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.lines.append(None)
            self._cond.notify_all()

    def wait_for(self, text, timeout=60):
        with self._cond:
            ok = self._cond.wait_for(lambda: any(line is None or text in line
                                                 for line in self.lines), timeout)
            assert ok and None not in self.lines, "no %r from the head-end: %s" % (
                text, self.lines)

    def stop(self):
        procs.stop(self.proc)
        with self._cond:
            self._cond.wait_for(lambda: None in self.lines, 10)
        return "\n".join(line for line in self.lines if line is not None)


def wait_rows(url, sql, want, timeout=120):
    """Poll the database until `sql`'s single value reaches `want` (a count
    growing as reports arrive); return the last value seen."""
    import time
    deadline = time.monotonic() + timeout
    s = Store(url, create=False)
    try:
        while True:
            got = s.query(sql)[0][0]
            if got >= want or time.monotonic() > deadline:
                return got
            time.sleep(0.1)
    finally:
        s.close()
