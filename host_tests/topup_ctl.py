"""Drive the real top-up flow under micropython (host_tests/mp/topup_harness.py)
against the meter and card simulators, and judge it by the simulators' own
state, never by the terminal's word.

    with Rig(meters=[...]) as rig:          # meter_sim + micropython terminal
        rig.boot()
        card = rig.card("000000000001", amount=5000)   # the next purchase
        logs = rig.session(card)            # insert, wait for the outcome, pull
        rig.check()                         # issue 10's invariant, every meter

The invariant (issue 10): every purchase reaches its meter exactly once,
nothing else does. Per meter: count == initial + purchases sold, balance ==
initial + their amounts, to the fen; each card's return file says what the
meter holds (balance, count) with result credited or already credited.
"""
import json
import os
import select
import socket
import subprocess
import tempfile
import threading
import time

import card_files as cf
import card_model
import card_sim
import hostpath
import meter_sim_codec as codec
from card_sim_ctl import free_port
from meter_sim_ctl import MeterSim
from mp_runner import MICROPYTHON, MP_PATH

ROOT = hostpath.ROOT
MP_DIR = os.path.join(ROOT, "host_tests", "mp")
HARNESS = os.path.join(MP_DIR, "topup_harness.py")
MK_C = bytes.fromhex("fedcba98765432100123456789abcdef")
MK_M = "0123456789abcdeffedcba9876543210"
TERMINAL = "000000000099"
HEAP = "288k"  # the app as .mpy in RAM (a board freezes it) and the harness; 256k left
# the full-flash test short once the technician and self-test keys joined the app
CLOCK = (2026, 11, 29, 20, 0, 0, 6, 333)  # the board's clock: time.localtime()-style
STAMP = "0020291126"  # CLOCK in the return file: mm hh DD MM YY, BCD

# The profile's return-file result byte, read from the card by hand.
RET_CREDITED, RET_ALREADY, RET_COUNT_ERROR, RET_REFUSED = 0, 1, 2, 3


def meter_state(address, customer=None, balance=10000, count=1, **kw):
    d = {"address": address, "customer": customer or "1" + address[1:],
         "balance": balance, "count": count}
    d.update(kw)
    return d


def parse_return(b):
    """The 24-byte return file by the profile's layout (not the firmware's
    parser): -> dict or None when never written."""
    if not any(b):
        return None
    bal = int.from_bytes(b[0:4], "little", signed=True)
    return {"balance": bal, "count": int.from_bytes(b[4:8], "little"), "result": b[8],
            "terminal": bytes(reversed(b[9:15])).hex(), "time": b[15:20].hex()}


def build_mpy(dest):
    """Compile firmware/, drivers/ and the unix board to .mpy in dest, as a
    board freezes them: a 256k heap then holds the app, not the compiler."""
    import glob
    from mp_runner import MPY_CROSS
    os.makedirs(dest, exist_ok=True)
    for d in ("firmware", "drivers", "boards/unix"):
        for src in glob.glob(os.path.join(ROOT, d, "*.py")):
            name = os.path.basename(src)[:-3]
            if name == "manifest":
                continue
            subprocess.run([MPY_CROSS, "-march=x64", "-o", os.path.join(dest, name + ".mpy"),
                            src], check=True, capture_output=True)
    return dest


