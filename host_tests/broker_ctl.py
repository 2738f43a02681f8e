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


class Broker:
    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="mosq_")
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
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
