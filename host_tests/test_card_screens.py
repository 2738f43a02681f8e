"""The resident sees what a card does: the terminal under MicroPython, its
card slot open and its screen saved as PNGs, while simulated cards are
inserted; each saved screen is compared, pixel for pixel, with the same
screen rendered under CPython."""
import glob
import os
import struct
import subprocess
import zlib

import hostpath  # noqa: F401
import card_files as cf
import card_model
import card_sim
import console_display
import png
import screens
import st7565
from card_sim_ctl import MK_C, SERIAL, Output, free_port, make_card
from mp_runner import MICROPYTHON, MP_PATH, ROOT


def pixels(data):
    """A PNG's raw scanlines: the deflate stream may differ, the image not."""
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    return zlib.decompress(idat)


def expected(name, **fields):
    d = console_display.ConsoleDisplay(draw=False)
    screens.show(d, name, "zh", **fields)
    return pixels(png.encode(d.panel, st7565.WIDTH, st7565.HEIGHT))


def test_each_card_gets_its_screen(tmp_path):
    import keystore

    ks = tmp_path / "keys.bin"
    keystore.KeyStore("000000000099", bytes(range(1, 17)), MK_C, bytes(range(2, 18))).save(str(ks))
    shots = tmp_path / "shots"
    port = free_port()
    proc = subprocess.Popen(
        [MICROPYTHON, "-X", "heapsize=512k", os.path.join(ROOT, "boards/unix/terminal.py"),
         "--card-slot", "tcp:127.0.0.1:%d" % port, "--keystore", str(ks),
         "--display", "none", "--screenshot", str(shots)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, MICROPYPATH=MP_PATH))
    said = Output(proc.stdout)
    clone = card_model.Card.issued(MK_C, SERIAL, cf.PURCHASE, "000000000001", "112233445566",
                                   10000, 2, key=bytes(16))  # same files, not the card's key
    cards = [make_card(amount=12345, count=7), make_card(card_type=cf.OPENING, count=1), clone]
    try:
        said.wait("card slot: listening on 127.0.0.1:%d" % port)
        for n, card in enumerate(cards, 1):
            sim = card_sim.T0Sim("127.0.0.1", port, card)
            sim.insert()
            said.wait("card: shown; waiting for the pull", n)
            sim.pull()
            said.wait("card: removed", n)
        sim = card_sim.T0Sim("127.0.0.1", port, make_card())
        sim.insert(pull_after=40)  # pulled in the middle of reading
        said.wait("card: removed", 4)  # after "put the card back" has been up 3 s
    finally:
        proc.terminate()
        proc.wait(10)
    out = "\n".join(said.close())
    pngs = [pixels(open(p, "rb").read())
            for p in sorted(glob.glob(str(shots / "screen-*.png")))]
    reading = expected("reading")
    want = [expected("card_info", customer="112233445566", meter="000000000001", amount=12345),
            expected("opening_card"),
            expected("card_invalid"),
            expected("card_pulled")]
    # After every "reading" comes the card's own screen, in order.
    after_reading = [pngs[i + 1] for i in range(len(pngs) - 1) if pngs[i] == reading]
    assert after_reading == want, (len(pngs), out)
