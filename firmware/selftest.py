"""Factory self-test: does this board's hardware work? Run by the vendor
before a board leaves, over mpremote:

    mpremote connect PORT exec "import selftest; selftest.main()"

or from the keypad (`* * 0` on the idle screen, or on the out-of-service
screen of an unprovisioned terminal: selftest_ui.py). One function per check, each
returning (PASS | FAIL | SKIP, one-line detail); a part the board lacks
(board.py returns None for it) is skipped, never failed. The report is one
line a check and, last, `SELFTEST PASS` or `SELFTEST FAIL n`.

Checks: storage (write, read back, remount, read again), the key store's
integrity, SM4 against the standard's vectors (both code paths), the
display (a test pattern), the keypad (every digit key, operator present),
the card slot (its detect switch), RS-485 loopback (a frame sent comes back
intact through a loopback plug; on the unix board a TCP echo).
"""
import asyncio
import os

from micropython import const

PASS = "PASS"
FAIL = "FAIL"
SKIP = "SKIP"
KEYSTORE = "/keys/keystore.bin"  # under the board's storage root
_FILE = "/selftest.bin"
_LOOP = b"\x68\x55\xaa\x00\xff\x16" + bytes(range(0x20, 0x30))  # 0x00/0xFF, 0x55/0xAA, a count
_LOOP_MS = const(1000)
KEY_MS = const(20000)  # an operator's time per key


class Parts:
    """What a check needs, from the board (None: the board lacks it)."""

    def __init__(self, root=None, bus=None, display=None, keys=None, slot=None, ask=None,
                 bus_lock=None, keystore=None):
        self.root = root
        self.bus = bus
        self.display = display
        self.keys = keys
        self.slot = slot
        self.ask = ask  # async (screen, accept keys, ms, **fields) -> key; None: nobody there
        self.bus_lock = bus_lock
        self.keystore = keystore  # the running terminal's, loaded at boot


def _mountpoint(root):
    return root or "/"


async def check_storage(p):
    if p.root is None:
        return SKIP, "no storage on this board"
    import storage
    path = p.root + _FILE
    data = os.urandom(200)
    storage.write_atomic(path, data)
    if storage.read_checked(path, 256) != data:
        return FAIL, "read back differs from what was written"
    note = "written, read back"
    try:
        import vfs
        mp = _mountpoint(p.root)
        fs = [m[0] for m in vfs.mount() if m[1] == mp]
    except (ImportError, TypeError):
        fs = None
    if fs:
        vfs.umount(mp)
        vfs.mount(fs[0], mp)
        if storage.read_checked(path, 256) != data:
            return FAIL, "after a remount the file differs"
        note += ", remounted, read again"
    else:
        note += " (no remount: %s is not a mount point here)" % mp
    os.remove(path)
    return PASS, note


async def check_keystore(p):
    if p.root is None:
        return SKIP, "no storage, no key store"
    import keystore
    path = p.root + KEYSTORE
    try:
        os.stat(path)
    except OSError:
        if p.keystore is not None:  # the unix board's --keystore, a host file
            return PASS, "loaded at boot from elsewhere: %r" % p.keystore
        return SKIP, "not provisioned yet (no %s)" % KEYSTORE
    try:
        ks = keystore.KeyStore.load(path)
    except keystore.KeyStoreError as e:
        return FAIL, str(e)
    return PASS, "intact: %r" % ks


async def check_sm4(p):
    import sm4
    k = bytes.fromhex("0123456789abcdeffedcba9876543210")
    want = bytes.fromhex("681edf34d206965e86b3e94f536e4246")
    km = bytes.fromhex("26bb77cac267c4de9a287954aea3abfb")  # the profile's K_m
    paths = []
    for fast in (False, True):
        if sm4.use_fast(fast) != fast:
            continue  # no viper code on this port
        ok = sm4.encrypt(k, k) == want and sm4.kdf(k, b"\x01" + bytes(7)) == km
        paths.append(("viper" if fast else "plain", ok))
    sm4.use_fast(True)
    bad = [n for n, ok in paths if not ok]
    if bad:
        return FAIL, "SM4 vectors wrong on the %s code" % " and ".join(bad)
    return PASS, "GB/T 32907 and KDF vectors (%s)" % ", ".join(n for n, _ in paths)


