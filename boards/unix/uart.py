"""A UART for the unix board: the bus is a TCP connection (an RS-485 to
Ethernet converter in TCP server mode) or a PTY (a USB RS-485 adapter, or a
simulator on the other end of a pseudo-terminal).

It behaves as machine.UART does for the driver: non-blocking read/write,
any(), and txdone(), which models the wire: it turns True only when the
bytes written would have left a real UART at the bus's baud rate.
"""
import io
import select
import socket
import time
from micropython import const

_MP_STREAM_POLL = const(3)
_MP_STREAM_GET_FILENO = const(10)
_VMIN = const(6)
_VTIME = const(5)


class Pin:
    """A DE pin that only remembers its level (and how often it changed)."""

    def __init__(self):
        self.level = 0
        self.changes = 0

    def value(self, v=None):
        if v is None:
            return self.level
        if v != self.level:
            self.changes += 1
        self.level = v


class UART(io.IOBase):
    def __init__(self, spec, baudrate=2400, bits=11):
        self.char_us = bits * 1000000 // baudrate
        self._tx_end = time.ticks_us()
        if spec.startswith("tcp:"):
            host, port = spec[4:].rsplit(":", 1)
            addr = socket.getaddrinfo(host, int(port))[0][-1]
            s = socket.socket()
            s.connect(addr)
            try:
                s.setsockopt(socket.IPPROTO_TCP, 1, 1)  # TCP_NODELAY
            except (AttributeError, OSError):
                pass
            s.setblocking(False)
            self._s = s
            self._fd = s.fileno()
        else:
            import termios
            f = open(spec, "r+b")
            fd = f.fileno()
            termios.setraw(fd)
            attr = termios.tcgetattr(fd)
            attr[6][_VMIN] = 0  # reads return what is there, never wait
            attr[6][_VTIME] = 0
            termios.tcsetattr(fd, termios.TCSANOW, attr)
            self._s = f
            self._fd = fd
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)

    def any(self):
        return 1 if self._poll.poll(0) else 0

    def read(self, n=256):
        if not self._poll.poll(0):
            return None
        data = self._s.read(n)
        return data if data is not None else None

    def readinto(self, buf):
        data = self.read(len(buf))
        if data is None:
            return None
        buf[0:len(data)] = data
        return len(data)

    def write(self, buf):
        now = time.ticks_us()
        if time.ticks_diff(self._tx_end, now) < 0:
            self._tx_end = now
        self._tx_end = time.ticks_add(self._tx_end, len(buf) * self.char_us)
        view = memoryview(buf)
        while view:
            n = self._s.write(view)
            if n:
                view = view[n:]
        return len(buf)

    def txdone(self):
        return time.ticks_diff(self._tx_end, time.ticks_us()) <= 0

    def ioctl(self, req, arg):
        if req == _MP_STREAM_GET_FILENO:
            return self._fd
        if req == _MP_STREAM_POLL:
            ready = arg & select.POLLOUT
            if arg & select.POLLIN and self._poll.poll(0):
                ready |= select.POLLIN
            return ready
        return 0

    def close(self):
        self._s.close()
