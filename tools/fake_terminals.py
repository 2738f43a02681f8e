#!/usr/bin/env python3
"""Simulated terminals that report to a head-end exactly as docs/reporting.md
says, written from the contract alone (OpenSSL's SM4 through `cryptography`;
neither the firmware's reporter nor the head-end's checker is used), for
head-end tests and benchmarks.

  fake_terminals.py --mqtt tcp:127.0.0.1:1883 --terminals 1000 --topups 2 --dev

publishes, for every terminal, a boot record, then per top-up its intent,
result and done records, then a heartbeat, over a few shared MQTT
connections, and waits for every PUBACK. Exit 2 on a bad value."""
import argparse
import json
import sys
import threading
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

DEV_MK_R = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")  # tools/make_keystore.py DEV_MK_R
VERSION = "fake-1"


def _sm4(key, data, iv=None):
    mode = modes.ECB() if iv is None else modes.CBC(iv)
    enc = Cipher(algorithms.SM4(key), mode).encryptor()
    return enc.update(data) + enc.finalize()


def report_key(mk_r, tid):
    d = b"R\x00" + bytes.fromhex(tid)[::-1]  # BCD, low byte first
    return _sm4(mk_r, d + bytes(0xFF - b for b in d))


def sign(k_r, topic, body):
    """BODY '.' MAC: SM4-CBC-MAC (IV 0) of len(M) || M, M = topic 00 body."""
    m = topic.encode() + b"\x00" + body
    data = len(m).to_bytes(4, "big") + m + b"\x80"
    data = data + b"\x00" * (-len(data) % 16)
    return body + b"." + _sm4(k_r, data, bytes(16))[-16:].hex().encode()


def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


class FakeTerminal:
    """One terminal's reports: (topic, payload) pairs, sequence numbers in order."""

    def __init__(self, tid, mk_r=DEV_MK_R, key=None, boot=1):
        self.tid = tid
        self.key = key or report_key(mk_r, tid)
        self.seq = 0
        self.boot = boot
        self.beat = 0

    def signed(self, channel, rec):
        topic = "terminals/%s/%s" % (self.tid, channel)
        return topic, sign(self.key, topic, dumps(rec))

    def record(self, kind, when="261129120000", seq=None, **fields):
        if seq is None:
            self.seq += 1
            seq = self.seq
        rec = {"t": self.tid, "seq": seq, "time": when, "kind": kind, "v": VERSION}
        rec.update(fields)
        return self.signed("journal", rec)

    def topup(self, meter, customer, card, amount, count, result="credited", balance=0,
              relay_open=False, written=True, when="261129120000"):
        """intent, result, done: the three records of one top-up."""
        base = {"meter": meter, "customer": customer, "card": card, "amount": amount,
                "count": count}
        before = [balance, count - 1]
        landed = result in ("credited", "already")
        after = [balance + amount, count] if result == "credited" else \
            ([balance, count] if landed else before)
        out = dict(base, result=result, before=before, after=after, relay_open=relay_open)
        return [self.record("topup", when, step="intent", before=before, **base),
                self.record("topup", when, step="result", **out),
                self.record("topup", when, step="done", written=written, **out)]

    def heartbeat(self, meters=None, pending=0, when="261129120000"):
        self.beat += 1
        return self.signed("heartbeat", {
            "t": self.tid, "time": when, "boot": self.boot, "beat": self.beat,
            "reported": self.seq, "pending": pending, "v": VERSION, "meters": meters or {}})


def tid_of(n):
    return "%012d" % n


def load_reports(terminals, topups, first=1):
    """Every terminal's boot, top-ups and heartbeat, interleaved by round."""
    fakes = [FakeTerminal(tid_of(first + i)) for i in range(terminals)]
    rounds = [[f.record("boot", reason="power_on", open=0) for f in fakes]]
    for k in range(topups):
        per = [f.topup(tid_of(900000 + i), tid_of(500000 + i), "%016x" % (first + i),
                       10000, k + 1) for i, f in enumerate(fakes)]
        rounds += [[p[j] for p in per] for j in range(3)]
    rounds.append([f.heartbeat({tid_of(900000 + i): [10000, topups, False, True]})
                   for i, f in enumerate(fakes)])
    return [m for r in rounds for m in r]


def publish_all(host, port, messages, connections=4, name="fake-terminals"):
    """Publish (topic, payload) pairs at QoS 1 over `connections` MQTT
    connections, each terminal on one connection (its order kept); return
    when the broker acknowledged every one. Returns the seconds taken."""
    import paho.mqtt.client as mqtt
    lanes = [[] for _ in range(connections)]
    for topic, payload in messages:
        lanes[hash(topic.split("/")[1]) % connections].append((topic, payload))
    t0 = time.monotonic()
    threads = [threading.Thread(target=_lane, args=(mqtt, host, port, "%s-%d" % (name, i), lane))
               for i, lane in enumerate(lanes) if lane]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - t0


def _lane(mqtt, host, port, client_id, messages):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    c.max_inflight_messages_set(100)
    c.max_queued_messages_set(0)
    c.connect(host, port, keepalive=60)
    c.loop_start()
    try:
        infos = [c.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish()
    finally:
        c.disconnect()
        c.loop_stop()


def main(argv=None):
    p = argparse.ArgumentParser(prog="fake_terminals.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mqtt", required=True, metavar="tcp:HOST:PORT")
    p.add_argument("--terminals", type=int, default=10)
    p.add_argument("--topups", type=int, default=1)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--dev", action="store_true", help="sign with the development MK_R")
    a = p.parse_args(argv)
    kind, _, rest = a.mqtt.partition(":")
    host, _, port = rest.rpartition(":")
    if kind != "tcp" or not host or not port.isdigit():
        print("fake_terminals.py: --mqtt wants tcp:HOST:PORT, got %r" % a.mqtt, file=sys.stderr)
        return 2
    if not a.dev:
        print("fake_terminals.py: only the development key is offered: give --dev",
              file=sys.stderr)
        return 2
    msgs = load_reports(a.terminals, a.topups)
    took = publish_all(host, int(port), msgs, a.connections)
    print("published %d reports from %d terminals in %.2f s" % (len(msgs), a.terminals, took))
    return 0


if __name__ == "__main__":
    sys.exit(main())
