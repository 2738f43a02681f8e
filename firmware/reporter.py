"""The reporter: its own task, publishing the journal to the head-end.

The journal (journal.py, top-up steps) and the event ring (events.py,
everything else) are the offline queue. After boot and after every record
written (journal.written wakes us: the top-up path only sets an Event, it
never awaits the network) every record above the cursor goes out in
sequence order to terminals/<tid>/journal, QoS 1; the cursor moves only
once the broker's PUBACK for it arrived, and the rings never reuse a slot
above it (journal.acked). A broker that is down, slow or refuses costs a
timeout in this task only; reconnects back off from 1 s doubling to 60 s,
with jitter.

The cursor is saved lazily (storage.write_atomic, /flash/report.cur): at
most once every SAVE_MS, or after SAVE_EVERY records during a catch-up.
After a power cut the records since the last save are published again;
the head-end drops them by (t, seq). Wear: one atomic write (about 3
program operations) per 30 s of reporting activity at most, ~1 per top-up
at a building's pace, against the top-up's own 4.

Heartbeat (terminals/<tid>/heartbeat, not journalled) at once after
connecting and every HEARTBEAT_MS; a PINGREQ in between keeps the link.
"""
import asyncio
import struct
import time

from micropython import const

import mqtt
import reports
import storage
import version

SAVE_MS = const(30000)
SAVE_EVERY = const(32)
HEARTBEAT_MS = const(60000)
_TICK_MS = const(30000)
_BATCH = const(8)
_BACKOFF_MIN = const(1000)
_BACKOFF_MAX = const(60000)


def _rand(n):
    try:
        import random
        return random.getrandbits(16) % n
    except ImportError:
        return time.ticks_ms() % n


