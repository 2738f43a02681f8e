#!/usr/bin/env python3
"""User card simulator: one card model (card_model.Card), two faces.

t0    the terminal's card slot (unix board): the simulator CONNECTS to the
      slot's TCP port = insert, sends its ATR at once, then speaks T=0 byte by
      byte; closing the connection = pull, at any byte (--pull-after N).
vpcd  a virtual card in a real PC/SC stack: the card inside virtualsmartcard's
      VirtualICC (Debian's python3-virtualsmartcard), connected to pcscd's
      vsmartcard-vpcd reader driver on 127.0.0.1:35963.

A control socket (--control PORT, newline JSON, one reply line per command)
drives insert / pull / swap while the simulator runs:
  {"cmd": "insert", "pull_after": 40}   {"cmd": "pull"}
  {"cmd": "swap", "card": {...}}        {"cmd": "state"}   {"cmd": "quit"}

Examples:
  card_sim.py t0 --connect 127.0.0.1:7816 --mk-c HEX --serial 8800000000000001 \\
      --type purchase --meter 000000000001 --customer 112233445566 \\
      --amount 10000 --count 2
  card_sim.py t0 --mk-c HEX --type technician --customer 900000000001 --pin 246810
      (a technician card: id 900000000001; VERIFY tries persist with --save)
  card_sim.py vpcd --card card.json --save card.json
  card_sim.py t0 --mk-c HEX --atr 3b8640ff505043415244 --t0-fault mute
      (WI 255: 25.5 s per byte, and never an answer)
"""
import argparse
import json
import os
import socket
import sys
import threading
import time

import hostpath  # noqa: F401
import card_model  # noqa: E402
import card_files as cf  # noqa: E402  (hostpath put firmware/ on the path)

VPCD_PORT = 35963
_TYPES = {"opening": cf.OPENING, "purchase": cf.PURCHASE, "reissued": cf.REISSUED,
          "technician": cf.TECHNICIAN}


class Pulled(Exception):
    """The card left the slot (our pull, or the terminal closed)."""


class Wire:
    """Byte-wise T=0 line over a socket. `budget` bytes (both directions)
    are let through, then the card is pulled. `baud` paces each character at
    12 etu (10 etu frame + 2 etu guard time), as on the real line."""

    def __init__(self, sock, budget=None, baud=None, echo=False):
        self.sock = sock
        self.echo = echo  # loop the terminal's bytes back, as a half-duplex I/O line does
        self.budget = budget
        self.char_s = 12.0 / baud if baud else 0
        self.count = 0

    def _tick(self):
        if self.budget is not None and self.count >= self.budget:
            raise Pulled
        self.count += 1
        if self.char_s:
            time.sleep(self.char_s)

    def send(self, data):
        for b in data:
            self._tick()
            try:
                self.sock.sendall(bytes((b,)))
            except OSError:
                raise Pulled

    def recv(self, n):
        out = bytearray()
        while len(out) < n:
            if self.budget is not None and self.count >= self.budget:
                raise Pulled
            try:
                b = self.sock.recv(1)
            except OSError:
                raise Pulled
            if not b:
                raise Pulled
            self._tick()
            out += b
            if self.echo:
                try:
                    self.sock.sendall(b)
                except OSError:
                    raise Pulled
        return bytes(out)


# Hostile T=0 behaviours (a terminal must give up on each, in bounded time).
T0_FAULTS = ("endless-61xx", "endless-6cxx", "nulls-forever", "mute")


def serve_t0(wire, card, nulls=0, ack_each=False, null_every=0, t0_fault=None):
    """Card side of T=0 until pulled: ATR, then header / procedure bytes /
    data / SW1 SW2 for each command. `nulls` NULL bytes before each
    procedure byte, `null_every` seconds apart."""
    wire.send(card.power_up())
    while True:
        hdr = wire.recv(5)
        ins, p3 = hdr[1], hdr[4]
        for _ in range(nulls):
            wire.send(b"\x60")
            time.sleep(null_every)
        if t0_fault:
            _misbehave(wire, card, ins, p3, t0_fault)
            continue
        if card.expected_in(ins) and p3:
            if ack_each:  # ~INS before each byte: one byte at a time
                data = b""
                for _ in range(p3):
                    wire.send(bytes((ins ^ 0xFF,)))
                    data += wire.recv(1)
            else:
                wire.send(bytes((ins,)))
                data = wire.recv(p3)
            resp = card.apdu(hdr + data)
        else:
            resp = card.apdu(hdr)
        body, sw = resp[:-2], resp[-2:]
        if body:
            if ack_each:
                for b in body:
                    wire.send(bytes((ins ^ 0xFF, b)))
            else:
                wire.send(bytes((ins,)) + body)
        wire.send(sw)


