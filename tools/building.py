"""`make run`: a simulated building (a meter simulator on a TCP bus) and the
terminal on the unix board under MicroPython, wired together, with its card
slot open on 127.0.0.1:7816 and a development key store (the security
profile's test master keys, never a production key).

  python tools/building.py [--meters FILE] [--slot HOST:PORT] [--card-log FILE]
                           [terminal options...]

Anything not understood here is passed to boards/unix/terminal.py (--once, ...).

In a terminal, the terminal runs on a pseudo-terminal relayed to yours, and
keys that the terminal does not use insert simulated cards into its slot
(tools/card_sim.py, for the meter selected, its output in build/card-sim.log):

  p  purchase card (the meter's purchase count + 1, 100.00 yuan)
  o  opening card    r  reissued card
  x  a clone (fails internal authenticate)   f  a forged purse (bad sale MAC)
  e  a card pulled out early, in the middle of the read
  t  a technician card (technician 900000000001, PIN 246810; type it, Enter)
  n  swap the selected meter for a new one of the same key batch (0000000009xx)
  N  swap it for a meter of another batch, its key package put in the inbox
  a  the resident's card at the meter: opens a new meter's account
  u  pull the card now      m  next meter      h  this list again

Ctrl-C stops everything. Without a terminal (output piped), the terminal
runs as it is and this prints the card_sim command to use from a second shell.
"""
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import procs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
TERMINAL = os.path.join(ROOT, "boards", "unix", "terminal.py")
CARD_SIM = os.path.join(ROOT, "tools", "card_sim.py")
CARD_SLOT = "127.0.0.1:7816"
DEV_MK_C = "fedcba98765432100123456789abcdef"  # the profile's test vector key
AMOUNT = 10000  # fen on a simulated purchase card: 100.00 yuan
HOLD_S = 30  # a card stays in the slot this long unless pulled (u) or replaced
TECH_HOLD_S = 600  # a technician takes longer
TECH_ID, TECH_PIN = "900000000001", "246810"  # the simulated technician card
DEV_TRANSPORT = "0f0e0d0c0b0a09080706050403020100"  # the dev key store's K_t (packages)
OTHER_BATCH_KM = "5a5a5a5aa5a5a5a5f0f0f0f00f0f0f0f"  # K_m of a "meter of another batch"
PULL_EARLY = 60  # bytes on the line before the "pulled early" card leaves

# key -> (card kind, what the key help says)
CARD_KEYS = {
    "p": ("purchase", "purchase"),
    "o": ("opening", "open"),
    "r": ("reissued", "reissue"),
    "x": ("clone", "clone"),
    "f": ("forged", "forge"),
    "e": ("pulled", "early"),
    "t": ("technician", "tech:" + TECH_PIN),
}
HINT = "p purchase o open r reissue x clone f forge e early t tech:%s u pull m next" % TECH_PIN
HINT_MORE = "n/N new meter (same/other key batch)  a card at the meter  h help"


class Usage(Exception):
    """A command line or meters file this cannot run with: one line, exit 2."""


def dev_keystore(path=None):
    """A key store with the profile's test keys and a fixed development
    transport key (for key packages), made once: build/dev-keystore.bin, or
    `path` (the run's own, where re-registration adds meter keys)."""
    path = path or os.path.join(ROOT, "build", "dev-keystore.bin")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        subprocess.check_call([sys.executable, os.path.join(ROOT, "tools", "make_keystore.py"),
                               "create", "--dev", "--transport", DEV_TRANSPORT, path],
                              stdout=subprocess.DEVNULL)
    return path


def load_meters(path):
    """The meters file: a JSON list of objects with a 12-digit "address"."""
    try:
        with open(path) as f:
            meters = json.load(f)
    except OSError as e:
        raise Usage("cannot read the meters file %s: %s" % (path, e.strerror)) from None
    except ValueError as e:
        raise Usage("the meters file %s is not JSON: %s" % (path, e)) from None
    if not isinstance(meters, list) or not meters:
        raise Usage("the meters file %s must be a JSON list of meters" % path)
    for n, m in enumerate(meters, 1):
        a = m.get("address") if isinstance(m, dict) else None
        if not isinstance(a, str) or len(a) != 12 or not a.isdigit():
            raise Usage("the meters file %s, meter %d: \"address\" must be 12 digits, not %r"
                        % (path, n, a))
    return meters