class Terminal:
    """The micropython harness process: commands in, events out."""

    def __init__(self, setup, heap=HEAP, mpy=None):
        path = MP_PATH if mpy is None else os.pathsep.join((".frozen", mpy, MP_DIR))
        env = dict(os.environ, MICROPYPATH=path)
        self.proc = subprocess.Popen([MICROPYTHON, "-X", "heapsize=" + heap, HARNESS],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, text=True, bufsize=1)
        self.events = []
        self._cv = threading.Condition()
        self._eof = False
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()
        self._err = []
        self._te = threading.Thread(target=self._read_err, daemon=True)
        self._te.start()
        self.proc.stdin.write(json.dumps(setup) + "\n")
        self.proc.stdin.flush()
        self.wait_event(lambda e: e["ev"] == "ready", 30)

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"ev": "junk", "line": line.rstrip("\n")}
            with self._cv:
                self.events.append(ev)
                self._cv.notify_all()
        with self._cv:
            self._eof = True
            self._cv.notify_all()

    def _read_err(self):
        for line in self.proc.stderr:
            self._err.append(line)

    def mark(self):
        with self._cv:
            return len(self.events)

    def logs(self, since=0):
        with self._cv:
            return [e["line"] for e in self.events[since:] if e["ev"] == "log"]

    def wait_event(self, pred, timeout=60, since=0):
        end = time.monotonic() + timeout
        with self._cv:
            while True:
                for i in range(since, len(self.events)):
                    if pred(self.events[i]):
                        return i, self.events[i]
                left = end - time.monotonic()
                if self._eof or left <= 0:
                    raise AssertionError("no such event (%s) in:\n%s\n--- stderr\n%s" % (
                        "exited" if self._eof else "timeout",
                        "\n".join(json.dumps(e) for e in self.events[since:][-60:]),
                        "".join(self._err[-40:])))
                self._cv.wait(min(left, 1.0))

    def wait_log(self, text, since=0, timeout=60):
        return self.wait_event(lambda e: e["ev"] == "log" and text in e["line"], timeout, since)

    def cmd(self, cmd, timeout=60, **kw):
        since = self.mark()
        kw["cmd"] = cmd
        self.proc.stdin.write(json.dumps(kw) + "\n")
        self.proc.stdin.flush()
        _, ev = self.wait_event(lambda e: e["ev"] == "reply" and e["cmd"] == cmd, timeout, since)
        assert "error" not in ev, ev
        return ev

    def journal(self):
        """Every journal entry on the terminal's flash (newest first)."""
        since = self.mark()
        ev = self.cmd("journal")
        with self._cv:
            entries = [e for e in self.events[since:] if e["ev"] == "entry"]
        assert len(entries) == ev["n"], (ev, entries)
        return entries

    def close(self):
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write('{"cmd": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._t.join(5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


class Purchase:
    """A card sold at the office: the card object (its state persists
    across insertions, as a real card's does) and what was sold."""

    def __init__(self, meter, customer, amount, count, serial, card_type=cf.PURCHASE,
                 card=None):
        self.meter, self.customer, self.amount, self.count = meter, customer, amount, count
        self.serial = serial
        self.card = card or card_model.Card.issued(MK_C, serial, card_type, meter, customer,
                                                   amount, count)

    def returned(self):
        return parse_return(self.card.files[cf.SFI_RETURN])


class Rig:
    """A meter simulator (optionally behind a man in the middle), the
    terminal under micropython, and the bookkeeping of what was sold."""

    def __init__(self, meters, baud=115200, reply_delay_ms=1, poll=False, mode="cpu",
                 mitm=False, display=True, torn=1, interval=5, tmpdir=None, clock=CLOCK,
                 mpy=None, blocks=64, heap=HEAP):
        self.meter_states = meters
        self.setup = {}  # more of the harness's setup (reporting: mk_r, mqtt), set before use
        self.sim = MeterSim(meters=[{k: v for k, v in m.items()  # the record's, not the meter's
                                     if k not in ("record_customer", "record_state")}
                                    for m in meters], baud=baud, reply_delay_ms=reply_delay_ms)
        self.baud = baud
        self.poll = poll
        self.mode = mode
        self.mitm_wanted = mitm
        self.mitm = None
        self.display = display
        self.torn = torn
        self.clock = clock
        self.mpy = mpy
        self.blocks = blocks
        self.heap = heap
        self.extra = {}  # more harness setup, set before `with` (technician: keypad, inbox)
        self.interval = interval
        self.term = None
        self.slot = None
        self._tmp = tempfile.mkdtemp(prefix="topup_", dir=tmpdir)
        self.image = os.path.join(self._tmp, "flash.img")
        self.initial = {}
        self.sold = {}  # meter -> [Purchase]
        self.cards = []
        self._serial = 0

    def __enter__(self):
        self.sim.start()
        if self.mitm_wanted:
            self.mitm = Mitm(self.sim.host, self.sim.port)
        self.slot = free_port()
        self.term = self.start_terminal()
        for m in self.meter_states:
            st = self.sim.meter(m["address"])
            self.initial[m["address"]] = (st["balance"], st["count"])
            self.sold[m["address"]] = []
        return self

    def start_terminal(self):
        """The micropython process (again after a kill: its flash is the image file)."""
        seed = [{"address": m["address"], "meter_number": m["address"],
                 "customer": m.get("record_customer", m["customer"]),
                 "state": m.get("record_state", "active")} for m in self.meter_states]
        bus = self.sim.bus if self.mitm is None else "tcp:127.0.0.1:%d" % self.mitm.port
        setup = {"bus": bus, "baud": self.baud, "slot": self.slot, "seed": seed,
                 "poll": [m["address"] for m in self.meter_states] if self.poll else [],
                 "interval": self.interval, "mode": self.mode, "torn": self.torn,
                 "display": self.display, "clock": self.clock, "flash": self.image,
                 "blocks": self.blocks, "image": self.image, "mk_m": MK_M,
                 "terminal_id": TERMINAL}
        setup.update(self.extra)
        setup.update(self.setup)
        return Terminal(mpy=self.mpy, heap=self.heap, setup=setup)

    def __exit__(self, *exc):
        if self.term is not None:
            self.term.close()
        if self.mitm is not None:
            self.mitm.close()
        self.sim.stop()
        for f in os.listdir(self._tmp):
            os.unlink(os.path.join(self._tmp, f))
        os.rmdir(self._tmp)

    # --- the terminal's power ---------------------------------------------
    def boot(self, cut_after=None, settle=True):
        """Power on; wait for the boot's recovery to end (unless cut)."""
        since = self.term.mark()
        ev = self.term.cmd("boot", cut_after=cut_after)
        if not ev["ok"] and not self.term.cmd("status")["cut"]:
            raise AssertionError("the terminal did not boot: %s" % [
                line for line in self.term.logs(since) if line.startswith("boot:")])
        if ev["ok"] and settle:
            self.term.wait_event(lambda e: e["ev"] in ("settled", "down"), 60, since)
        return ev["ok"]

    def wait_down(self, since=0):
        self.term.wait_event(lambda e: e["ev"] == "down", 60, since)

    # --- selling and cards -------------------------------------------------
    def next_serial(self):
        self._serial += 1
        return bytes.fromhex("88%014d" % self._serial)

    def sell(self, meter, amount=5000, count=None, serial=None, card_type=cf.PURCHASE,
             customer=None, record=True):
        """A purchase card as the office writes it: the count after the last
        one sold for this meter (or the meter's first), a new card unless
        `serial` is given."""
        m = self.meter_state_of(meter)
        if count is None:
            done = self.sold[meter]
            count = (done[-1].count if done else self.initial[meter][1]) + 1
        p = Purchase(meter, customer or m["customer"], amount, count,
                     serial or self.next_serial(), card_type)
        if record:
            self.sold[meter].append(p)
        self.cards.append(p)
        return p

    def meter_state_of(self, address):
        for m in self.meter_states:
            if m["address"] == address:
                return m
        raise KeyError(address)

    def session(self, p, pull_after=None, timeout=60):
        """Insert the card; wait until the terminal is done with it (the
        outcome shown, then pulled by us; or pulled early by pull_after; or
        a power cut). -> the log lines of the session."""
        t = self.term
        since = t.mark()
        sim = card_sim.T0Sim("127.0.0.1", self.slot, p.card)
        self.last_sim = p.card.sim = sim  # (a card that marks positions reads sim.wire)
        sim.insert(pull_after)
        ends = ("slot_free", "power_cut", "down") if self.mode == "cpu" else ("slot_free",)
        i, ev = t.wait_event(lambda e: e["ev"] in ends
                             or (e["ev"] == "log" and e["line"] == "card: shown; waiting for "
                                 "the pull"), timeout, since)
        if ev["ev"] == "log":
            sim.pull()
            t.wait_event(lambda e: e["ev"] in ends, timeout, i)
        elif ev["ev"] == "power_cut" and self.mode == "cpu":
            t.wait_event(lambda e: e["ev"] == "down", timeout, i)
        sim.pull()
        assert sim.error is None, sim.error
        return t.logs(since)

    def settle_card(self, p, tries=6):
        """Re-insert a card until its return file shows the meter has its
        purchase (credited or already); -> the logs of the last session."""
        logs = []
        for _ in range(tries):
            r = p.returned()
            if r and r["count"] == p.count and r["result"] in (RET_CREDITED, RET_ALREADY):
                return logs
            logs = self.session(p)
        return logs

    def reset_meters(self):
        """Every meter back to its initial state; nothing sold yet."""
        for m in self.meter_states:
            fields = {k: v for k, v in m.items()
                      if k not in ("address", "record_customer", "record_state")}
            self.sim.set(m["address"], **fields)
            self.sold[m["address"]] = []
        self.cards = []

    def snapshot(self, name):
        path = os.path.join(self._tmp, name)
        self.term.cmd("snapshot", path=path)
        return path

    def restore(self, path):
        self.term.cmd("restore", path=path)

    # --- the invariant -----------------------------------------------------
    def meters_now(self, only=None):
        return {m["address"]: self.sim.meter(m["address"]) for m in self.meter_states
                if only is None or m["address"] in only}

    def check(self, settled=True, only=None):
        """Issue 10's invariant through the simulators' own state. A
        purchase whose count is on the meter landed; its amount must be
        there exactly once, and nothing else. With settled=True every
        purchase sold must have landed and its card say so."""
        now = self.meters_now(only)
        problems = []
        for meter, sold in self.sold.items():
            if meter not in now:
                continue
            bal0, cnt0 = self.initial[meter]
            st = now[meter]
            landed = [p for p in sold if p.count <= st["count"]]
            if st["count"] != cnt0 + len(landed):
                problems.append("meter %s count %d, initial %d, %d purchases landed"
                                % (meter, st["count"], cnt0, len(landed)))
            want = bal0 + sum(p.amount for p in landed)
            if st["balance"] != want:
                problems.append("meter %s balance %d, want %d (initial %d + %s)"
                                % (meter, st["balance"], want, bal0,
                                   "+".join(str(p.amount) for p in landed) or "0"))
            if settled and len(landed) != len(sold):
                problems.append("meter %s: purchases %s never landed" % (
                    meter, [p.count for p in sold if p.count > st["count"]]))
            if settled and sold:
                last = sold[-1]
                r = last.returned()
                if r is None or r["result"] not in (RET_CREDITED, RET_ALREADY) \
                        or r["count"] != st["count"] or r["balance"] != st["balance"] \
                        or r["terminal"] != TERMINAL or r["time"] != STAMP:
                    problems.append("meter %s: last card's return file %r, meter %d/%d"
                                    % (meter, r, st["balance"], st["count"]))
        assert not problems, "\n".join(problems)
        return now


class Mitm:
    """A man in the middle on the bus: a TCP proxy between the terminal and
    the meter simulator, with its own frame parsing (meter_sim_codec).
    Requests from the terminal are numbered from 0; `plan` maps a request
    number (or a DI, "070102ff": every such frame) to what happens to it:

      drop_request   never forwarded (the meter hears nothing)
      drop_reply     forwarded, the meter's reply swallowed
      fake_done      not forwarded; answered 83 + DI (a lying "done")
      fake_repeat    not forwarded; answered C3 with SERR "repeat top-up"
      garble_reply   forwarded; the reply's data bytes altered (checksum
                     made right again, so only MACs can catch it)
      hold_request   held back, delivered to the meter just before the
                     terminal's request two after it (a delayed replay)
      replay_reply   not forwarded; answered with the meter's last reply to
                     that DI from an earlier session (a recorded read-back
                     showing a count, an old R2...)

    silent_from: every request from that number on is dropped (a meter, or
    its bus segment, gone silent mid-session).
    """

    ACTIONS = ("drop_request", "drop_reply", "fake_done", "fake_repeat", "garble_reply",
               "hold_request", "replay_reply")

    def __init__(self, host, port):
        self.target = (host, port)
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.srv.settimeout(0.2)  # accept() wakes to see _stop
        self.port = self.srv.getsockname()[1]
        self.plan = {}
        self.silent_from = None
        self.held = None  # (request number, wire bytes) held back
        self.replies = {}  # DI (hex) -> the meter's last good reply to it, as sent
        self.lock = threading.Lock()
        self.requests = []  # (index, control, DI hex or "") of every request seen
        self.done = []  # (index, action) applied
        self._stop = False
        self._conns = []
        self._t = threading.Thread(target=self._accept, daemon=True)
        self._t.start()

    def set_plan(self, plan, silent_from=None):
        with self.lock:
            self.plan = dict(plan)
            self.silent_from = silent_from
            self.requests = []
            self.done = []
            self.held = None

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.settimeout(None)
            up = socket.create_connection(self.target)
            for s in (c, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                for old in self._conns:  # a new terminal connection replaces the old
                    for s in old:
                        try:
                            s.close()
                        except OSError:
                            pass
                conn = (c, up)
                self._conns = [conn]
            threading.Thread(target=self._pump, args=(conn,), daemon=True).start()

    def _pump(self, conn):
        c, up = conn
        from_term = codec.Parser()
        from_meter = codec.Parser()
        pending = []  # request numbers forwarded, awaiting the meter's reply
        while True:
            try:
                r, _, _ = select.select([c, up], [], [], 0.5)
            except (OSError, ValueError):
                return
            if self._stop:
                return
            for s in r:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    for x in (c, up):
                        try:
                            x.close()
                        except OSError:
                            pass
                    return
                now = time.monotonic()
                if s is c:
                    for f in from_term.feed(data, now):
                        self._request(f, c, up, pending)
                else:
                    for f in from_meter.feed(data, now):
                        self._reply(f, c, pending)

    def _request(self, f, c, up, pending):
        with self.lock:
            n = len(self.requests)
            di = f.data[:4][::-1].hex() if len(f.data) >= 4 else ""
            self.requests.append((n, f.control, di))
            act = self.plan.get(n) or self.plan.get(di)
            if self.silent_from is not None and n >= self.silent_from:
                act = "drop_request"
            if act:
                self.done.append((n, act))
        addr = f.raw[1:7]
        pre = b"\xfe" * 4
        held = self.held
        if held is not None and n >= held[0] + 2:
            self.held = None
            pending.append(None)
            up.sendall(held[1])
        if act == "drop_request":
            return
        if act == "hold_request":
            self.held = (n, f.wire)
            return
        if act == "replay_reply" and di in self.replies:
            c.sendall(self.replies[di])
            return
        if act == "fake_done" and f.control == 0x03:
            c.sendall(pre + codec.encode(addr, 0x83, f.data[:4]))
            return
        if act == "fake_repeat" and f.control == 0x03:
            c.sendall(pre + codec.encode(addr, 0xC3, b"\x02\x00"))
            return
        pending.append(act)
        up.sendall(f.wire)

    def _reply(self, f, c, pending):
        act = pending.pop(0) if pending else None
        if f.control & 0x40 == 0 and len(f.data) >= 4:  # a good reply: record it
            self.replies[f.data[:4][::-1].hex()] = f.wire
        if act == "drop_reply":
            return
        if act == "garble_reply" and len(f.data) > 4:
            data = bytearray(f.data)
            data[4] ^= 0x01  # the first byte after the DI (a balance, R2...)
            data[-1] ^= 0x10
            c.sendall(b"\xfe" * 4 + codec.encode(f.raw[1:7], f.control, bytes(data)))
            return
        c.sendall(f.wire)

    def close(self):
        self._stop = True
        try:
            self.srv.close()
        except OSError:
            pass
        with self.lock:
            for conn in self._conns:
                for s in conn:
                    try:
                        s.close()
                    except OSError:
                        pass
        self._t.join(5)


class World:
    """Customers buying and topping up at random, with faults: a card
    pulled early, a lying or silent bus, a power cut; then everything
    healed (an honest bus, power, every card re-inserted until settled)
    and issue 10's invariant checked, to the fen.

    One card per meter (its customer's), sold again at the office only
    once its return file shows the last purchase on the meter (the office
    reads the card back before a new sale)."""

    FAULTS = ("none", "pull", "mitm", "silent", "cut", "reboot")

    def __init__(self, rig, rnd):
        self.rig = rig
        self.rnd = rnd
        self.card = {}  # meter -> its customer's latest Purchase
        self.stats = dict.fromkeys(self.FAULTS, 0)
        self.stats["sold"] = 0
        self.stats["sessions"] = 0
        self.stats["cuts"] = 0
        self.history = []  # (meter, fault, arg) of every step

    def settled(self, meter):
        p = self.card.get(meter)
        if p is None:
            return True
        r = p.returned()
        return r is not None and r["count"] == p.count and r["result"] in (RET_CREDITED,
                                                                            RET_ALREADY)

    def step(self, meter, fault, arg=0, amount=None):
        """The resident of `meter` comes with the card (bought first, if
        the last purchase is settled), under `fault` (arg: its parameter)."""
        rig = self.rig
        self.history.append((meter, fault, arg))
        p = self.card.get(meter)
        if self.settled(meter):
            serial = p.serial if p is not None else None
            p = rig.sell(meter, amount=amount or self.rnd.randint(1, 5000), serial=serial)
            self.card[meter] = p
            self.stats["sold"] += 1
        self.stats[fault] += 1
        self.stats["sessions"] += 1
        since = rig.term.mark()
        if fault == "reboot":
            rig.term.cmd("halt")
            rig.boot()
            fault = "none"
        if fault == "cut":
            rig.term.cmd("arm", after=arg)
        if rig.mitm is not None:
            if fault == "mitm":
                rig.mitm.set_plan({arg % 8: Mitm.ACTIONS[arg // 8 % len(Mitm.ACTIONS)]})
            elif fault == "silent":
                rig.mitm.set_plan({}, silent_from=arg % 7)
            else:
                rig.mitm.set_plan({})
        rig.session(p, pull_after=arg if fault == "pull" else None)
        if rig.mitm is not None:
            rig.mitm.set_plan({})
        if fault == "cut":
            if rig.term.cmd("status")["cut"]:
                self.stats["cuts"] += 1
                rig.wait_down(since)
                rig.boot()
            else:
                rig.term.cmd("disarm")
        rig.check(settled=False, only=(meter,))

    def heal(self):
        """No more faults: every card back in until settled, then the check."""
        rig = self.rig
        if rig.mitm is not None:
            rig.mitm.set_plan({})
        st = rig.term.cmd("status")
        if not st["up"]:
            rig.boot()
        stuck = []
        for meter, p in self.card.items():
            logs = []
            for _ in range(6):
                if self.settled(meter):
                    break
                logs = rig.session(p)
            if not self.settled(meter):
                stuck.append("meter %s, card count %d, last session:\n  %s" % (
                    meter, p.count, "\n  ".join(logs)))
        try:
            return rig.check()
        except AssertionError as e:
            raise AssertionError("%s\n%s\nsteps: %s" % (e, "\n".join(stuck),
                                                         self.history[-30:]))
