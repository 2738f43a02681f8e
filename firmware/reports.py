"""What a report says and how it is signed (docs/reporting.md).

A report is BODY "." MAC: BODY a compact JSON object whose keys come in a
fixed order (so a journal step re-published after a power cut is the same
bytes, which the head-end drops as a duplicate), MAC the SM4 CBC-MAC under
the terminal's reporting key K_r over len(M) || M, M = topic 00 BODY.
"""
import binascii
import json
import struct

import journal

STEPS = ("intent", "result", "done")


def encode(pairs):
    """[(key, value), ...] -> compact JSON bytes, keys in the order given.
    Values: str, int, bool, None, lists of those, dicts (heartbeat's
    meter table)."""
    return ("{" + ",".join('"%s":%s' % (k, _value(v)) for k, v in pairs) + "}").encode()


def _value(v):
    if isinstance(v, dict):
        return "{" + ",".join('"%s":%s' % (k, _value(v[k])) for k in sorted(v)) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value(x) for x in v) + "]"
    return json.dumps(v)  # str, int, bool, None: no whitespace in any of them


def head(tid, seq, time, kind, version):
    return [("t", tid), ("seq", seq), ("time", time), ("kind", kind), ("v", version)]


def step_body(e, step):
    """One journal step of a top-up entry as its report's BODY."""
    p = head(e.terminal, e.steps[step][0], e.steps[step][1], "topup", e.version)
    p += [("step", STEPS[step]), ("meter", e.meter), ("customer", e.customer),
          ("card", binascii.hexlify(e.serial).decode()), ("amount", e.amount),
          ("count", e.count), ("before", [e.before_balance, e.before_count])]
    if step >= 1:
        p += [("result", journal.RESULT_NAMES[e.result]),
              ("after", [e.after_balance, e.after_count]), ("relay_open", e.relay_open)]
    if step == 2:
        p.append(("written", not e.unwritten))
    return encode(p)


class Signer:
    """MACs under K_r: one cipher, its key schedule made once."""

    def __init__(self, k_r):
        import sm4
        self._c = sm4.Cipher(k_r)
        self._acc = bytearray(16)

    def mac(self, topic, body):
        """32 lowercase hex digits (docs/reporting.md)."""
        acc = self._acc
        for i in range(16):
            acc[i] = 0
        t = topic.encode()
        n = len(t) + 1 + len(body)
        # the message is fed as four pieces, never joined (a body may be 300 bytes)
        pos = 0
        for part in (struct.pack(">I", n), t, b"\x00", body, b"\x80"):
            for b in part:
                acc[pos] ^= b
                pos += 1
                if pos == 16:
                    self._c.encrypt_into(acc, acc)
                    pos = 0
        if pos:
            self._c.encrypt_into(acc, acc)
        return binascii.hexlify(acc).decode()

    def payload(self, topic, body):
        return body + b"." + self.mac(topic, body).encode()