def parse_args(argv):
    """-> (our options, the terminal's arguments)."""
    opts = {"meters": os.path.join(ROOT, "boards", "unix", "building.json"),
            "slot": CARD_SLOT, "card-log": os.path.join(ROOT, "build", "card-sim.log")}
    rest = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--meters", "--slot", "--card-log"):
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise Usage("%s needs a value (%s)" % (a, {
                    "--meters": "a JSON file of meters", "--slot": "HOST:PORT",
                    "--card-log": "a file"}[a]))
            opts[a[2:]] = argv[i + 1]
            i += 2
            continue
        rest.append(a)
        i += 1
    return opts, rest


# -- cards ---------------------------------------------------------------------

def card_command(kind, meter, count, slot=CARD_SLOT, amount=AMOUNT):
    """The card_sim.py command line that inserts a card of `kind` for `meter`
    (a building.json entry) carrying purchase count `count`."""
    if kind not in ("purchase", "opening", "reissued", "clone", "forged", "pulled",
                    "technician"):
        raise ValueError("unknown card kind %r" % kind)
    if kind == "technician":
        return [sys.executable, CARD_SIM, "t0", "--connect", slot, "--mk-c", DEV_MK_C,
                "--serial", "7700000000000001", "--type", "technician", "--customer", TECH_ID,
                "--pin", TECH_PIN, "--hold", str(TECH_HOLD_S)]
    address = meter["address"]
    cmd = [sys.executable, CARD_SIM, "t0", "--connect", slot, "--mk-c", DEV_MK_C,
           "--serial", "8800" + address,
           "--type", kind if kind in ("opening", "reissued") else "purchase",
           "--meter", address, "--customer", meter.get("customer") or "000000000000",
           "--amount", str(amount), "--count", str(count), "--hold", str(HOLD_S)]
    if kind in ("clone", "forged"):
        cmd += ["--fault", kind]
    elif kind == "pulled":
        cmd += ["--pull-after", str(PULL_EARLY)]
    return cmd


