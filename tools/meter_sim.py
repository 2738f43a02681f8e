#!/usr/bin/env python3
"""DL/T 645-2007 prepaid-meter simulator: any number of meters (with their
ESAMs) on one RS-485 bus, reached over TCP, a PTY or a real serial port.

    python tools/meter_sim.py --count 4 [--tcp 127.0.0.1:0 | --pty | --serial DEV]

Prints one JSON line {"bus": ..., "control": ...} and runs until SIGTERM or
SIGINT. The control port speaks newline-delimited JSON (meter_sim_control).
"""
import argparse
import asyncio
import json
import logging
import signal
import sys

import hostpath  # noqa: F401

import meter_sim_control  # noqa: E402
import meter_sim_wire  # noqa: E402
from meter_sim_bus import Bus  # noqa: E402
from meter_sim_meter import DEFAULT_MASTER_KEY, StateError  # noqa: E402


def _hostport(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    return host or "127.0.0.1", int(port)


def _key(text):
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 16:
        raise argparse.ArgumentTypeError("the master key is 32 hex characters")
    return key


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = p.add_mutually_exclusive_group()
    where.add_argument("--tcp", type=_hostport, metavar="HOST:PORT",
                       help="TCP server, like an RS-485/Ethernet converter (default)")
    where.add_argument("--pty", action="store_true", help="serve on a PTY pair")
    where.add_argument("--serial", metavar="DEV", help="a real serial port (8E1)")
    p.add_argument("--control", type=_hostport, default=("127.0.0.1", 0), metavar="HOST:PORT")
    p.add_argument("--baud", type=int, default=2400)
    p.add_argument("--reply-delay-ms", type=int, default=20)
    p.add_argument("--preamble", type=int, default=4, help="FE bytes before a reply")
    p.add_argument("--meters", metavar="FILE", help="JSON list of meter states")
    p.add_argument("--count", type=int, default=0, help="add N default meters 000000000001..")
    p.add_argument("--master-key", type=_key, default=DEFAULT_MASTER_KEY, metavar="HEX")
    p.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    args = p.parse_args(argv)
    if args.baud <= 0 or args.reply_delay_ms < 0 or not 0 <= args.preamble <= 16 \
            or args.count < 0:
        p.error("baud > 0, reply delay >= 0, preamble 0..16 and count >= 0 please")
    return args


def build_bus(args):
    bus = Bus(args.master_key, args.preamble, args.reply_delay_ms)
    if args.meters:
        with open(args.meters) as f:
            states = json.load(f)
        if not isinstance(states, list):
            raise StateError("%s: expected a JSON list of meters" % args.meters)
        for state in states:
            bus.add(state)
    for i in range(1, args.count + 1):
        address = "%012d" % i
        bus.add({"address": address, "energy": 10000 * i + 1234})
    return bus


async def run(args):
    bus = build_bus(args)
    wire = meter_sim_wire.Wire(bus, args.baud)
    if args.pty:
        port = meter_sim_wire.PtyBus(wire)
        bus_name = await port.start()
    elif args.serial:
        port = meter_sim_wire.SerialBus(wire, args.serial, args.baud)
        bus_name = await port.start()
    else:
        port = meter_sim_wire.TcpBus(wire)
        bus_name = await port.start(*(args.tcp or ("127.0.0.1", 0)))
    control = meter_sim_control.Control(bus)
    server, control_name = await meter_sim_control.serve(control, *args.control)
    sys.stdout.write(json.dumps({"bus": bus_name, "control": control_name}) + "\n")
    sys.stdout.flush()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    port.close()


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, format="meter_sim %(message)s",
                        level=logging.DEBUG if args.verbose else logging.CRITICAL + 1)
    try:
        asyncio.run(run(args))
    except (StateError, OSError, ValueError) as e:
        sys.stderr.write("meter_sim: %s\n" % e)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
