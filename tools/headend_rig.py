"""Real parts for the head-end's tests and benchmark, each a plain process in
a temporary directory: Debian's mosquitto on a loopback port, and a
throwaway PostgreSQL cluster (initdb + postgres, its socket in the
directory). Both are stopped and their directories removed by stop()."""
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import time

import procs

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
PG_BIN = "/usr/lib/postgresql/15/bin"


def free_port():
    """A loopback port below the ephemeral range (see card_sim_ctl.free_port)."""
    pick = random.SystemRandom()
    while True:
        port = pick.randint(20000, 30000)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()


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
    """mosquitto on 127.0.0.1:port; queues unbounded (a test's burst of QoS 1
    reports must never be dropped by the broker's default 1000-message queue)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mosq-")
        self.port = free_port()
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 0\nmax_inflight_messages 100\n"
                    "log_dest stderr\nlog_type error\nlog_type warning\n" % self.port)
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        _wait_port(self.port, self.proc, "mosquitto")

    @property
    def url(self):
        return "tcp:127.0.0.1:%d" % self.port

    def stop(self):
        procs.stop(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


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
