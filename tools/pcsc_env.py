#!/usr/bin/env python3
"""A private pcscd with only the vpcd virtual reader, for trying the card
tool without hardware and for the PC/SC tests.

  .venv/bin/python tools/pcsc_env.py        # pcscd in the foreground; Ctrl-C stops
  .venv/bin/python tools/card_sim.py vpcd --mk-c HEX ...   # insert a card
  .venv/bin/python tools/card_tool.py --card-master-key HEX dump

pcscd runs as `pcscd -f -c DIR` (foreground, no systemd, a reader.conf.d
with just vpcd), so a serial-reader config elsewhere on the machine cannot
slow it down. Only one pcscd per machine, and vpcd listens on a fixed port.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procs  # noqa: E402

VPCD_PORT = 35963
VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
PCSCD_SOCKET = "/run/pcscd/pcscd.comm"
_CONF = """FRIENDLYNAME "Virtual PCD"
DEVICENAME   /dev/null:0x8C7B
LIBPATH      %s
CHANNELID    0x8C7B
""" % VPCD_DRIVER


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

    def __init__(self, log_path=None):
        self.log_path = log_path
        self.proc = None
        self._dir = None

    def start(self, timeout=10):
        gone = missing()
        if gone:
            raise PcscUnavailable("missing: " + "; ".join(gone))
        if _pcscd_alive() or _listening(VPCD_PORT):
            raise PcscUnavailable("another pcscd already runs (%s or port %d busy): stop it first"
                                  % (PCSCD_SOCKET, VPCD_PORT))
        self._dir = tempfile.mkdtemp(prefix="pcsc-conf-")
        with open(os.path.join(self._dir, "vpcd"), "w") as f:
            f.write(_CONF)
        log = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL
        pcscd = shutil.which("pcscd") or "/usr/sbin/pcscd"
        self.proc = subprocess.Popen([pcscd, "-f", "-c", self._dir], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while not (_listening(VPCD_PORT) and _pcscd_alive()):
            if self.proc.poll() is not None:
                raise PcscUnavailable("pcscd exited with %d" % self.proc.returncode)
            if time.monotonic() > deadline:
                self.stop()
                raise PcscUnavailable("pcscd did not open vpcd port %d" % VPCD_PORT)
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
    with Pcscd():
        print("pcscd running with the vpcd reader on port %d; Ctrl-C stops it" % VPCD_PORT, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
