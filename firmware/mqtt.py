"""A small MQTT 3.1.1 client on asyncio streams: what the reporter needs.

CONNECT (clean session false, username/password), QoS 1 PUBLISH that
returns once the broker's PUBACK for its packet id arrives, PINGREQ. One
caller at a time (the reporter task), one message in flight, so there is
no reader task: the caller reads the answer it waits for. Every wait has
one deadline (asyncio.wait_for_ms) and nothing blocks the event loop: a
broker that is down, slow or silent costs the caller a timeout, never the
rest of the terminal. TLS: pass an ssl context (or True) where the board
has one. Errors: OSError (the connection), asyncio.TimeoutError, MQTTError
(the broker refused).

The one blocking call is the name lookup inside open_connection
(getaddrinfo): give the broker as a numeric address on a board.
"""
import asyncio
import struct

from micropython import const

_CONNECT = const(0x10)
_CONNACK = const(0x20)
_PUBLISH_Q1 = const(0x32)
_PUBACK = const(0x40)
_PINGREQ = const(0xC0)
_PINGRESP = const(0xD0)
_DISCONNECT = const(0xE0)
_MAX_IN = const(1024)  # nothing we wait for is longer; a larger packet is skipped


def _wait(aw, ms):
    if hasattr(asyncio, "wait_for_ms"):
        return asyncio.wait_for_ms(aw, ms)
    return asyncio.wait_for(aw, ms / 1000)  # CPython


class MQTTError(Exception):
    """The broker refused (CONNACK code) or spoke out of turn."""


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def _header(kind, n):
    out = bytearray((kind,))
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return out


class MQTTClient:
    def __init__(self, client_id, host, port, user=None, password=None, keepalive=60,
                 ssl=None, timeout_ms=10000):
        self.client_id = client_id
        self.host, self.port = host, port
        self.user, self.password = user, password
        self.keepalive = keepalive
        self.ssl = ssl
        self.timeout_ms = timeout_ms
        self._r = self._w = None
        self._pid = 0

    @property
    def connected(self):
        return self._w is not None

    async def connect(self):
        """Open the connection and wait for CONNACK; -> session present."""
        self.close()
        try:
            return await _wait(self._connect(), self.timeout_ms)
        except BaseException:
            self.close()
            raise

    async def _connect(self):
        if self.ssl is None:
            self._r, self._w = await asyncio.open_connection(self.host, self.port)
        else:
            self._r, self._w = await asyncio.open_connection(self.host, self.port,
                                                             ssl=self.ssl)
        flags = 0x00  # clean session false: the broker keeps our session
        payload = _str(self.client_id)
        if self.user is not None:
            flags |= 0x80
            payload += _str(self.user)
            if self.password is not None:
                flags |= 0x40
                payload += _str(self.password)
        var = _str("MQTT") + struct.pack("!BBH", 4, flags, self.keepalive)
        await self._send(_header(_CONNECT, len(var) + len(payload)) + var + payload)
        kind, body = await self._packet()
        if kind != _CONNACK or len(body) != 2:
            raise MQTTError("broker answered CONNECT with packet type %d" % (kind >> 4))
        if body[1]:
            raise MQTTError("broker refused the connection (CONNACK %d%s)" % (
                body[1], ": bad user name or password" if body[1] in (4, 5) else ""))
        return bool(body[0] & 1)

    async def publish(self, topic, payload):
        """QoS 1; returns once the broker acknowledged this packet id."""
        self._pid = self._pid % 65535 + 1
        pid = self._pid
        t = _str(topic)
        try:
            await _wait(self._publish(t, pid, payload), self.timeout_ms)
        except BaseException:
            self.close()  # a half-sent packet: only a new connection is clean
            raise

    async def _publish(self, t, pid, payload):
        await self._send(_header(_PUBLISH_Q1, len(t) + 2 + len(payload)) + t
                         + struct.pack("!H", pid), payload)
        while True:
            kind, body = await self._packet()
            if kind == _PUBACK and len(body) == 2 and struct.unpack("!H", body)[0] == pid:
                return
            # a PINGRESP, or a PUBACK of an earlier connection's packet: not ours

    async def ping(self):
        try:
            await _wait(self._ping(), self.timeout_ms)
        except BaseException:
            self.close()
            raise

    async def _ping(self):
        await self._send(bytes((_PINGREQ, 0)))
        while (await self._packet())[0] != _PINGRESP:
            pass

    async def _send(self, head, body=b""):
        w = self._w
        if w is None:
            raise OSError(107)  # ENOTCONN
        w.write(head)
        if body:
            w.write(body)
        await w.drain()

    async def _packet(self):
        """One packet from the broker -> (type byte & 0xF0, body)."""
        r = self._r
        if r is None:
            raise OSError(107)
        b = await r.readexactly(1)
        kind = b[0] & 0xF0
        n = shift = 0
        while True:
            c = (await r.readexactly(1))[0]
            n |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                break
            if shift > 21:
                raise MQTTError("malformed packet length")
        if n > _MAX_IN:
            while n:  # a message we never subscribed to: read past it
                n -= len(await r.readexactly(min(n, 256)))
            return kind, b""
        return kind, (await r.readexactly(n)) if n else b""

    def close(self):
        """Drop the connection (no DISCONNECT: the session stays)."""
        w, self._r, self._w = self._w, None, None
        if w is not None:
            try:
                w.close()
            except OSError:
                pass