def _tls(conf, log):
    """TLS: the broker's certificate checked against conf["ca"] (a CA
    certificate file, DER or PEM); without one the link is encrypted but the
    broker unauthenticated (the reports are still MACed)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca = conf.get("ca")
    if not ca:
        log("report: TLS without a CA certificate: the broker is not authenticated")
        return ctx
    with open(ca, "rb") as f:
        data = f.read()
    if data.startswith(b"-----BEGIN"):  # mbedtls here takes DER only
        import binascii
        data = binascii.a2b_base64(b"".join(
            line for line in data.split(b"\n") if line.strip() and not line.startswith(b"-----")))
    ctx.load_verify_locations(cadata=data)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class Reporter:
    def __init__(self, app, root, k_r, conf):
        self.app = app
        self.journal = j = app.journal
        self.events = app.events
        tid = app.terminal_id
        self.topic = "terminals/%s/journal" % tid
        self.hb_topic = "terminals/%s/heartbeat" % tid
        self.signer = reports.Signer(k_r)
        self.path = root + "/report.cur"
        self.cursor, self.boots = 0, 0
        try:
            self.cursor, self.boots = struct.unpack("<II", storage.read_checked(self.path, 8))
        except (storage.StorageError, ValueError, OSError):
            pass  # never reported (or unreadable): everything on flash goes out again
        self.boots += 1
        self._saved = -1  # the boot count is new: saved at the first chance
        j.acked = self.cursor
        self.wake = asyncio.Event()
        j.written = self.wake.set
        j.keep = self._keep
        ssl = _tls(conf, app.log) if conf.get("tls") else None
        self.client = mqtt.MQTTClient("terminal-" + tid, conf["host"], conf["port"],
                                      conf.get("username"), conf.get("password"), ssl=ssl,
                                      timeout_ms=conf.get("timeout_ms", 10000))
        self.heartbeat_ms = conf.get("heartbeat_ms", HEARTBEAT_MS)
        self.beat = 0
        self._last_save = self._last_beat = time.ticks_ms()
        self._said = None

    def _keep(self, e, step):
        """A journal step about to be rewritten: its report stays queued."""
        if e.steps[step][0] > self.cursor:
            try:
                self.events.keep(e.steps[step][0], reports.step_body(e, step))
            except OSError as err:
                self.app.log("report: journal #%d not kept: %r" % (e.steps[step][0], err))

    # --- the queue ---------------------------------------------------------
    def _next(self, after):
        """Up to _BATCH (seq, ring, index) above `after`, in sequence order."""
        best = []
        for ring, arr in ((0, self.journal.seqs), (1, self.events.seqs)):
            for i in range(len(arr)):
                s = arr[i]
                if s > after and (len(best) < _BATCH or s < best[-1][0]):
                    best.append((s, ring, i))
                    best.sort()
                    if len(best) > _BATCH:
                        best.pop()
        return best

    def pending(self):
        n = 0
        for arr in (self.journal.seqs, self.events.seqs):
            for s in arr:
                if s > self.cursor:
                    n += 1
        return n

    def _body(self, seq, ring, i):
        if ring == 1:
            return self.events.body(i)
        e = self.journal._read(i // 3)
        if e is None or e.steps[i % 3][0] != seq:
            return None
        return reports.step_body(e, i % 3)

    async def drain(self):
        while True:
            batch = self._next(self.cursor)
            if not batch:
                return
            for seq, ring, i in batch:
                body = self._body(seq, ring, i)
                if body is None:
                    self.app.log("report: #%d unreadable on flash: skipped" % seq)
                else:
                    await self.client.publish(self.topic,
                                              self.signer.payload(self.topic, body))
                self.cursor = self.journal.acked = seq  # after PUBACK only
                self.save()

    def save(self, force=False):
        """The cursor to flash, lazily (see the module's comment on wear)."""
        n = self.cursor - self._saved if self._saved >= 0 else SAVE_EVERY
        if n <= 0 or not (force or n >= SAVE_EVERY or
                          time.ticks_diff(time.ticks_ms(), self._last_save) >= SAVE_MS):
            return
        try:
            storage.write_atomic(self.path, struct.pack("<II", self.cursor, self.boots))
            self._saved = self.cursor
            self._last_save = time.ticks_ms()
        except OSError as e:  # the broker has them; a cut re-sends, nothing lost
            self.app.log("report: cursor not saved: %r" % (e,))

    async def heartbeat(self):
        self.beat += 1
        self._last_beat = time.ticks_ms()
        meters = {}
        for m, st in self.app.status.items():
            meters[m] = [st["balance"], st["count"], st["relay_open"], st["opened"]] \
                if isinstance(st, dict) else "silent"
        body = reports.encode([
            ("t", self.app.terminal_id), ("time", self.journal._now()), ("boot", self.boots),
            ("beat", self.beat), ("reported", self.cursor), ("pending", self.pending()),
            ("v", version.VERSION), ("meters", meters)])
        await self.client.publish(self.hb_topic, self.signer.payload(self.hb_topic, body))

    # --- the task ------------------------------------------------------------
    def _say(self, line):
        if line != self._said:  # once per change of state, not once per retry
            self._said = line
            self.app.log(line)

    async def run(self):
        delay = _BACKOFF_MIN
        c = self.client
        while True:
            try:
                await c.connect()
                self._say("report: connected to %s:%d" % (c.host, c.port))
                delay = _BACKOFF_MIN
                await self.heartbeat()
                while True:
                    self.wake.clear()
                    await self.drain()
                    self.save()
                    try:
                        await asyncio.wait_for_ms(self.wake.wait(),
                                                   min(_TICK_MS, self.heartbeat_ms // 2))
                    except asyncio.TimeoutError:
                        if time.ticks_diff(time.ticks_ms(), self._last_beat) \
                                >= self.heartbeat_ms - 1000:
                            await self.heartbeat()
                        else:
                            await c.ping()
            except asyncio.CancelledError:
                c.close()
                raise
            except Exception as e:  # noqa: BLE001 - OSError, EOFError, timeout, MQTTError,
                # a TLS failure (ValueError here): this task must never end
                c.close()
                self._say("report: broker %s:%d: %s %s (retrying)" % (
                    c.host, c.port, type(e).__name__, e))
                self.save()
                await asyncio.sleep_ms(delay // 2 + _rand(delay // 2 + 1))
                delay = min(delay * 2, _BACKOFF_MAX)
