"""The simulated RS-485 bus: which meter answers a request, the faults a
test asked for, and the counters. Timing and transports are in
meter_sim_wire.py; this module decides *what* goes on the wire."""
import collections
import os

import meter_sim_codec as codec
import meter_sim_esam as esam
from meter_sim_meter import BROADCAST, WILDCARD, Meter, StateError

FAULT_KINDS = ("none", "no_reply", "late", "bad_checksum", "garbage", "echo",
               "truncated", "bad_readback_mac", "drop_reply_after_topup")


class Fault:
    def __init__(self, kind, times=1, ms=None):
        if kind not in FAULT_KINDS:
            raise StateError("unknown fault kind %r (one of %s)" % (kind, ", ".join(FAULT_KINDS)))
        if isinstance(times, bool) or not isinstance(times, int) or (times < 1 and times != -1):
            raise StateError("times must be a positive integer or -1, not %r" % (times,))
        if ms is not None and (isinstance(ms, bool) or not isinstance(ms, int)
                               or not 0 <= ms <= 600000):
            raise StateError("ms must be an integer 0..600000, not %r" % (ms,))
        self.kind, self.times = kind, times
        self.ms = 1500 if ms is None else ms

    def matches(self, func, request_data, control, reply_data):
        """Which replies this fault counts: read-back MAC corruption only
        good 078102FF replies, the dropped top-up only 070102FF ones."""
        if self.kind == "bad_readback_mac":
            return control == 0x83 and reply_data[:4] == esam.DI_READBACK
        if self.kind == "drop_reply_after_topup":
            return func == 0x03 and request_data[:4] == esam.DI_TOPUP
        return True

    def take(self):
        if self.times > 0:
            self.times -= 1
        return self.times != 0


class Reply:
    """What the bus sends for one request: wire segments and a delay."""

    def __init__(self, segments, delay_ms, meter=None):
        self.segments = segments
        self.delay_ms = delay_ms
        self.meter = meter


class Bus:
    def __init__(self, master_key, preamble=4, reply_delay_ms=20):
        self.master_key = master_key
        self.preamble = bytes([0xFE]) * preamble
        self.reply_delay_ms = reply_delay_ms
        self.meters = collections.OrderedDict()
        self.faults = {}
        self.log = collections.deque(maxlen=1000)
        self.reset_stats()

    def reset_stats(self):
        self.stats = {"rx_bytes": 0, "tx_bytes": 0, "requests": 0, "replies": 0}

    # -- meters ------------------------------------------------------------
    def add(self, state):
        m = Meter(state, self.master_key)
        if m.address in self.meters:
            raise StateError("meter %s already exists" % m.address)
        self.meters[m.address] = m
        return m

    def meter(self, address):
        m = self.meters.get(address)
        if m is None:
            raise StateError("no meter %r" % (address,))
        return m

    def remove(self, address):
        self.meter(address)
        del self.meters[address]
        self.faults.pop(address, None)

    def readdress(self, old, new_address, key=None):
        m = self.meter(old)
        if new_address != old and new_address in self.meters:
            raise StateError("meter %s already exists" % new_address)
        m.replace(new_address, key)
        del self.meters[old]
        self.faults.pop(old, None)
        self.meters[new_address] = m
        return m

    def set_fault(self, address, kind, times=1, ms=None):
        self.meter(address)
        fault = Fault(kind, times, ms)
        if kind == "none":
            self.faults.pop(address, None)
        else:
            self.faults[address] = fault

    # -- requests ------------------------------------------------------------
    def answer(self, frame):
        """Meter logic only: -> (meter, control, data) or (None, raw frame) for
        a collision, or None when nobody answers. No faults, no counters."""
        if frame.control & 0x80:
            return None                       # an echo of a reply
        func = frame.control & 0x1F
        if frame.addr == BROADCAST:
            if func == 0x08:
                for m in self.meters.values():
                    m.broadcast_time(frame.data)
            return None
        if frame.addr == WILDCARD and func == 0x13 and self.meters:
            if len(self.meters) == 1:
                m = next(iter(self.meters.values()))
                return m, 0x93, codec.addr_to_bytes(m.address)
            first = next(iter(self.meters.values()))
            raw = bytearray(codec.encode(codec.addr_to_bytes(first.address), 0x93,
                                         codec.addr_to_bytes(first.address)))
            raw[1] = (raw[1] + 1) & 0xFF      # two garbled bytes: the checksum
            raw[4] = (raw[4] + 1) & 0xFF      # cannot match (sum moves by 2)
            return None, bytes(raw)
        m = self.meters.get(frame.addr)
        if m is None:
            return None
        if func == 0x13:
            return m, 0x93, codec.addr_to_bytes(m.address)
        out = m.handle(func, frame.data)
        return None if out is None else (m, out[0], out[1])

    def inject(self, raw):
        """A raw request as if from the bus, faults not applied -> frame or None."""
        ans = self.answer(codec.parse_one(raw))
        if ans is None:
            return None
        if ans[0] is None:
            return ans[1]
        m, control, data = ans
        return codec.encode(codec.addr_to_bytes(m.address), control, data)

    def request(self, frame):
        """A frame received from the bus -> Reply or None."""
        if frame.control & 0x80:
            return None
        self.stats["requests"] += 1
        self.log.append(frame.raw.hex())
        ans = self.answer(frame)
        if ans is None:
            return None
        if ans[0] is None:                    # collision on read-address
            return Reply([self.preamble + ans[1]], self.reply_delay_ms)
        m, control, data = ans
        delay = self.reply_delay_ms if m.reply_delay_ms is None else m.reply_delay_ms
        func = frame.control & 0x1F
        fault = self.faults.get(m.address)
        if fault is not None and fault.matches(func, frame.data, control, data):
            if not fault.take():
                del self.faults[m.address]
            return self._faulty(fault, frame, m, control, data, delay)
        raw = codec.encode(codec.addr_to_bytes(m.address), control, data)
        return Reply([self.preamble + raw], delay, m)

    def _faulty(self, fault, frame, m, control, data, delay):
        kind = fault.kind
        if kind in ("no_reply", "drop_reply_after_topup"):
            return None
        if kind == "bad_readback_mac":
            data = bytearray(data)
            for i in (8, 9, 10, 11, 16, 17, 18, 19):   # MAC_b and MAC_c
                data[i] ^= 0xA5
        raw = bytearray(codec.encode(codec.addr_to_bytes(m.address), control, bytes(data)))
        segments = [self.preamble + bytes(raw)]
        if kind == "late":
            delay = fault.ms
        elif kind == "bad_checksum":
            raw[-2] = (raw[-2] + 1) & 0xFF
            segments = [self.preamble + bytes(raw)]
        elif kind == "garbage":
            junk = bytes(b for b in os.urandom(16) if b != 0x68)[:8] or b"\x00"
            segments = [junk + self.preamble + bytes(raw)]
        elif kind == "echo":
            segments = [frame.wire, self.preamble + bytes(raw)]
        elif kind == "truncated":
            segments = [self.preamble + bytes(raw[:len(raw) // 2])]
        return Reply(segments, delay, m)
