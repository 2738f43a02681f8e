"""A board over mpremote, in this process: its raw REPL through mpremote's
own Python transport (mpremote.transport_serial.SerialTransport), so what
is sent to the board (a key, when provisioning) is never on any process's
command line, in a file or in a log.

    with Link("/dev/ttyACM0") as b:
        print(b.run("import sys; print(sys.implementation._mpy)"))

No soft reset on entering the raw REPL (mpremote's `resume`): the unix
port has none, and a board keeps what its boot mounted. Every failure is a
BoardError with one line that says what to do.
"""
import contextlib
import io
import json
import os


class BoardError(Exception):
    """The board cannot be reached or refused what it was asked; one line."""


class Link:
    def __init__(self, device, timeout=10):
        self.device = device
        self.timeout = timeout
        self.t = None

    def __enter__(self):
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport
        if not os.path.exists(self.device):
            raise BoardError("%s: no such device (is the board plugged in, the unix "
                             "board started?)" % self.device)
        quiet = io.StringIO()  # mpremote prints what a board said when it fails
        try:
            with contextlib.redirect_stdout(quiet):
                self.t = SerialTransport(self.device, timeout=self.timeout)
                self.t.enter_raw_repl(soft_reset=False, timeout_overall=self.timeout)
        except TransportError as e:
            self.close()
            if "failed to access" in str(e):
                raise BoardError("%s: cannot open it (in use by another program?)"
                                 % self.device) from None
            raise BoardError("%s does not answer (no MicroPython raw REPL there)"
                             % self.device) from None
        except OSError as e:
            self.close()
            raise BoardError("%s: %s" % (self.device, e.strerror or e)) from None
        return self

    def run(self, code, timeout=60):
        """Run code on the board; its printed output (str). An exception on
        the board is a BoardError with the exception's last line."""
        from mpremote.transport import TransportError
        try:
            out, err = self.t.exec_raw(code, timeout=timeout)
        except TransportError as e:
            raise BoardError("%s stopped answering (%s)" % (self.device, e)) from None
        except OSError as e:
            raise BoardError("%s: %s" % (self.device, e.strerror or e)) from None
        if err:
            last = err.decode("utf-8", "replace").strip().splitlines() or ["?"]
            raise BoardError("%s: the board says %s" % (self.device, last[-1]))
        return out.decode("utf-8", "replace")

    def run_json(self, code, timeout=60):
        """Run code whose last printed line is JSON; that line decoded."""
        out = self.run(code, timeout).strip().splitlines()
        try:
            return json.loads(out[-1])
        except (IndexError, ValueError):
            raise BoardError("%s: unexpected answer %r" % (self.device, (out or [""])[-1][:60])) \
                from None

    def send(self, code):
        """Run code without waiting for it to finish (a reset)."""
        self.t.exec_raw_no_follow(code)

    def close(self):
        t, self.t = self.t, None
        if t is None:
            return
        try:
            if t.in_raw_repl:
                t.exit_raw_repl()
            t.close()
        except OSError:
            pass

    def __exit__(self, *exc):
        self.close()


# Runs on the board: where its littlefs is (/flash on the unix board and a
# pyboard, / elsewhere) and which bundle it holds now.
BOARD_INFO = """import sys,os,json
r=''
try:
 os.stat('/flash')
 r='/flash'
except OSError:pass
b=None
try:
 with open(r+'/bundle.json') as f:b=json.load(f)
except (OSError,ValueError,TypeError):pass
if b is not None:b={k:b.get(k) for k in ('board','version','arch')}
print(json.dumps({'mpy':sys.implementation._mpy,'platform':sys.platform,'root':r,'bundle':b}))
"""


def board_info(link):
    """{mpy, platform, root, bundle: {board, version, arch} or None}."""
    return link.run_json(BOARD_INFO)
