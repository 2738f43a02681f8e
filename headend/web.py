"""The operator's page: stdlib ThreadingHTTPServer, one HTML page (plain
tables, refreshed every 30 s) and the same data as JSON. Each request opens
its own database connection and reconciles afresh."""
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from headend import reconcile, views
from headend.store import Store, StoreError


def make_server(db_url, host, port, days=3):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path not in ("/", "/report.json"):
                self._send(404, "text/plain", b"not found: try / or /report.json\n")
                return
            try:
                store = Store(db_url, create=False)
                try:
                    rep = reconcile.reconcile(store, days=days)
                finally:
                    store.close()
            except StoreError as e:
                self._send(503, "text/plain", ("%s\n" % e).encode())
                return
            if path == "/":
                self._send(200, "text/html; charset=utf-8", views.page(rep).encode())
            else:
                self._send(200, "application/json", json.dumps(rep, indent=1).encode())

        def _send(self, status, ctype, data):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args):  # the operator's console stays for alarms
            pass

    return ThreadingHTTPServer((host, port), Handler)
