"""drivers/rs485.py against a peer that floods the line, under MicroPython
(the unix board's UART over TCP)."""
import socket
import threading
import time

from mp_runner import run_mp_json


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
