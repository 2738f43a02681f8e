"""MicroPython's asyncio and time extras on CPython, in one place, so host
tests run the drivers unchanged (conftest.py imports this once).

Added only where CPython lacks them (the stdlib modules stay what they are):
asyncio.sleep_ms / wait_for_ms, time.ticks_ms / ticks_us / ticks_add /
ticks_diff (wrapping as MicroPython's do). asyncio.StreamReader becomes a
subclass of CPython's that also takes MicroPython's form
StreamReader(stream): a polled stream such as a UART, read when its file
descriptor is readable. CPython's own streams are built from
asyncio.streams.StreamReader and do not see the change.

TcpUart is boards/unix/uart.py's UART for CPython: the bus over a TCP
connection (MicroPython sockets have read/write, CPython's recv/send).
"""
import asyncio
import select
import socket
import time

_MP_STREAM_POLL = 3
_MP_STREAM_GET_FILENO = 10
_PERIOD = 1 << 30  # MicroPython's ticks wrap here
_HALF = _PERIOD // 2


def ticks_add(t, delta):
    return (t + delta) & (_PERIOD - 1)


def ticks_diff(a, b):
    return ((a - b + _HALF) & (_PERIOD - 1)) - _HALF


def ticks_ms():
    return time.monotonic_ns() // 1000000 & (_PERIOD - 1)


def ticks_us():
    return time.monotonic_ns() // 1000 & (_PERIOD - 1)


def sleep_ms(ms):
    return asyncio.sleep(ms / 1000)


def wait_for_ms(aw, ms):
    return asyncio.wait_for(aw, ms / 1000)


async def _readable(stream):
    # As MicroPython's stream read: always yield once, then wait for POLLIN.
    await asyncio.sleep(0)
    if stream.ioctl(_MP_STREAM_POLL, select.POLLIN) & select.POLLIN:
        return
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    fd = stream.ioctl(_MP_STREAM_GET_FILENO, 0)
    loop.add_reader(fd, lambda: fut.done() or fut.set_result(None))
    try:
        await fut
    finally:
        loop.remove_reader(fd)


class StreamReader(asyncio.streams.StreamReader):
    """CPython's StreamReader, or MicroPython's when given a stream."""

    def __init__(self, stream=None, *args, **kw):
        self._mp_stream = None
        if stream is None or isinstance(stream, int):  # CPython's form: limit first
            super().__init__(*((stream,) if stream is not None else ()) + args, **kw)
        else:
            self._mp_stream = stream

    async def read(self, n=-1):
        if self._mp_stream is None:
            return await super().read(n)
        await _readable(self._mp_stream)
        return self._mp_stream.read(n)

    async def readexactly(self, n):
        if self._mp_stream is None:
            return await super().readexactly(n)
        out = b""
        while len(out) < n:
            got = await self.read(n - len(out))
            if not got:
                if got is None:
                    continue
                raise EOFError
            out += got
        return out


class TcpUart:
    """The unix board's UART over TCP, for CPython: non-blocking read() (None
    when nothing is there, b"" at the end), write(), any(), txdone() that
    turns True only when the bytes would have left a real UART at the baud
    rate, and ioctl() for the StreamReader above."""

    def __init__(self, spec, baudrate=2400, bits=11):
        host, port = spec[len("tcp:"):].rsplit(":", 1)
        self.char_us = bits * 1000000 // baudrate
        self._tx_end = ticks_us()
        self._s = socket.create_connection((host, int(port)), timeout=5)
        self._s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._s.setblocking(False)

    def _ready(self):
        return bool(select.select([self._s], [], [], 0)[0])

    def any(self):
        return 1 if self._ready() else 0

    def read(self, n=256):
        if n is None or n < 0:
            n = 4096
        try:
            return self._s.recv(n)
        except BlockingIOError:
            return None

    def write(self, buf):
        now = ticks_us()
        if ticks_diff(self._tx_end, now) < 0:
            self._tx_end = now
        self._tx_end = ticks_add(self._tx_end, len(buf) * self.char_us)
        view = memoryview(bytes(buf))
        while view:
            try:
                view = view[self._s.send(view):]
            except BlockingIOError:
                select.select([], [self._s], [], 1)
        return len(buf)

    def txdone(self):
        return ticks_diff(self._tx_end, ticks_us()) <= 0

    def ioctl(self, req, arg):
        if req == _MP_STREAM_GET_FILENO:
            return self._s.fileno()
        if req == _MP_STREAM_POLL:
            ready = arg & select.POLLOUT
            if arg & select.POLLIN and self._ready():
                ready |= select.POLLIN
            return ready
        return 0

    def close(self):
        self._s.close()


def install():
    """Add what CPython lacks; idempotent."""
    for name, fn in (("sleep_ms", sleep_ms), ("wait_for_ms", wait_for_ms)):
        if not hasattr(asyncio, name):
            setattr(asyncio, name, fn)
    if not issubclass(asyncio.StreamReader, StreamReader):
        asyncio.StreamReader = StreamReader
    for name, fn in (("ticks_ms", ticks_ms), ("ticks_us", ticks_us),
                     ("ticks_add", ticks_add), ("ticks_diff", ticks_diff)):
        if not hasattr(time, name):
            setattr(time, name, fn)


install()