def meter_count(control, address, timeout=3):
    """The meter's purchase count, asked of the simulator's control port
    ("tcp:HOST:PORT"); None if it does not answer."""
    _, host, port = control.split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.sendall(json.dumps({"cmd": "get", "address": address}).encode() + b"\n")
            f = s.makefile("rb")
            reply = json.loads(f.readline())
        return int(reply["meter"]["count"]) if reply.get("ok") else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Cards:
    """The card keys' state: the meter selected, the card in the slot."""

    def __init__(self, meters, control, slot, log_path, say, inbox=None):
        self.meters = meters
        self.inbox = inbox  # the terminal's key package folder
        self.control = control
        self.slot = slot
        self.log_path = log_path
        self.say = say  # one line to the user
        self.index = 0
        self.proc = None
        self.n = 0
        self.fleet = None  # the head-end's ledger hears of each sale (building_fleet)

    def key(self, ch):
        """Handle a key; False if it is not one of ours."""
        if ch in CARD_KEYS:
            self.insert(CARD_KEYS[ch][0])
        elif ch == "m":
            self.index = (self.index + 1) % len(self.meters)
            m = self.meters[self.index]
            self.say("building: meter %s selected (customer %s)"
                     % (m["address"], m.get("customer", "?")))
        elif ch == "u":
            if self.pull():
                self.say("building: card pulled")
        elif ch in ("n", "N"):
            self.swap(ch == "N")
        elif ch == "a":
            m = self.meters[self.index]
            ok = simulator(self.control, "card_at_meter", address=m["address"],
                           customer=m.get("customer"))
            self.say("building: card at meter %s: %s" % (
                m["address"], "account opened" if ok else "the simulator did not answer"))
        elif ch == "h":
            self.say("building: " + HINT)
            self.say("building: " + HINT_MORE)
            if self.fleet is not None:
                self.say("building: the head-end's page: " + self.fleet.page)
        else:
            return False
        return True

    def pull(self):
        """Take the card out (its simulator closes the connection)."""
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            return True
        return False

    def insert(self, kind):
        self.pull()  # one slot: a new card takes the place of the old one
        m = self.meters[self.index]
        count = meter_count(self.control, m["address"])
        note = ""
        if count is None:
            count = int(m.get("count", 0))
            note = " (simulator did not answer: count from the meters file)"
        cmd = card_command(kind, m, count + 1, self.slot)
        self.n += 1
        os.makedirs(os.path.dirname(os.path.abspath(self.log_path)), exist_ok=True)
        with open(self.log_path, "a") as log:
            log.write("--- card %d: %s\n" % (self.n, " ".join(cmd[1:])))
            log.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        if self.fleet is not None and kind in ("purchase", "reissued", "pulled"):
            # the office sold it (tools/card_tool.py sell does this in service)
            self.fleet.sold(cmd[cmd.index("--serial") + 1], m.get("customer") or "000000000000",
                            m["address"], count + 1, AMOUNT)
        if kind == "technician":
            self.say("building: card %d in: technician %s, type the PIN %s and Enter"
                     % (self.n, TECH_ID, TECH_PIN))
            return
        self.say("building: card %d in: %s, meter %s, count %d, %d.%02d yuan%s"
                 % (self.n, CARD_KEYS_LABEL[kind], m["address"], count + 1,
                    AMOUNT // 100, AMOUNT % 100, note))

    def swap(self, other_batch):
        """The selected meter replaced by a new one on the bus (the
        simulator's `replace`); for another batch, the office's key package
        (tools/work_order.py) lands in the terminal's inbox."""
        m = self.meters[self.index]
        new = "0000000009" + m["address"][-2:]
        key = OTHER_BATCH_KM if other_batch else None
        if new == m["address"] or not simulator(self.control, "replace", address=m["address"],
                                                 new_address=new, key=key):
            self.say("building: meter %s not swapped (already new?)" % m["address"])
            return
        old, m["address"] = m["address"], new
        note = "same key batch"
        if other_batch and self.inbox:
            os.makedirs(self.inbox, exist_ok=True)
            r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "work_order.py"),
                                "package", "--meter", new, "--keys", "-", "--out", self.inbox],
                               input=json.dumps({"km": OTHER_BATCH_KM,
                                                 "transport": DEV_TRANSPORT}),
                               text=True, capture_output=True, check=False)
            note = "another batch, package %s/%s.key" % (os.path.relpath(self.inbox), new)
            if r.returncode:
                note = "another batch, no package: " + r.stderr.strip()
        self.say("building: meter %s swapped for new meter %s (%s), not opened"
                 % (old, new, note))

    def close(self):
        self.pull()


def simulator(control, cmd, **kw):
    """One command to the meter simulator's control port; True if it did it."""
    _, host, port = control.split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=3) as s:
            s.sendall(json.dumps(dict(kw, cmd=cmd)).encode() + b"\n")
            return bool(json.loads(s.makefile("rb").readline()).get("ok"))
    except (OSError, ValueError):
        return False


CARD_KEYS_LABEL = dict(CARD_KEYS.values())  # kind -> label


class KeyFilter:
    """Splits what the user types into the terminal's bytes and our card
    keys. Escape sequences (arrows, function keys, terminal replies) pass
    through whole: a letter inside one is not a card key."""

    def __init__(self, ours):
        self.ours = ours  # set of single characters
        self._state = 0  # 0 text, 1 after Esc, 2 inside Esc [ / Esc O

    def feed(self, data):
        """-> (bytes for the terminal, [our keys])."""
        out = bytearray()
        keys = []
        for b in data:
            if self._state == 1:
                if b in (0x5B, 0x4F):  # '[' or 'O'
                    self._state = 2
                    out.append(b)
                    continue
                self._state = 0
            elif self._state == 2:
                out.append(b)
                if 0x40 <= b <= 0x7E and b not in (0x5B, 0x4F):
                    self._state = 0
                continue
            if b == 0x1B:
                self._state = 1
                out.append(b)
            elif chr(b) in self.ours:
                keys.append(chr(b))
            else:
                out.append(b)
        return bytes(out), keys