def _misbehave(wire, card, ins, p3, fault):
    """mute: never answers a command; nulls-forever: NULL (60) every 0.2 s,
    under any work waiting time; endless-61xx: 61 00 to everything, GET
    RESPONSE included, after 256 bytes of data; endless-6cxx: 6C 10 to
    everything, the resend with Le 10 included."""
    if fault == "mute":
        while True:
            wire.recv(1)  # until pulled
    while fault == "nulls-forever":
        wire.send(b"\x60")
        time.sleep(0.2)
    if card.expected_in(ins) and p3:
        wire.send(bytes((ins,)))
        wire.recv(p3)
    elif ins == 0xC0:
        wire.send(bytes((ins,)) + bytes(p3 or 256))
    wire.send(b"\x61\x00" if fault == "endless-61xx" else b"\x6c\x10")


class T0Sim:
    """Inserts a card into a terminal's TCP card slot, in a thread."""

    def __init__(self, host, port, card, nulls=0, ack_each=False, baud=None, echo=False,
                 null_every=0, t0_fault=None):
        if t0_fault not in (None,) + T0_FAULTS:
            raise ValueError("T=0 fault %r" % t0_fault)
        self.addr = (host, port)
        self.echo = echo
        self.card = card
        self.nulls = nulls
        self.null_every = null_every
        self.t0_fault = t0_fault
        self.ack_each = ack_each
        self.baud = baud
        self._sock = None
        self._thread = None
        self.wire = None
        self.error = None

    def inserted(self):
        return self._thread is not None and self._thread.is_alive()

    def insert(self, pull_after=None, connect_timeout=10.0):
        if self.inserted():
            raise RuntimeError("a card is already in the slot")
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                s = socket.create_connection(self.addr, timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        s.settimeout(None)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = s
        self.wire = Wire(s, pull_after, self.baud, self.echo)
        self._thread = threading.Thread(target=self._run, args=(s, self.wire), daemon=True)
        self._thread.start()

    def _run(self, s, wire):
        try:
            serve_t0(wire, self.card, self.nulls, self.ack_each, self.null_every, self.t0_fault)
        except Pulled:
            pass
        except Exception as e:  # noqa: BLE001 - report, the slot must not hang
            self.error = e
        finally:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def pull(self):
        s = self._sock
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.wait()

    def wait(self, timeout=10):
        if self._thread:
            self._thread.join(timeout)
            if timeout is not None and self._thread.is_alive():
                raise RuntimeError("card thread did not stop")


def serve_vpcd(card, host="127.0.0.1", port=VPCD_PORT, stop=None, connect_timeout=10.0,
               ready=None):
    """The card in pcscd's vpcd reader, through virtualsmartcard (card_vicc)."""
    import card_vicc
    return card_vicc.serve_vpcd(card, host, port, stop, connect_timeout, ready)


# -- command line --

def card_from_args(a):
    if a.card:
        with open(a.card) as f:
            card = card_model.Card.from_json(json.load(f))
    else:
        if not a.mk_c:
            raise SystemExit("card_sim: give --card FILE or --mk-c HEX with the card fields")
        mk = bytes.fromhex(a.mk_c)
        serial = bytes.fromhex(a.serial)
        if a.fault == "unissued":
            card = card_model.Card.blank(mk, serial)
        else:
            card = card_model.Card.issued(mk, serial, _TYPES[a.type], a.meter, a.customer,
                                          a.amount, a.count)
        if a.type == "technician":  # the customer field holds the technician's id
            if not a.pin:
                raise SystemExit("card_sim: a technician card needs --pin (6 digits)")
            card = card_model.Card.technician(mk, serial, a.customer, a.pin)
    if a.fault == "clone":
        card._key = os.urandom(16)
    elif a.fault == "forged":
        p = bytearray(card.files[cf.SFI_PURSE])
        p[0:4] = cf.u32(cf.get_u32(p, 0) * 10 + 100)
        card.files[cf.SFI_PURSE] = bytes(p)
    elif a.fault == "wrong-mac":
        card.refuse_mac = True
    elif a.fault == "garbage-atr":
        card.atr = b"\x12\x34\x56"
    return card


def _control(sim, port, save):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    print("control on 127.0.0.1:%d" % srv.getsockname()[1], flush=True)
    while True:
        conn, _ = srv.accept()
        with conn, conn.makefile("rw") as f:
            for line in f:
                try:
                    req = json.loads(line)
                    reply = _command(sim, req)
                except Exception as e:  # noqa: BLE001 - a bad command gets an error line
                    reply = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
                f.write(json.dumps(reply) + "\n")
                f.flush()
                if save:
                    _save(sim.card, save)
                if req.get("cmd") == "quit":
                    return


def _command(sim, req):
    cmd = req.get("cmd")
    if cmd == "insert":
        sim.insert(req.get("pull_after"))
    elif cmd == "pull":
        sim.pull()
    elif cmd == "swap":
        sim.pull()
        sim.card = card_model.Card.from_json(req["card"])
        sim.insert(req.get("pull_after"))
    elif cmd == "wait":
        sim.wait(req.get("timeout", 10))
    elif cmd == "quit":
        sim.pull()
    elif cmd != "state":
        raise ValueError("unknown command %r" % cmd)
    files = {str(k): v.hex() for k, v in sim.card.files.items()}
    return {"ok": True, "inserted": sim.inserted(), "files": files,
            "bytes": sim.wire.count if sim.wire else 0}


def _save(card, path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(card.to_json(), f)
    os.replace(tmp, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("face", choices=("t0", "vpcd"))
    p.add_argument("--connect", default="127.0.0.1:7816", help="t0: terminal card slot HOST:PORT")
    p.add_argument("--vpcd", default="127.0.0.1:%d" % VPCD_PORT, help="vpcd: HOST:PORT")
    p.add_argument("--card", help="card JSON (as written by --save)")
    p.add_argument("--save", help="write the card's state here after every change")
    p.add_argument("--mk-c", help="card master key (hex) to issue a card on the fly")
    p.add_argument("--serial", default="8800000000000001")
    p.add_argument("--type", choices=sorted(_TYPES), default="purchase")
    p.add_argument("--meter", default="000000000001")
    p.add_argument("--customer", default="112233445566")
    p.add_argument("--amount", type=int, default=10000, help="fen")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--pin", help="technician card: its PIN, 6 digits (a simulator's;"
                                 " a real card's PIN is set by card_tool.py pin)")
    p.add_argument("--fault", choices=("clone", "forged", "garbage-atr", "unissued", "wrong-mac"))
    p.add_argument("--t0-fault", choices=T0_FAULTS, help="t0: a hostile card (see _misbehave)")
    p.add_argument("--atr", help="t0: answer to reset (hex), e.g. 3b8640ff505043415244 (TC2=FF)")
    p.add_argument("--pull-after", type=int, help="t0: pull the card after N bytes on the line")
    p.add_argument("--hold", type=float, help="t0: pull the card after this many seconds")
    p.add_argument("--nulls", type=int, default=0,
                   help="t0: NULL (60) bytes before each procedure byte")
    p.add_argument("--null-every", type=float, default=0, help="t0: seconds between NULLs")
    p.add_argument("--ack-each", action="store_true", help="t0: ~INS, one byte at a time")
    p.add_argument("--baud", type=int, help="t0: pace the line (12 etu per character)")
    p.add_argument("--control", type=int, help="control socket port (0 = any)")
    a = p.parse_args(argv)
    card = card_from_args(a)
    if a.face == "vpcd":
        host, port = a.vpcd.rsplit(":", 1)
        n = serve_vpcd(card, host, int(port), connect_timeout=60)
        if a.save:
            _save(card, a.save)
        print("vpcd gone after %d APDUs" % n)
        return 0
    host, port = a.connect.rsplit(":", 1)
    if a.atr:
        card.atr = bytes.fromhex(a.atr)
    sim = T0Sim(host, int(port), card, a.nulls, a.ack_each, a.baud, null_every=a.null_every,
                t0_fault=a.t0_fault)
    if a.control is not None:
        _control(sim, a.control, a.save)
    else:
        sim.insert(a.pull_after)
        if a.hold is not None:
            sim._thread.join(a.hold)
            sim.pull()
        sim.wait(timeout=None)
        if a.save:
            _save(card, a.save)
        print("card out after %d bytes" % sim.wire.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