def pattern(fb):
    """A border, a checkerboard and both diagonals: a dead row, column or
    pixel, or a panel mounted upside down, shows at a glance."""
    fb.fill(0)
    fb.rect(0, 0, 128, 64, 1)
    for y in range(2, 62, 4):
        for x in range(2 + (y // 4 % 2) * 4, 126, 8):
            fb.fill_rect(x, y, 4, 4, 1)
    fb.line(0, 0, 127, 63, 1)
    fb.line(0, 63, 127, 0, 1)
    fb.fill_rect(2, 2, 12, 6, 1)  # the top-left corner marked


async def check_display(p):
    if p.display is None:
        return SKIP, "no display on this board"
    pattern(p.display)
    p.display.show()
    if p.ask is None:
        return PASS, "test pattern pushed: look at the panel"
    await asyncio.sleep_ms(3000)  # the operator looks
    import keypad
    k = await p.ask("selftest_display", (keypad.OK, keypad.CANCEL), KEY_MS)
    if k == keypad.OK:
        return PASS, "pattern seen by the operator"
    return FAIL, "operator saw a bad pattern" if k else "no answer from the operator"


async def check_keypad(p):
    if p.keys is None:
        return SKIP, "no keypad on this board"
    if p.ask is None:
        return SKIP, "needs an operator: run the self-test from the keypad"
    import keypad
    got = ""
    for want in "1234567890":
        k = await p.ask("selftest_keys", (want, keypad.CANCEL), KEY_MS, digits=got)
        if k != want:
            return FAIL, "key %s not pressed%s" % (want, " (cancelled)" if k else "")
        got += want
    return PASS, "every digit key read"


async def check_card_slot(p):
    if p.slot is None:
        return SKIP, "no card slot on this board"
    reader = getattr(p.slot, "reader", None)
    if reader is None or not hasattr(reader, "present"):
        return PASS, "slot made (no detect switch to read)"
    return PASS, "detect switch reads %s" % ("a card in" if reader.present() else "empty")


class _Collect:
    """A decoder for RS485.transact that wants len(_LOOP) bytes back."""

    def __init__(self):
        self.got = b""

    def feed(self, chunk):
        self.got += chunk
        return self.got if len(self.got) >= len(_LOOP) else None

    def flush(self):
        return None


async def check_rs485(p):
    if p.bus is None:
        return SKIP, "no RS-485 bus on this board"
    c = _Collect()
    if p.bus_lock is not None:
        async with p.bus_lock:
            got = await p.bus.transact(_LOOP, c, _LOOP_MS)
    else:
        got = await p.bus.transact(_LOOP, c, _LOOP_MS)
    if got is None:
        return FAIL, "%d of %d bytes came back: is the loopback plug on?" % (
            len(c.got), len(_LOOP))
    if got[:len(_LOOP)] != _LOOP:
        return FAIL, "the loopback changed the bytes: check wiring and baud rate"
    return PASS, "%d bytes out and back intact" % len(_LOOP)


CHECKS = (("storage", check_storage), ("keystore", check_keystore), ("sm4", check_sm4),
          ("display", check_display), ("keypad", check_keypad),
          ("card_slot", check_card_slot), ("rs485", check_rs485))


async def run(parts, out=print):
    """Every check in turn; one line each through out(); returns the
    number of failures. A check that raises fails with the error."""
    failed = 0
    for name, check in CHECKS:
        try:
            status, detail = await check(parts)
        except Exception as e:  # noqa: BLE001 - a broken part is a failed check
            status, detail = FAIL, "%s: %s" % (type(e).__name__, e)
        failed += status == FAIL
        out("%s %-9s %s" % (status, name, detail))
    out("SELFTEST PASS" if not failed else "SELFTEST FAIL %d" % failed)
    return failed


def _part(fn, config, out, name):
    if fn is None:
        return None
    try:
        return fn(config)
    except Exception as e:  # noqa: BLE001 - reported; that check then fails or skips
        out("note: the board could not make its %s: %s: %s" % (name, type(e).__name__, e))
        return None


def parts_from_board(board, config, out=print, keys=True):
    """Parts from board.py's functions (the same on every board); keys
    False: the keypad is not started (nobody is there to press it)."""
    g = lambda n: getattr(board, n, None)  # noqa: E731
    return Parts(root=_part(g("storage"), config, out, "storage"),
                 bus=_part(g("bus"), config, out, "bus"),
                 display=_part(g("display"), config, out, "display"),
                 keys=(_part(g("keys"), config, out, "keypad") if keys
                       else (True if g("keys") else None)),
                 slot=_part(g("card_slot"), config, out, "card slot"))


def main(config=None, board=None):
    """Over mpremote: run every check on this board; returns failures."""
    if board is None:
        import board
    if config is None:
        config = board.config() if hasattr(board, "config") else {}
    parts = parts_from_board(board, config, keys=False)  # nobody at the keypad
    return asyncio.run(run(parts))