class OutTracker:
    """Follows the terminal's output to know when a line of ours can go in
    without scribbling over the panel: not inside an escape sequence, no
    cursor save (ESC 7) waiting for its restore, the cursor at a line start.
    The console (boards/unix/console_ui.py) rests its cursor on the empty
    last line of its log region, so a line written then lands in the log."""

    def __init__(self):
        self._esc = 0  # 0 text, 1 after Esc, 2 in a CSI
        self._saved = False
        self._col0 = True
        self.cleared = False  # the console laid itself out (ESC [ 2 J seen)
        self._csi = bytearray()

    def feed(self, data):
        for b in data:
            if self._esc == 1:
                self._esc = 2 if b == 0x5B else 0
                if b == 0x37:
                    self._saved = True
                elif b == 0x38:
                    self._saved = False
                    self._col0 = True
                self._csi = bytearray()
            elif self._esc == 2:
                if 0x40 <= b <= 0x7E:
                    self._esc = 0
                    if b == 0x48:  # CUP: the console only parks the cursor at column 1
                        self._col0 = self._csi.endswith(b";1") or not self._csi
                    elif b == 0x4A and self._csi == b"2":
                        self.cleared = True
                else:
                    self._csi.append(b)
            elif b == 0x1B:
                self._esc = 1
            elif b in (0x0A, 0x0D):
                self._col0 = True
            elif b >= 0x20:
                self._col0 = False

    @property
    def at_rest(self):
        return self._esc == 0 and not self._saved and self._col0


# -- the run ------------------------------------------------------------------

def start_simulator(meters, baud):
    sim = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tools", "meter_sim.py"), "--tcp", "127.0.0.1:0",
         "--meters", meters, "--baud", str(baud)],
        stdout=subprocess.PIPE, text=True)
    line = sim.stdout.readline()
    if not line:
        sim.kill()
        raise SystemExit("building: the meter simulator did not start")
    return sim, json.loads(line)


def terminal_takes(option):
    """Whether terminal.py knows `option` (read from its source)."""
    try:
        with open(TERMINAL) as f:
            return '"%s"' % option in f.read()
    except OSError:
        return False


def _winsize(fd):
    import fcntl
    import termios
    return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)


def _on_pty(cmd, cards, hint_fallback):
    """Run cmd on a pseudo-terminal relayed to ours (raw), card keys taken
    out of what is typed. Returns the terminal's exit status."""
    import fcntl
    import pty
    import termios
    import tty

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, _winsize(sys.stdout.fileno()))

    def ctty():  # the pty becomes the terminal's own: Ctrl-C there is its SIGINT
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    # preexec_fn: TIOCSCTTY must run in the child after setsid(), which Popen
    # has no option for; building.py starts no threads, so fork is safe here.
    child = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave,
                             preexec_fn=ctty, close_fds=True)  # noqa: PLW1509
    os.close(slave)
    fin, fout = sys.stdin.fileno(), sys.stdout.fileno()
    saved = termios.tcgetattr(fin)
    track = OutTracker()
    keys = KeyFilter(set(CARD_KEYS) | {"m", "u", "h", "n", "N", "a"})
    pending = [hint_fallback] if hint_fallback else []
    m = cards.meters[cards.index]
    pending.append("building: card keys insert cards for meter %s (m: the next meter);"
                   " card_sim output in %s" % (m["address"], os.path.relpath(cards.log_path)))
    seen_output = False
    lines_ok = False  # the console is laid out (or drew no panel): our lines can go in
    width = os.get_terminal_size(fout).columns

    def say(line):
        pending.append(line)

    cards.say = say

    def flush():
        while pending and track.at_rest and (lines_ok or track.cleared):
            os.write(fout, (pending.pop(0)[:max(width - 1, 10)] + "\r\n").encode())

    def on_winch(*_):
        nonlocal width
        try:
            fcntl.ioctl(master, termios.TIOCSWINSZ, _winsize(fout))
            width = os.get_terminal_size(fout).columns
        except OSError:
            pass

    old_winch = signal.signal(signal.SIGWINCH, on_winch)
    try:
        tty.setraw(fin)
        while True:
            try:
                r, _, _ = select.select([master, fin], [], [], 0.05 if pending else 0.5)
            except InterruptedError:
                continue
            if master in r:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the terminal closed its side
                    data = b""
                if not data:
                    break
                os.write(fout, data)
                track.feed(data)
                seen_output = True
            if fin in r:
                data = os.read(fin, 1024)
                if not data:
                    break
                passed, ours = keys.feed(data)
                if passed:
                    os.write(master, passed)
                for k in ours:
                    cards.key(k)
            if master not in r and seen_output:  # the terminal is quiet
                if not r:
                    lines_ok = True  # even if it drew no panel (too small): lines as they are
                flush()
        return child.wait()
    finally:
        if track.cleared:  # whatever the terminal left undone: scrolling back, prompt below
            os.write(fout, b"\x1b[r\x1b[%d;1H\x1b[K" % os.get_terminal_size(fout).lines)
        termios.tcsetattr(fin, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, old_winch)
        procs.stop(child)
        os.close(master)


