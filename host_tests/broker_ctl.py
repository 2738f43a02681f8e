"""For the reporting tests (the broker is tools/headend_rig.py's Mosquitto,
the `broker` fixture in conftest.py): HeadEnd is a stand-in subscribing with paho-mqtt
that keeps every report as it arrived and checks its MAC with the
head-end's OpenSSL SM4 (headend/reportmac.py), independently of
firmware/sm4.py."""
import json
import threading
import time

import paho.mqtt.client as paho

from headend.reportmac import mac, terminal_key

MK_R = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")


class HeadEnd:
    """Subscribes to terminals/+/#, persistent session; keeps every report
    as it arrived: (topic, body bytes, mac ok, parsed body)."""

    def __init__(self, port, tid="000000000099"):
        self.key = terminal_key(MK_R, tid)
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
