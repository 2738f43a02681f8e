"""A real MQTT broker for the reporting tests: Debian's mosquitto on a free
port with a temporary configuration (persistent sessions, so it can be
stopped and started again as a broker that goes down), and a head-end
stand-in subscribing with paho-mqtt that checks every report's MAC with
OpenSSL's SM4 (`cryptography`), independently of firmware/sm4.py."""
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from card_sim_ctl import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MK_R = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")


def tid_wire(tid):
    return bytes(int(tid[i:i + 2], 16) for i in range(10, -1, -2))


def ecb(key, block):
    e = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return e.update(block) + e.finalize()


def k_r(tid, mk_r=MK_R):
    d = b"R\x00" + tid_wire(tid)
    return ecb(mk_r, d + bytes(b ^ 0xFF for b in d))


def mac(key, topic, body):
    m = topic.encode() + b"\x00" + body
    data = len(m).to_bytes(4, "big") + m + b"\x80"
    data += bytes(-len(data) % 16)
    e = Cipher(algorithms.SM4(key), modes.CBC(bytes(16))).encryptor()
    return (e.update(data) + e.finalize())[-16:].hex()


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


class Broker:
    """tls: a second listener (tls_port) with a certificate for localhost
    signed by the CA in self.ca."""

    def __init__(self, tls=False):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="mosq_")
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
                    "persistence_location %s/\nmax_queued_messages 100000\nuser %s\n"
                    % (self.port, self.dir, getpass.getuser()))
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        for _ in range(500):  # until it listens (it says so only in its log)
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("mosquitto exited: %s" % self.proc.stderr.read())
                time.sleep(0.02)
        raise RuntimeError("mosquitto does not listen on %d" % self.port)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # saves the sessions
            self.proc.wait(10)
        self.proc = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


class HeadEnd:
    """Subscribes to terminals/+/#, persistent session; keeps every report
    as it arrived: (topic, body bytes, mac ok, parsed body)."""

    def __init__(self, port, tid="000000000099"):
        self.key = k_r(tid)
        self.got = []
        self.cv = threading.Condition()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="headend-test",
                             clean_session=False)
        self.c.reconnect_delay_set(1, 1)
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe("terminals/+/#", qos=1)
        self.c.on_message = self._msg
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()

    def _msg(self, c, u, m):
        body, _, got = m.payload.rpartition(b".")
        ok = mac(self.key, m.topic, body) == got.decode(errors="replace")
        with self.cv:
            self.got.append((m.topic, body, ok, json.loads(body)))
            self.cv.notify_all()

    def journal(self):
        with self.cv:
            return [g for g in self.got if g[0].endswith("/journal")]

    def wait(self, pred, timeout=120):
        end = time.monotonic() + timeout
        with self.cv:
            while not pred(self):
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("head-end never saw it; seqs %s; last:\n%s" % (
                        self.seqs(), "\n".join(g[1].decode() for g in self.got[-5:])))
                self.cv.wait(min(left, 1))

    def seqs(self):
        return [g[3]["seq"] for g in self.journal()]

    def has_through(self, top):
        """Every seq 1..top received."""
        return set(range(1, top + 1)) <= set(self.seqs())

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()

    def check(self):
        """Every report genuine; a seq twice only with the same body
        (what the head-end drops by (t, seq)). -> {seq: body dict}."""
        out, raw = {}, {}
        for topic, body, ok, d in self.got:
            assert ok, "bad MAC on %s %r" % (topic, body)
            assert d["t"] == "000000000099"
            if topic.endswith("/journal"):
                assert raw.setdefault(d["seq"], body) == body, \
                    "seq %d twice with different bodies:\n%s\n%s" % (d["seq"], raw[d["seq"]],
                                                                     body)
                out[d["seq"]] = d
        return out
