"""Card slot figures: APDUs and bytes per card read and per write-back, and
how long a card must stay in the slot at 9600 baud.

Computed from the bytes on the wire (T=0 at 9600 baud: etu = 1/9600 s; a
character is 10 etu plus at least 2 etu guard time = 12 etu = 1.25 ms; where
the line turns round, ISO 7816-3 asks 16 etu between the leading edges of two
characters in opposite directions, 4 etu more). Card processing time (EEPROM
writes, the card's own SM4) is NOT included: a real card adds ~5-50 ms per
command. Then measured: the simulator paces every character at 12 etu and the
terminal's driver (CPython here) reads and writes back.

  .venv/bin/python tools/bench_card.py
"""
import asyncio
import sys
import time

import hostpath

import card_files as cf
import card_model
import card_sim
import user_card
from card_reader import CardReader

ROOT = hostpath.ROOT

BAUD = 9600
MK_C = bytes.fromhex("fedcba98765432100123456789abcdef")


class CountingWire(card_sim.Wire):
    """Counts line turnarounds as well as characters."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.turns = 0
        self._dir = None

    def _turn(self, d):
        if self._dir is not None and d != self._dir:
            self.turns += 1
        self._dir = d

    def send(self, data):
        if data:
            self._turn("card")
        super().send(data)

    def recv(self, n):
        self._turn("terminal")
        return super().recv(n)


async def session(baud):
    card = card_model.Card.issued(MK_C, bytes.fromhex("8800000000000001"), cf.PURCHASE,
                                  "000000000001", "112233445566", 10000, 2)
    q = asyncio.Queue()

    async def on_conn(r, w):
        await q.put((r, w))

    srv = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    sim = card_sim.T0Sim("127.0.0.1", port, card, baud=baud)
    orig = card_sim.Wire
    card_sim.Wire = CountingWire
    try:
        sim.insert()
    finally:
        card_sim.Wire = orig
    r, w = await q.get()
    t0 = time.monotonic()
    reader = CardReader(r, w, baud=BAUD)
    await reader.power_up()
    uc = user_card.UserCard(reader, MK_C)
    await uc.read()
    t_read = time.monotonic() - t0
    read = (reader.apdus, reader.bytes_on_wire, sim.wire.turns)
    await uc.write_return(15000, 2, cf.RET_CREDITED, "000000000099", (26, 11, 24, 19, 30))
    t_all = time.monotonic() - t0
    total = (reader.apdus, reader.bytes_on_wire, sim.wire.turns)
    w.close()
    srv.close()
    await asyncio.get_running_loop().run_in_executor(None, sim.pull)
    return read, total, t_read, t_all


def wire_ms(chars, turns):
    return (chars * 12 + turns * 4) * 1000.0 / BAUD


def main():
    read, total, _, _ = asyncio.run(session(None))
    write = tuple(total[i] - read[i] for i in range(3))
    print("card read (ATR + select, 3 READ BINARY, INTERNAL AUTHENTICATE + GET RESPONSE):")
    print("  apdus %d, bytes on the wire %d (ATR included), line turnarounds %d" % read)
    print("  wire time at %d baud: %.1f ms" % (BAUD, wire_ms(read[1], read[2])))
    print("write-back (GET CHALLENGE + UPDATE BINARY with MAC):")
    print("  apdus %d, bytes on the wire %d, line turnarounds %d" % write)
    print("  wire time at %d baud: %.1f ms" % (BAUD, wire_ms(write[1], write[2])))
    print("card in the slot, read + write-back, wire only: %.1f ms" % wire_ms(total[1], total[2]))
    _, _, t_read, t_all = asyncio.run(session(BAUD))
    print("measured, simulator paced at %d baud (12 etu/char): read %.1f ms, "
          "read + write-back %.1f ms" % (BAUD, t_read * 1000, t_all * 1000))
    print("note: add the card's own processing (~5-50 ms per command on a real card) and the "
          "meter's top-up between read and write-back (a 03 command may take up to 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
