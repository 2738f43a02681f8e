"""python -m headend (or tools/headend_cli.py):

  serve --mqtt tcp:HOST:PORT --db URL (--mk-r-file FILE | --dev) [--http PORT]
        [--client-id ID]      take reports, store them, serve the operator's page
  import-ledger FILE --db URL import the sales office's ledger (idempotent)
  report --db URL [--json]    print the reconciliation and alarms
  retire --mqtt tcp:HOST:PORT --client-id ID
                              end a worker's session for good (see docs/headend.md)

URL: a file path or sqlite:///path (SQLite), or postgresql://user@host:port/db.
MK_R, the utility's reporting master key, is read from a file (32 hex
digits), never from the command line; --dev uses the development key.
Bad values: one line on stderr, exit status 2."""
import argparse
import json
import signal
import sys
import threading

from headend import ledger, reconcile, views
from headend.reportmac import Verifier
from headend.store import Store, StoreError

DEV_MK_R = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # tools/make_keystore.py DEV_MK_R


class UsageError(Exception):
    pass


def _mk_r(a):
    if a.dev:
        return bytes.fromhex(DEV_MK_R)
    if not a.mk_r_file:
        raise UsageError("give --mk-r-file FILE (32 hex digits) or --dev")
    try:
        with open(a.mk_r_file) as f:
            text = f.read().strip()
    except OSError as e:
        raise UsageError("cannot read --mk-r-file %s: %s" % (a.mk_r_file, e.strerror))
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 16:
        raise UsageError("--mk-r-file %s must hold MK_R as 32 hex digits" % a.mk_r_file)
    return key


def _port(text):
    if not text.isdigit() or not 0 <= int(text) < 65536:
        raise argparse.ArgumentTypeError("want a port number 0..65535, got %r" % text)
    return int(text)


def _days(text):
    try:
        v = float(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError("want a number of days >= 0, got %r" % text)
    return v


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def build_parser():
    p = _Parser(prog="headend", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    s = sub.add_parser("serve", help="take reports over MQTT and serve the operator's page")
    s.add_argument("--mqtt", required=True, metavar="tcp:HOST:PORT")
    s.add_argument("--db", required=True, metavar="URL")
    s.add_argument("--mk-r-file", metavar="FILE", help="MK_R as 32 hex digits")
    s.add_argument("--dev", action="store_true", help="the development MK_R (never in service)")
    s.add_argument("--http", type=_port, metavar="PORT", help="serve the page on this port")
    s.add_argument("--http-host", default="127.0.0.1", metavar="HOST")
    s.add_argument("--client-id", default="headend-1", metavar="ID",
                   help="this worker's MQTT session (one per worker)")
    s.add_argument("--topic", default=None, help="default $share/headend/terminals/+/#")
    s.add_argument("--days", type=_days, default=3, help="sold but not credited after DAYS")
    i = sub.add_parser("import-ledger", help="import the sales office's ledger")
    i.add_argument("file")
    i.add_argument("--db", required=True, metavar="URL")
    r = sub.add_parser("report", help="print the reconciliation and alarms")
    r.add_argument("--db", required=True, metavar="URL")
    r.add_argument("--days", type=_days, default=3, help="sold but not credited after DAYS")
    r.add_argument("--json", action="store_true")
    t = sub.add_parser("retire", help="end a retired worker's persistent session")
    t.add_argument("--mqtt", required=True, metavar="tcp:HOST:PORT")
    t.add_argument("--client-id", required=True, metavar="ID")
    return p


def retire(a):
    from headend.worker import parse_mqtt, retire
    try:
        host, port = parse_mqtt(a.mqtt)
    except ValueError as e:
        raise UsageError(str(e))
    try:
        retire(host, port, a.client_id)
    except OSError as e:
        raise UsageError("cannot reach the broker at %s:%d: %s" % (host, port, e.strerror))
    print("session %s ended" % a.client_id)
    return 0


def serve(a):
    from headend.ingest import Ingest
    from headend.web import make_server
    from headend.worker import TOPIC, Worker, parse_mqtt
    try:
        host, port = parse_mqtt(a.mqtt)
    except ValueError as e:
        raise UsageError(str(e))
    verifier = Verifier(_mk_r(a))
    store = Store(a.db)
    worker = Worker(Ingest(store, verifier), host, port, a.client_id, a.topic or TOPIC)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    httpd = None
    if a.http is not None:
        try:
            httpd = make_server(a.db, a.http_host, a.http, a.days)
        except OSError as e:
            raise UsageError("cannot serve on %s:%d: %s" % (a.http_host, a.http, e.strerror))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        print("headend: page on http://%s:%d/" % httpd.server_address[:2], flush=True)
    worker.start()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    worker.stop()
    if httpd:
        httpd.shutdown()
    store.close()
    print("headend: stopped after %d reports %s" % (worker.handled, json.dumps(
        worker.ingest.counts, sort_keys=True)), flush=True)
    return 0


def main(argv=None):
    try:
        a = build_parser().parse_args(argv)
        if a.cmd == "serve":
            return serve(a)
        if a.cmd == "retire":
            return retire(a)
        store = Store(a.db)
        try:
            if a.cmd == "import-ledger":
                new, known = ledger.import_file(store, a.file)
                print("imported %d new sales from %s (%d already known)" % (new, a.file, known))
                return 0
            rep = reconcile.reconcile(store, days=a.days)
        finally:
            store.close()
        if a.json:
            print(json.dumps(rep, indent=1))
        else:
            sys.stdout.write(views.text(rep))
        return 0
    except (UsageError, StoreError, ledger.LedgerError) as e:
        print("headend: %s" % e, file=sys.stderr)
        return 2
