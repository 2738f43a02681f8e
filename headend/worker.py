"""The MQTT side of a head-end worker (paho-mqtt): a persistent session
(clean session false) on the shared subscription, QoS 1, and manual
acknowledgement: a report is acknowledged only after its row is committed,
so a worker killed mid-store leaves it with the broker, which hands it to
the next session (or the other worker). Several workers on
`$share/headend/terminals/+/#` each get a share; the database's primary key
stores a redelivered report once."""
import queue
import sys
import threading
import time

import paho.mqtt.client as mqtt

TOPIC = "$share/headend/terminals/+/#"
# Reports stored in one transaction at most: the broker's max_inflight_messages
# (unacknowledged QoS 1 messages it sends a client) bounds it too.
BATCH = 500


def parse_mqtt(text):
    """'tcp:HOST:PORT' -> (host, port), or ValueError saying what is wrong."""
    kind, _, rest = text.partition(":")
    host, _, port = rest.rpartition(":")
    if kind != "tcp" or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("--mqtt wants tcp:HOST:PORT, got %r" % text)
    return host, int(port)


class Worker:
    def __init__(self, ingest, host, port, client_id, topic=TOPIC, log=sys.stderr):
        self.ingest = ingest
        self.topic = topic
        self.log = log
        self.subscribed = threading.Event()
        self.handled = 0
        self._said_unreachable = False
        self._queue = queue.Queue()
        self._storer = threading.Thread(target=self._store, daemon=True)
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                        clean_session=False, manual_ack=True)
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        c.on_connect_fail = self._on_connect_fail
        c.reconnect_delay_set(1, 10)
        self.client = c
        self._addr = (host, port)

    def start(self):
        self._storer.start()
        self.client.connect_async(*self._addr, keepalive=60)
        self.client.loop_start()

    def stop(self):
        """Stop taking reports, store what arrived, disconnect (what was not
        acknowledged stays with the broker for the session's next start)."""
        self.client.on_message = None
        self._queue.put(None)
        self._storer.join()
        self.client.disconnect()
        self.client.loop_stop()

    def _say(self, text):
        print("headend: " + text, file=self.log, flush=True)

    def _on_connect(self, client, _userdata, _flags, reason, _props):
        if reason.is_failure:
            self._say("broker %s:%d refused the connection: %s" % (self._addr + (reason,)))
            return
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, _client, _userdata, _mid, reasons, _props):
        if any(r.is_failure for r in reasons):
            self._say("broker refused the subscription to %s" % self.topic)
            return
        self._say("subscribed to %s on %s:%d" % ((self.topic,) + self._addr))
        self.subscribed.set()

    def _on_connect_fail(self, _client, _userdata):
        if not self._said_unreachable:  # once, not every retry
            self._said_unreachable = True
            self._say("cannot reach the broker at %s:%d; retrying" % self._addr)

    def _on_disconnect(self, _client, _userdata, _flags, reason, _props):
        if reason.is_failure:
            self._say("lost the broker (%s); reconnecting" % reason)

    def _on_message(self, _client, _userdata, msg):
        self._queue.put(msg)  # the network thread only queues: keep-alives go on

    def _store(self):
        """Take what has arrived (up to BATCH), store it in one transaction,
        then acknowledge each: one commit for many reports."""
        while True:
            batch = [self._queue.get()]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if batch[-1] is None:
                batch.pop()
                self._handle(batch)
                return
            self._handle(batch)

    def _handle(self, batch):
        if not batch:
            return
        delay = 0.5
        while True:
            try:
                outcomes = self.ingest.handle_batch([(m.topic, m.payload) for m in batch])
                break
            except Exception as e:  # noqa: BLE001 - the database is away: keep the reports
                self._say("database error, %d reports kept at the broker, retrying: %s"
                          % (len(batch), (str(e).splitlines() or [type(e).__name__])[0]))
                time.sleep(delay)
                delay = min(delay * 2, 10)
        for msg, outcome in zip(batch, outcomes):
            self.client.ack(msg.mid, msg.qos)
            if outcome not in ("stored", "duplicate"):
                self._say("%s: %s" % (msg.topic, outcome))
        self.handled += len(batch)


def retire(host, port, client_id):
    """End a worker's persistent session for good: a session left offline
    stays in the share group and the broker keeps queueing its share for
    it. Connecting once with a clean session under its id removes it."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    c.connect(host, port, keepalive=10)
    c.loop_start()
    c.disconnect()
    c.loop_stop()
