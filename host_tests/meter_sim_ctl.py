"""Start tools/meter_sim.py for a test and talk to its control port.

    with MeterSim(count=4, transport="tcp") as sim:
        sim.bus                       # "tcp:127.0.0.1:40211" or "/dev/pts/7"
        sim.set("000000000001", balance=500)
        sim.fault("000000000002", "no_reply", times=2)
        sim.control("stats")          # -> reply dict; raises MeterSimError on ok=false
"""
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time

import hostpath
import procs

ROOT = hostpath.ROOT
SIM = os.path.join(ROOT, "tools", "meter_sim.py")


class MeterSimError(RuntimeError):
    """The simulator failed to start or refused a control command."""


def _hostport(name):
    host, port = name[len("tcp:"):].rsplit(":", 1)
    return host, int(port)


class MeterSim:
    def __init__(self, count=None, transport="tcp", baud=2400, reply_delay_ms=20,
                 meters=None, master_key=None, extra_args=(), start_timeout=10.0,
                 serial=None):
        """count: default meters 000000000001..count (4 if neither count nor
        meters is given, else 0); meters: list of meter states (a --meters
        file); transport "serial" needs serial=DEV; extra_args go to the CLI
        as they are (e.g. ["--preamble", "0", "-v"])."""
        if transport not in ("tcp", "pty", "serial"):
            raise ValueError("transport must be tcp, pty or serial")
        if count is None:
            count = 0 if meters else 4
        self.args = [sys.executable, SIM, "--baud", str(baud),
                     "--reply-delay-ms", str(reply_delay_ms), "--count", str(count)]
        if transport == "pty":
            self.args.append("--pty")
        elif transport == "serial":
            self.args += ["--serial", serial]
        self.meters = meters
        if master_key is not None:
            self.args += ["--master-key", master_key]
        self.args += list(extra_args)
        self.start_timeout = start_timeout
        self.proc = None
        self._ctl = None
        self._file = None
        self._tmp = None
        self._err = None

    # -- lifetime -------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        args = list(self.args)
        if self.meters is not None:
            fd, self._tmp = tempfile.mkstemp(suffix=".json", prefix="meters_")
            with os.fdopen(fd, "w") as f:
                json.dump(self.meters, f)
            args += ["--meters", self._tmp]
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._err, cwd=ROOT)
        ready, _, _ = select.select([self.proc.stdout], [], [], self.start_timeout)
        line = self.proc.stdout.readline() if ready else b""
        try:
            info = json.loads(line)
        except ValueError:
            self.proc.terminate()
            self.proc.wait(5)
            err = self.stderr()
            self.stop()
            raise MeterSimError("meter_sim did not start: %r\n%s" % (line, err))
        self.bus = info["bus"]
        self.control_addr = info["control"]
        if self.bus.startswith("tcp:"):
            self.host, self.port = _hostport(self.bus)
        else:
            self.host, self.port = None, None
        self._ctl = socket.create_connection(_hostport(self.control_addr), timeout=10)
        self._file = self._ctl.makefile("rwb")

    def stderr(self):
        """What the simulator wrote to stderr so far (-v logs, errors)."""
        if self._err is None:
            return ""
        self._err.seek(0)
        return self._err.read().decode(errors="replace")

    def stop(self):
        if self._file is not None:
            self._file.close()
            self._ctl.close()
            self._file = self._ctl = None
        procs.stop(self.proc)
        if self.proc is not None:
            self.proc.stdout.close()
        if self._tmp is not None:
            os.unlink(self._tmp)
            self._tmp = None
        if self._err is not None:
            self._err.close()
            self._err = None

    # -- control --------------------------------------------------------------
    def control(self, cmd, **kw):
        kw["cmd"] = cmd
        self._file.write(json.dumps(kw).encode() + b"\n")
        self._file.flush()
        line = self._file.readline()
        if not line:
            raise MeterSimError("control connection closed\n%s" % self.stderr())
        reply = json.loads(line)
        if not reply.get("ok"):
            raise MeterSimError("%s: %s" % (cmd, reply.get("error")))
        return reply

    def meter(self, address):
        return self.control("get", address=address)["meter"]

    def set(self, address, **fields):
        return self.control("set", address=address, **fields)["meter"]

    def fault(self, address, kind, times=1, ms=None):
        kw = {"address": address, "kind": kind, "times": times}
        if ms is not None:
            kw["ms"] = ms
        return self.control("fault", **kw)

    def stats(self):
        return self.control("stats")

    def wait_stats(self, key, value, timeout=5.0):
        """Poll until stats[key] >= value (replies are sent asynchronously)."""
        end = time.monotonic() + timeout
        while True:
            s = self.stats()
            if s[key] >= value or time.monotonic() > end:
                return s
            time.sleep(0.01)
