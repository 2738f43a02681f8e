#!/usr/bin/env python3
"""Reports per second the head-end stores: SQLite and PostgreSQL, one and two
workers on the shared subscription, against Debian's mosquitto on loopback.

The reports are queued first: the workers' persistent sessions subscribe,
stop, the simulated terminals publish everything (the broker keeps it for the
sessions), then the workers start again and the clock runs until the last
row is committed. That measures the head-end, not the publisher; it includes
each worker's start (about 0.3 s).

  bench_headend.py [--terminals N] [--topups K]"""
import argparse
import os
import signal
import sys
import tempfile
import time

import hostpath  # noqa: F401
import fake_terminals as ft  # noqa: E402
import headend_rig  # noqa: E402
from headend.store import Store  # noqa: E402
from headend.worker import retire  # noqa: E402
from headend_ctl import Serve, new_pg_db  # noqa: E402


def count(url):
    s = Store(url, create=False)
    try:
        return s.query("SELECT (SELECT COUNT(*) FROM reports) + (SELECT COUNT(*) FROM "
                       "heartbeats)")[0][0]
    finally:
        s.close()


def run(broker, url, name, workers, msgs, want):
    Store(url).close()
    # fresh sessions each run: an earlier run's offline session would still
    # be in the share group and take its share of the queue
    ids = ["%s-%d-%d" % (name, workers, i) for i in range(workers)]
    for w in [Serve(broker.url, url, client_id=i) for i in ids]:
        w.stop()  # the sessions exist now: the broker queues for them
    took = ft.publish_all("127.0.0.1", broker.port, msgs, connections=4)
    t0 = time.monotonic()
    running = [Serve(broker.url, url, client_id=i) for i in ids]
    try:
        while count(url) < want:
            if time.monotonic() - t0 > 900:
                raise RuntimeError("stored %d of %d after 900 s" % (count(url), want))
            time.sleep(0.05)
        secs = time.monotonic() - t0
    finally:
        for w in running:
            w.stop()
        for i in ids:
            retire("127.0.0.1", broker.port, i)
    return secs, took


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--terminals", type=int, default=500)
    p.add_argument("--topups", type=int, default=3)
    p.add_argument("--repeat", type=int, default=3, help="runs of each (a shared machine)")
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the broker and cluster too
    msgs = ft.load_reports(a.terminals, a.topups)
    n = len(msgs)
    print("%d reports from %d terminals (boot, %d top-ups of 3 records, a heartbeat each)"
          % (n, a.terminals, a.topups))
    why = headend_rig.postgres_missing()
    pg = None if why else headend_rig.Postgres()
    broker = headend_rig.Mosquitto()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as d:
            for kind in ("sqlite", "postgresql"):
                for workers in (1, 2):
                    if kind == "postgresql" and pg is None:
                        rows.append((kind, workers, None, None, why))
                        continue
                    times = []
                    for r in range(a.repeat):
                        url = os.path.join(d, "h%d-%d.db" % (workers, r)) \
                            if kind == "sqlite" else new_pg_db(pg)
                        times.append(run(broker, url, "%s%d" % (kind, r), workers, msgs, n)[0])
                    times.sort()
                    rows.append((kind, workers, times[0], None, ""))
                    print("  %-10s %d worker%s: %6.0f reports/s stored at best, %6.0f median"
                          " (%d runs)" % (kind, workers, "s" if workers > 1 else " ",
                                          n / times[0], n / times[len(times) // 2], a.repeat),
                          flush=True)
    finally:
        broker.stop()
        if pg:
            pg.stop()
    for kind, workers, secs, _pub, note in rows:
        if secs is None:
            print("  %-10s %d worker(s): skipped: %s" % (kind, workers, note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