def _sigterm(*_):
    raise SystemExit(143)


def _start_fleet(state, wanted):
    """The broker and head-end the terminal reports to (tools/building_fleet.py),
    or None with a line saying why not."""
    if not wanted:
        return None
    import building_fleet
    why = building_fleet.available()
    if why is None:
        try:
            fleet = building_fleet.Fleet(state or tempfile.mkdtemp(prefix="fleet-"),
                                         os.path.join(ROOT, "build", "headend.log"))
        except (building_fleet.FleetError, RuntimeError, OSError) as e:
            why = str(e)
        else:
            print("building: the head-end's page: %s (reports over %s)"
                  % (fleet.page, fleet.mqtt), flush=True)
            return fleet
    print("building: no head-end: %s" % why, flush=True)
    return None


def main(argv):
    try:
        opts, argv = parse_args(list(argv))
        meters = load_meters(opts["meters"])
    except Usage as e:
        print("building: %s" % e, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _sigterm)
    baud = 2400
    sim, info = start_simulator(opts["meters"], baud)
    cards = None
    state = None
    fleet = None
    try:
        print("building: %d meters on %s (simulator control on %s)"
              % (len(meters), info["bus"], info["control"]), flush=True)
        slot = [] if "--once" in argv else ["--card-slot", "tcp:" + opts["slot"]]
        keys = None
        if slot and "--state" not in argv and terminal_takes("--state"):
            # The terminal's flash and key store, new each run: the simulated
            # building starts afresh from the meters file every time too.
            os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
            state = tempfile.mkdtemp(prefix="terminal-state-", dir=os.path.join(ROOT, "build"))
            slot += ["--state", state]
            keys = os.path.join(state, "keystore.bin")
        if slot:
            slot += ["--keystore", dev_keystore(keys)]
        fleet = _start_fleet(state, slot and terminal_takes("--mqtt"))
        if fleet is not None:
            slot += ["--mqtt", fleet.mqtt]
        cmd = [MICROPYTHON, TERMINAL, "--bus", info["bus"], "--meters", opts["meters"],
               "--baud", str(baud)] + slot + argv
        interactive = slot and sys.stdin.isatty() and sys.stdout.isatty()
        if not interactive:
            if slot:
                print("building: insert a card with\n  " + " ".join(
                    [".venv/bin/python", "tools/card_sim.py"]
                    + card_command("purchase", meters[0], int(meters[0].get("count", 0)) + 1,
                                   opts["slot"])[2:]), flush=True)
            try:
                return subprocess.call(cmd)
            except KeyboardInterrupt:
                return 0
        cards = Cards(meters, info["control"], opts["slot"], opts["card-log"], None,
                      os.path.join(state, "inbox") if state else None)
        cards.fleet = fleet
        hint_fallback = None
        if terminal_takes("--hint"):
            cmd += ["--hint", HINT]
        else:
            hint_fallback = "building: " + HINT
        return _on_pty(cmd, cards, hint_fallback)
    except KeyboardInterrupt:
        return 0
    finally:
        if cards is not None:
            cards.close()
        if fleet is not None:
            fleet.stop()
        procs.stop(sim)
        if state:
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
