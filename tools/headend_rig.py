"""Real parts for the head-end's and the reporting tests and benchmarks, and
for `make run`, each a plain process in a temporary directory: Debian's
mosquitto on a loopback port (TLS too), and a throwaway PostgreSQL cluster
(initdb + postgres, its socket in the directory). Both are stopped and
their directories removed by stop()."""
import getpass
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import procs
from procs import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
PG_BIN = "/usr/lib/postgresql/15/bin"


def _wait_port(port, proc, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited (status %s)" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s did not listen on %d" % (what, port))


class Mosquitto:
    """mosquitto on 127.0.0.1:port, started at once. Queues unbounded (a
    test's burst of QoS 1 reports must never be dropped by the broker's
    default 1000-message queue) and persistent sessions, so down() and
    start() make a broker that goes away and comes back. tls: a second
    listener (tls_port) with a certificate for localhost signed by the CA in
    self.ca (make_certs)."""

    def __init__(self, tls=False):
        self.dir = tempfile.mkdtemp(prefix="mosq-")
        self.port = free_port()
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        self.tls_port = self.ca = None
        with open(self.conf, "w") as f:
            if tls:
                self.tls_port = free_port()
                self.ca, crt, key = make_certs(self.dir)
                f.write("per_listener_settings false\nlistener %d 127.0.0.1\n"
                        "certfile %s\nkeyfile %s\n" % (self.tls_port, crt, key))
            # user: as root, mosquitto would drop to "mosquitto", who cannot
            # write the sessions into our temporary directory
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\n"
                    "persistence_location %s/\nuser %s\n"
                    "max_queued_messages 0\nmax_inflight_messages 100\n"
                    "log_dest stderr\nlog_type error\nlog_type warning\n"
                    % (self.port, self.dir, getpass.getuser()))
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = None
        self.start()

    @property
    def url(self):
        return "tcp:127.0.0.1:%d" % self.port

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        try:
            _wait_port(self.port, self.proc, "mosquitto")
        except RuntimeError as e:
            self.stop()
            raise RuntimeError("%s: %s" % (e, self._said()))
        return self

    def _said(self):
        with open(self.log.name) as f:
            return f.read()[-2000:]

    def down(self):
        """The broker goes away (SIGTERM: it saves the sessions); start()
        brings it back with them."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)

    def stop(self):
        self.down()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def make_certs(d, name="localhost"):
    """A CA and a server certificate for `name`, signed by it: PEM files
    in d -> (ca.pem, server.pem, server.key)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    days = dt.timedelta(days=3650)

    def cert(subject, issuer, pub, key, ca, san=None):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(pub).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + days)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), False)
        return b.sign(key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = cert(ca_name, ca_name, ca_key.public_key(), ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    srv = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), ca_name,
               key.public_key(), ca_key, False, name)
    paths = [os.path.join(d, n) for n in ("ca.pem", "server.pem", "server.key")]
    for path, data in zip(paths, (ca.public_bytes(serialization.Encoding.PEM),
                                  srv.public_bytes(serialization.Encoding.PEM),
                                  key.private_bytes(serialization.Encoding.PEM,
                                                    serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))):
        with open(path, "wb") as f:
            f.write(data)
    return paths


def postgres_missing():
    """Why a throwaway PostgreSQL cannot run here, or None."""
    if not os.path.exists(os.path.join(PG_BIN, "initdb")):
        return "Debian's postgresql is not installed (%s/initdb missing)" % PG_BIN
    return None


class Postgres:
    """A throwaway cluster. initdb refuses to run as root: as root it runs as
    `nobody`, in a directory nobody owns."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pg-")
        self.port = free_port()
        user = None
        if os.geteuid() == 0:
            user = "nobody"
            pw = pwd.getpwnam(user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._as = ["runuser", "-u", user, "--"] if user else []
        data = os.path.join(self.dir, "data")
        subprocess.run(self._as + [os.path.join(PG_BIN, "initdb"), "-D", data, "-U", "headend",
                                   "-A", "trust", "--no-sync", "-E", "UTF8"],
                       check=True, capture_output=True)
        self.log = open(os.path.join(self.dir, "log"), "w")
        if user:
            os.chown(self.log.name, pw.pw_uid, pw.pw_gid)
        self.proc = subprocess.Popen(
            self._as + [os.path.join(PG_BIN, "postgres"), "-D", data, "-p", str(self.port),
                        "-k", self.dir, "-c", "listen_addresses=127.0.0.1",
                        "-c", "max_connections=50"],
            stdout=self.log, stderr=subprocess.STDOUT)
        _wait_port(self.port, self.proc, "postgres")
        self._ready()

    def _ready(self):
        import psycopg
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url, autocommit=True).close()
                return
            except psycopg.OperationalError:  # "the database system is starting up"
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @property
    def url(self):
        return "postgresql://headend@127.0.0.1:%d/postgres" % self.port

    def stop(self):
        procs.stop(self.proc, 10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
_CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                   "--no-first-run", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync")


def chromium(url, *args, timeout=120):
    """Run Debian's chromium headless on url (a throwaway profile) with args
    such as --dump-dom or --screenshot=FILE; return its stdout."""
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        p = subprocess.run([CHROMIUM, *_CHROMIUM_FLAGS, "--user-data-dir=" + profile,
                            *args, url], check=False, capture_output=True, text=True,
                           timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if p.returncode:
        raise RuntimeError("chromium exited %d: %s" % (p.returncode, p.stderr[-2000:]))
    return p.stdout
