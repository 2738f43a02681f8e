"""How closely the meter simulator keeps RS-485 time: round trips measured
over TCP against the wire model (request bytes + reply delay + reply bytes,
11 bits a character), and the simulator's own overhead at a fast baud.

    .venv/bin/python tools/bench_meter_sim.py
"""
import socket
import statistics
import time

import hostpath  # noqa: F401
import meter_sim_codec as codec
from meter_sim_ctl import MeterSim

ADDR = codec.addr_to_bytes("000000000001")


def read_frame(sock):
    buf = b""
    while True:
        buf += sock.recv(512)
        i = buf.find(b"\x68")
        if i >= 0 and len(buf) >= i + 10 and len(buf) >= i + 12 + buf[i + 9]:
            return buf


def round_trips(baud, delay_ms, n):
    req = b"\xfe" * 4 + codec.encode(ADDR, 0x11, bytes.fromhex("00029000"))
    with MeterSim(count=1, baud=baud, reply_delay_ms=delay_ms) as sim:
        s = socket.create_connection((sim.host, sim.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times, reply_len = [], 0
        for _ in range(n):
            t = time.perf_counter()
            s.sendall(req)
            reply_len = len(read_frame(s))
            times.append(time.perf_counter() - t)
        s.close()
    model = (len(req) + reply_len) * 11.0 / baud + delay_ms / 1000.0
    return times, model


def main():
    for baud, delay, n in ((2400, 20, 20), (9600, 20, 40), (115200, 0, 200)):
        times, model = round_trips(baud, delay, n)
        mean, worst = statistics.mean(times), max(times)
        print("meter_sim read round trip %d baud delay %d ms: model %.2f ms, mean %.2f ms "
              "(%+.2f ms), max %.2f ms, min %.2f ms, n %d"
              % (baud, delay, model * 1e3, mean * 1e3, (mean - model) * 1e3, worst * 1e3,
                 min(times) * 1e3, n))


if __name__ == "__main__":
    main()
