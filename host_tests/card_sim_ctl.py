"""Test helpers around the card simulator.

- make_card(...): a card issued the way the sales office would (card_model).
- run_with_card(card, fn, ...): a CPython terminal-side TCP slot (asyncio
  server + CardReader), the simulator inserted into it, fn(reader) awaited.
- SimProcess: tools/card_sim.py as a subprocess with its control socket.
- free_port(): tools/procs.py's, for the listeners the tests start.
"""
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading

import card_files as cf
import card_model
import card_sim
from card_reader import CardReader
from procs import free_port  # noqa: F401 - the tests take it from here

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MK_C = bytes.fromhex("fedcba98765432100123456789abcdef")
SERIAL = bytes.fromhex("8800000000000001")
METER = "000000000001"
CUSTOMER = "112233445566"


def make_card(card_type=cf.PURCHASE, amount=10000, count=2, serial=SERIAL, mk=MK_C,
              meter=METER, customer=CUSTOMER):
    return card_model.Card.issued(mk, serial, card_type, meter, customer, amount, count)


def run_with_card(card, fn, pull_after=None, timeout=20, reader_kw=None, **sim_kw):
    """Insert `card` into a fresh CPython slot and return await fn(reader, sim)."""

    async def main():
        q = asyncio.Queue()

        async def on_conn(r, w):
            await q.put((r, w))

        srv = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        sim = card_sim.T0Sim("127.0.0.1", port, card, **sim_kw)
        sim.insert(pull_after)
        r, w = await asyncio.wait_for(q.get(), 5)
        try:
            return await asyncio.wait_for(fn(CardReader(r, w, **(reader_kw or {})), sim), timeout)
        finally:
            w.close()
            srv.close()
            await asyncio.get_running_loop().run_in_executor(None, sim.wait)

    return asyncio.run(main())


class Output:
    """A process's output lines, read in a thread, so a test waits for what
    the process says rather than sleeping and hoping it is done."""

    def __init__(self, stream):
        self.lines = []
        self._done = False
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            with self._cv:
                self.lines.append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self._done = True
            self._cv.notify_all()

    def wait(self, line, count=1, timeout=30):
        """Until `line` has been printed `count` times in all."""
        with self._cv:
            self._cv.wait_for(lambda: self.lines.count(line) >= count or self._done, timeout)
            assert self.lines.count(line) >= count, "no %r (x%d) in:\n%s" % (
                line, count, "\n".join(self.lines))

    def after(self, text, since=0, timeout=60, exact=False):
        """The index after the first line from `since` holding `text` (the
        whole line, if exact): a cursor for waiting in order."""
        def found():
            for i in range(since, len(self.lines)):
                if (self.lines[i] == text) if exact else (text in self.lines[i]):
                    return i + 1
            return None
        with self._cv:
            self._cv.wait_for(lambda: found() is not None or self._done, timeout)
            at = found()
            assert at is not None, "no %r in:\n%s" % (text, "\n".join(self.lines[-80:]))
            return at

    def text(self):
        with self._cv:
            return "\n".join(self.lines)

    def close(self):
        self._thread.join(10)
        return self.lines


class SimProcess:
    """tools/card_sim.py t0 --control PORT in a subprocess."""

    def __init__(self, slot_port, *args):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tools", "card_sim.py"), "t0",
             "--connect", "127.0.0.1:%d" % slot_port, "--control", "0"] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("control on"), line + self.proc.stderr.read()
        self.control = int(line.rsplit(":", 1)[1])  # port 0: no race for a free port
        self._sock = socket.create_connection(("127.0.0.1", self.control), timeout=30)
        self._f = self._sock.makefile("rw")

    def cmd(self, **req):
        self._f.write(json.dumps(req) + "\n")
        self._f.flush()
        return json.loads(self._f.readline())

    def close(self):
        try:
            self.cmd(cmd="quit")
        except (OSError, ValueError):
            pass
        self._sock.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
