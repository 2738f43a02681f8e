"""drivers/rs485.py against a peer that floods the line, under MicroPython
(the unix board's UART over TCP)."""
import asyncio
import socket
import threading
import time

import dlt645
from mp_compat import TcpUart, ticks_add, ticks_diff
from mp_runner import run_mp_json
from rs485 import RS485


class Flooder:
    """A TCP peer that sends noise as fast as it can for `seconds`, then
    keeps the connection open and quiet until the client leaves."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.sent = 0
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.spec = "tcp:127.0.0.1:%d" % self.srv.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        conn, _ = self.srv.accept()
        noise = bytes(range(256)) * 1024  # 0x68 included: false starts too
        end = time.monotonic() + self.seconds
        try:
            while time.monotonic() < end:
                self.sent += conn.send(noise)
            while conn.recv(4096):
                pass
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.srv.close()


def test_a_flooding_peer_never_stalls_the_event_loop():
    flood = Flooder(seconds=4)
    try:
        out = run_mp_json("host_tests/mp/rs485_flood.py", flood.spec, 9600, 1.5,
                          heap="96k", timeout=60)
    finally:
        flood.close()
    assert flood.sent > 100000  # it did flood
    # Exchanges went on during the flood, each bounded: reply timeout
    # (200 ms) plus one reply's worth of characters (400 at 9600 baud),
    # with slack for a busy machine; none found a frame in the noise.
    assert len(out["exchanges"]) >= 2
    assert out["tx"] == 20 * len(out["exchanges"])
    for got, ms in out["exchanges"]:
        assert got == "None" and ms < 2000
    # The ticker (every 2 ms) kept running: the unbounded discard loop held
    # the loop for as long as the flood lasted (4 s).
    assert out["max_gap"] < 300, out["max_gap"]
    assert out["ticks"] > out["ms"] // 20


def test_a_flooding_peer_never_stalls_the_event_loop_under_cpython():
    # The same driver code under CPython, through host_tests/shim/mp_compat.py.
    async def main(spec):
        bus = RS485(TcpUart(spec, 9600), baudrate=9600)
        frame = dlt645.encode("000000000001", dlt645.CTRL_READ, dlt645.di_bytes(0x00900200))
        gaps = []

        async def ticker():
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.002)
                now = time.monotonic()
                gaps.append(now - last)
                last = now
        task = asyncio.ensure_future(ticker())
        await asyncio.sleep(0.05)
        got = [await bus.transact(frame, dlt645.Decoder(replies_only=True), 200)
               for _ in range(2)]
        task.cancel()
        return got, max(gaps)

    flood = Flooder(seconds=4)
    try:
        got, worst = asyncio.run(main(flood.spec))
    finally:
        flood.close()
    assert got == [None, None]
    assert worst < 0.3, worst


def test_shim_ticks_wrap_as_micropython_does():
    top = (1 << 30) - 1
    assert ticks_add(top, 2) == 1 and ticks_diff(ticks_add(top, 2), top) == 2
    assert ticks_diff(top, 1) == -2
    assert ticks_diff(5, 3) == 2 and time.ticks_diff(3, 5) == -2
