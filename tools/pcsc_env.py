#!/usr/bin/env python3
"""A private pcscd with only the vpcd virtual reader, for trying the card
tool without hardware and for the PC/SC tests.

  .venv/bin/python tools/pcsc_env.py        # pcscd in the foreground; Ctrl-C stops
  .venv/bin/python tools/card_sim.py vpcd --mk-c HEX ...   # insert a card
  .venv/bin/python tools/card_tool.py --card-master-key HEX dump

pcscd runs as `pcscd -f -c DIR` (foreground, no systemd, a reader.conf.d
with just vpcd), so a serial-reader config elsewhere on the machine cannot
slow it down. Only one pcscd per machine. vpcd listens on 35963 unless
told otherwise (--port); the tests pick a port outside the kernel's
ephemeral range, since any socket that happens to hold the port (a client
connection, one in TIME_WAIT) makes vpcd's bind fail.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import hostpath  # noqa: F401
import procs  # noqa: E402

VPCD_PORT = 35963
VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
PCSCD_SOCKET = "/run/pcscd/pcscd.comm"
# DEVICENAME /dev/null:PORT puts vpcd in server mode on PORT
_CONF = """FRIENDLYNAME "Virtual PCD"
DEVICENAME   /dev/null:0x%04X
LIBPATH      %s
CHANNELID    0x%04X
"""


class PcscUnavailable(RuntimeError):
    """A piece of the PC/SC stack is missing; the message names the package."""


def missing():
    """What is missing for the PC/SC face, as Debian/pip package names."""
    out = []
    if not shutil.which("pcscd") and not os.path.exists("/usr/sbin/pcscd"):
        out.append("pcscd (Debian package pcscd)")
    if not os.path.exists(VPCD_DRIVER):
        out.append("vpcd driver (Debian package vsmartcard-vpcd)")
    try:
        import smartcard  # noqa: F401
    except ImportError:
        out.append("pyscard (pip; needs Debian libpcsclite-dev and swig to build)")
    try:
        import card_vicc
        card_vicc._virtualsmartcard()
    except ImportError:
        out.append("virtualsmartcard (Debian package python3-virtualsmartcard, "
                   "with pip's pycryptodome)")
    return out


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def _pcscd_alive():
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(PCSCD_SOCKET)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Pcscd:
    """Start/stop our own pcscd. Use as a context manager."""

    def __init__(self, log_path=None, port=VPCD_PORT):
        self.log_path = log_path
        self.port = port
        self.proc = None
        self._dir = None

    def start(self, timeout=10):
        gone = missing()
        if gone:
            raise PcscUnavailable("missing: " + "; ".join(gone))
        if _pcscd_alive() or _listening(self.port):
            raise PcscUnavailable("another pcscd already runs (%s or port %d busy): stop it first"
                                  % (PCSCD_SOCKET, self.port))
        self._dir = tempfile.mkdtemp(prefix="pcsc-conf-")
        with open(os.path.join(self._dir, "vpcd"), "w") as f:
            f.write(_CONF % (self.port, VPCD_DRIVER, self.port))
        log = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL
        pcscd = shutil.which("pcscd") or "/usr/sbin/pcscd"
        self.proc = subprocess.Popen([pcscd, "-f", "-c", self._dir], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while not (_listening(self.port) and _pcscd_alive()):
            if self.proc.poll() is not None:
                raise PcscUnavailable("pcscd exited with %d" % self.proc.returncode)
            if time.monotonic() > deadline:
                self.stop()
                raise PcscUnavailable("pcscd did not open vpcd port %d (is a socket holding it?)"
                                      % self.port)
            time.sleep(0.05)
        return self

    def stop(self):
        procs.stop(self.proc)
        self.proc = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main():
    p = argparse.ArgumentParser(description="A private pcscd with the vpcd virtual reader.")
    p.add_argument("--port", type=int, default=VPCD_PORT,
                   help="vpcd's port (default %(default)s; card_sim.py vpcd --vpcd 127.0.0.1:PORT)")
    a = p.parse_args()
    with Pcscd(port=a.port) as d:
        print("pcscd running with the vpcd reader on port %d; Ctrl-C stops it" % d.port, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
