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

Ctrl-C, SIGTERM or SIGHUP stops it and the pcscd it started. If another
pcscd runs (or something holds the port), it says so in one line, with what
to do, and exits 2.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import hostpath  # noqa: F401
import procs

VPCD_PORT = 35963
VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
PCSCD_SOCKET = "/run/pcscd/pcscd.comm"
PCSCD_PID = "/run/pcscd/pcscd.pid"
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
            raise PcscUnavailable(_busy(self.port))
        self._dir = tempfile.mkdtemp(prefix="pcsc-conf-")
        with open(os.path.join(self._dir, "vpcd"), "w") as f:
            f.write(_CONF % (self.port, VPCD_DRIVER, self.port))
        log = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL
        pcscd = shutil.which("pcscd") or "/usr/sbin/pcscd"
        self.proc = subprocess.Popen([pcscd, "-f", "-c", self._dir], stdout=log, stderr=log)
        if log is not subprocess.DEVNULL:
            log.close()  # pcscd has its own copy
        deadline = time.monotonic() + timeout
        try:
            while not (_listening(self.port) and _pcscd_alive()):
                if self.proc.poll() is not None:
                    raise PcscUnavailable("pcscd exited with %d" % self.proc.returncode)
                if time.monotonic() > deadline:
                    raise PcscUnavailable("pcscd did not open vpcd port %d (is a socket "
                                          "holding it?)" % self.port)
                time.sleep(0.05)
        except BaseException:  # a failure, Ctrl-C or SIGTERM while starting: no pcscd left
            self.stop()
            raise
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


def _busy(port):
    """What to do when a pcscd (or something on vpcd's port) is already there."""
    who = "something listens on port %d" % port
    if _pcscd_alive():
        who = "another pcscd already runs (%s answers" % PCSCD_SOCKET
        try:
            with open(PCSCD_PID) as f:
                who += ", pid %s" % f.read().replace("\0", "").strip()
        except OSError:
            pass
        who += ")"
    return ("%s: stop it first (systemctl stop pcscd.socket pcscd, or kill the pid) "
            "or pick another --port" % who)


def _stop_on_sigterm(*_):
    raise SystemExit(143)  # unwinds through Pcscd.__exit__: pcscd is stopped


def main(argv=None):
    p = argparse.ArgumentParser(description="A private pcscd with the vpcd virtual reader.")
    p.add_argument("--port", type=int, default=VPCD_PORT,
                   help="vpcd's port (default %(default)s;"
                        " card_sim.py vpcd --vpcd 127.0.0.1:PORT)")
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    signal.signal(signal.SIGHUP, _stop_on_sigterm)
    try:
        with Pcscd(port=a.port) as d:
            print("pcscd (pid %d) running with the vpcd reader on port %d; Ctrl-C stops it"
                  % (d.proc.pid, d.port), flush=True)
            while True:
                time.sleep(3600)
    except PcscUnavailable as e:
        print("pcsc_env: %s" % e, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
