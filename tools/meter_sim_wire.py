"""Bus timing and transports (TCP server, PTY, real serial port).

A request occupies the wire for n*11/baud seconds from its first byte; the
reply starts a reply delay after the request's last byte and is written one
character time per byte on an absolute schedule: byte i is handed over at
start + (i+1)*11/baud, when a UART would have shifted it out completely.
"""
import asyncio
import errno
import logging
import os
import socket
import time
import tty

import meter_sim_codec as codec

log = logging.getLogger("meter_sim")
_SPIN_S = 0.0015      # finish the last stretch of a wait with time.sleep


async def sleep_until(t):
    """Sleep until monotonic time t: asyncio for the bulk (it may be ~1 ms
    late), then a short blocking sleep so we are neither early nor late."""
    d = t - time.monotonic()
    if d > _SPIN_S:
        await asyncio.sleep(d - _SPIN_S)
        d = t - time.monotonic()
    if d > 0:  # at most _SPIN_S: blocking the loop this long is the point
        time.sleep(d)  # noqa: ASYNC251


class Wire:
    """Feeds received bytes to the bus and writes its replies paced."""

    def __init__(self, bus, baud):
        self.bus = bus
        self.char_s = 11.0 / baud
        self.parser = codec.Parser()
        self.lock = asyncio.Lock()
        self.tasks = set()
        self.sink = None            # callable(bytes) -> bytes written, or None

    def received(self, data):
        now = time.monotonic()
        self.bus.stats["rx_bytes"] += len(data)
        for frame in self.parser.feed(data, now):
            log.debug("rx %s", frame.raw.hex())
            reply = self.bus.request(frame)
            if reply is None:
                continue
            arrived = max(frame.t_last, frame.t_first + len(frame.wire) * self.char_s)
            task = asyncio.ensure_future(self._send(arrived + reply.delay_ms / 1000.0, reply))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def disconnected(self):
        self.parser.reset()

    async def _send(self, due, reply):
        await sleep_until(due)
        async with self.lock:                  # one talker at a time
            start = max(due, time.monotonic())
            for data in reply.segments:
                start = await self._paced(start, data)
            self.bus.stats["replies"] += 1

    async def _paced(self, start, data):
        sent, n = 0, len(data)
        while sent < n:
            due_count = min(n, int((time.monotonic() - start) / self.char_s + 1e-6))
            if due_count > sent:
                self._write(data[sent:due_count])
                sent = due_count
            if sent < n:
                await sleep_until(start + (sent + 1) * self.char_s)
        log.debug("tx %s", data.hex())
        return start + n * self.char_s

    def _write(self, chunk):
        if self.sink is None:
            return                             # nobody on the bus
        try:
            written = self.sink(chunk)
        except OSError as e:
            log.debug("write failed: %s", e)
            return
        self.bus.stats["tx_bytes"] += written


class _TcpProtocol(asyncio.Protocol):
    def __init__(self, server):
        self.server = server
        self.transport = None

    def connection_made(self, transport):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport
        self.server.attach(self)

    def data_received(self, data):
        if self.server.current is self:
            self.server.wire.received(data)

    def connection_lost(self, exc):
        self.server.detach(self)


class TcpBus:
    """An RS-485-to-Ethernet converter in TCP server mode, one client."""

    def __init__(self, wire):
        self.wire = wire
        self.current = None
        self.server = None

    async def start(self, host, port):
        self.server = await asyncio.get_running_loop().create_server(
            lambda: _TcpProtocol(self), host, port)
        h, p = self.server.sockets[0].getsockname()[:2]
        return "tcp:%s:%d" % (h, p)

    def attach(self, proto):
        old, self.current = self.current, proto
        self.wire.disconnected()
        self.wire.sink = self._write
        if old is not None:
            old.transport.close()              # a new connection replaces the old

    def detach(self, proto):
        if self.current is proto:
            self.current = None
            self.wire.sink = None
            self.wire.disconnected()

    def _write(self, chunk):
        if self.current is None or self.current.transport.is_closing():
            return 0
        self.current.transport.write(chunk)
        return len(chunk)

    def close(self):
        if self.current is not None:
            self.current.transport.close()
        self.server.close()


class PtyBus:
    """A PTY pair in raw mode; the terminal opens the slave path. We keep a
    slave fd open so the master never sees EIO between terminal sessions."""

    def __init__(self, wire):
        self.wire = wire
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)

    async def start(self):
        asyncio.get_running_loop().add_reader(self.master, self._readable)
        self.wire.sink = self._write
        return self.path

    def _readable(self):
        try:
            data = os.read(self.master, 4096)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EIO):
                return
            raise
        if data:
            self.wire.received(data)

    def _write(self, chunk):
        try:
            return os.write(self.master, chunk)
        except BlockingIOError:
            return 0                            # nobody reading: bytes lost

    def close(self):
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)


class SerialBus:
    """A real RS-485 adapter through pyserial, 8E1."""

    def __init__(self, wire, device, baud):
        import serial
        self.wire = wire
        self.device = device
        self.port = serial.Serial(device, baud, bytesize=serial.EIGHTBITS,
                                  parity=serial.PARITY_EVEN, stopbits=serial.STOPBITS_ONE,
                                  timeout=0)

    async def start(self):
        self.fd = self.port.fileno()
        asyncio.get_running_loop().add_reader(self.fd, self._readable)
        self.wire.sink = self._write
        return self.device

    def _readable(self):
        try:
            data = self.port.read(self.port.in_waiting or 1)
        except (OSError, ValueError) as e:   # SerialException is an OSError
            log.error("serial port lost: %s", e)
            asyncio.get_running_loop().remove_reader(self.fd)
            return
        if data:
            self.wire.received(data)

    def _write(self, chunk):
        return self.port.write(chunk) or 0

    def close(self):
        asyncio.get_running_loop().remove_reader(self.fd)
        self.port.close()
