#!/usr/bin/env python3
"""Start the unix board as a board you reach with mpremote: `micropython
-i boards/unix/repl_board.py STATE` under socat, on a PTY at DEVICE.

  python tools/unix_board.py [--state build/board] [--device build/board.tty]
                             [--loopback] [--image FILE]

It runs until Ctrl-C. STATE/flash.img is the board's flash (1 MB littlefs,
kept between runs); --image copies a factory image there first (a board
flashed in the factory). --loopback wires the board's RS-485 bus to a
loopback (a TCP echo on 127.0.0.1: what the self-test's loopback plug does
on a real board). Then, from another shell:

  mpremote connect build/board.tty resume exec "import os; print(os.listdir('/flash'))"
  python tools/flash_board.py build/board.tty build/bundle-unix-0.9.0

A reset of this board is a restart of this command (the unix port has no
soft reset). Tests use UnixBoard directly.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import hostpath

ROOT = hostpath.ROOT
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
REPL_BOARD = os.path.join(ROOT, "boards", "unix", "repl_board.py")


class Loopback:
    """A TCP echo on 127.0.0.1: the bus's loopback plug."""

    def __init__(self):
        self._srv = socket.socket()
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(4)
        self.spec = "tcp:127.0.0.1:%d" % self._srv.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self._srv.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c):
        with c:
            try:
                while True:
                    b = c.recv(256)
                    if not b:
                        return
                    c.sendall(b)
            except OSError:
                return

    def close(self):
        self._srv.close()


class UnixBoard:
    """The board's process (socat + micropython -i) on a PTY at `device`.
    bus: what the board's bus is wired to (TERMINAL_BUS, see
    boards/unix/board.py config()), e.g. Loopback().spec."""

    def __init__(self, state, device, bus=None, from_source=False):
        """from_source: a plain `micropython -i` with the firmware from the
        source tree (MICROPYPATH) and no flash mounted: for tests that
        set up the board's files themselves (journal_tool's)."""
        self.state = os.path.abspath(state)
        self.device = os.path.abspath(device)
        self.bus = bus
        self.from_source = from_source
        self.proc = None

    def start(self, timeout=20):
        os.makedirs(self.state, exist_ok=True)
        self._unlink()  # a link a killed socat left: its PTY number may come back
        env = dict(os.environ)
        env.pop("MICROPYPATH", None)
        if self.bus:
            env["TERMINAL_BUS"] = self.bus
        cmd = "%s -i %s %s" % (MICROPYTHON, REPL_BOARD, self.state)
        if self.from_source:
            env["MICROPYPATH"] = hostpath.micropypath()
            cmd = "%s -i" % MICROPYTHON
        self.proc = subprocess.Popen(
            ["socat", "PTY,link=%s,raw,echo=0" % self.device, "EXEC:%s,pty,raw,echo=0" % cmd],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.device):
            if self.proc.poll() is not None:
                raise RuntimeError("socat stopped: %s" % self.proc.stderr.read().decode())
            if time.monotonic() > deadline:
                raise RuntimeError("socat made no PTY at %s" % self.device)
            time.sleep(0.02)
        return self

    def stop(self):
        """Power off: the whole process group (socat and micropython)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc.stderr.close()
        self.proc = None
        self._unlink()  # socat killed does not always remove its link

    def _unlink(self):
        if os.path.islink(self.device):
            os.unlink(self.device)

    def restart(self):
        """What machine.reset() is on a board."""
        self.stop()
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--state", default=os.path.join(ROOT, "build", "board"))
    p.add_argument("--device", default=os.path.join(ROOT, "build", "board.tty"))
    p.add_argument("--loopback", action="store_true", help="wire the RS-485 bus to a loopback")
    p.add_argument("--image", help="start from this factory image (copied to STATE/flash.img)")
    a = p.parse_args(argv)
    if shutil.which("socat") is None:
        print("unix_board: socat is not installed (make setup)", file=sys.stderr)
        return 2
    if os.path.lexists(a.device) and not os.path.islink(a.device):
        print("unix_board: %s is a file, not a board's link: pick another --device"
              % a.device, file=sys.stderr)
        return 2
    if os.path.exists(a.device):
        print("unix_board: %s is in use: another board runs there? stop it or pick --device"
              % a.device, file=sys.stderr)
        return 2
    if a.image:
        if not os.path.isfile(a.image) or os.path.getsize(a.image) != 4096 * 256:
            print("unix_board: %s is not a unix factory image (1 MB): build one with "
                  "tools/build_bundle.py unix" % a.image, file=sys.stderr)
            return 2
        os.makedirs(a.state, exist_ok=True)
        shutil.copyfile(a.image, os.path.join(a.state, "flash.img"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the board on the way out
    loop = Loopback() if a.loopback else None
    board = UnixBoard(a.state, a.device, loop.spec if loop else None)
    try:
        board.start()
    except RuntimeError as e:
        print("unix_board: %s" % e, file=sys.stderr)
        return 2
    print("unix board on %s (flash %s/flash.img%s); Ctrl-C stops it"
          % (a.device, a.state, ", bus on a loopback" if loop else ""), flush=True)
    try:
        board.proc.wait()
        print("unix_board: the board stopped", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        board.stop()
        if loop:
            loop.close()


if __name__ == "__main__":
    sys.exit(main())
