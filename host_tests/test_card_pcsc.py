"""The sales-office card tool against real PC/SC: our own pcscd with
Debian's vpcd driver, the simulated card plugged in as a virtual card.

One pcscd per machine: every test here shares one pcscd (module fixture), and
a file lock keeps a second pytest-xdist worker from starting another one (the
xdist_group mark only helps under --dist loadgroup; the lock works under any
distribution). A missing Debian
package FAILS the tests with its name: CI must not skip them silently.
"""
import contextlib
import fcntl
import os
import subprocess
import sys
import threading

import pytest

import card_files as cf
import card_model
import card_sim
import pcsc_env
import user_card as uc
from card_sim_ctl import MK_C, run_with_card
from headend import ledger

pytestmark = pytest.mark.xdist_group("pcscd")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK = "/tmp/card-pcsc-tests.lock"
SERIAL = bytes.fromhex("8800000000000042")
# Below the kernel's ephemeral range (32768..60999): vpcd's default 35963 lies
# inside it, and a client socket of another test holding it made pcscd's
# start fail now and then.
PORT = 0x7C7B


@pytest.fixture(scope="module")
def pcscd(tmp_path_factory):
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            d = pcsc_env.Pcscd(str(tmp_path_factory.mktemp("pcscd") / "pcscd.log"), PORT)
            try:
                d.start()
            except pcsc_env.PcscUnavailable as e:
                pytest.fail("PC/SC stack unavailable: %s (make setup installs "
                            "debian-packages.txt)" % e)
            yield d
            d.stop()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def inserted(card):
    """The card in the vpcd reader for the duration of the block."""
    stop, ready = threading.Event(), threading.Event()
    t = threading.Thread(target=card_sim.serve_vpcd, args=(card,),
                         kwargs={"port": PORT, "stop": stop, "ready": ready}, daemon=True)
    t.start()
    assert ready.wait(10), "pcscd never asked the virtual card for its ATR"
    try:
        yield card
    finally:
        stop.set()
        t.join(5)


def tool(*args, key=MK_C.hex()):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "card_tool.py"),
                        "--card-master-key", key, "--wait", "5"] + list(args),
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def terminal_write_back(card, balance, count, result=cf.RET_CREDITED):
    """The same card model through the T=0 face: the terminal's firmware
    reads it and writes its return file."""

    async def fn(reader, sim):
        await reader.power_up()
        c = uc.UserCard(reader, MK_C)
        await c.read()
        await c.write_return(balance, count, result, "000000000099", (26, 11, 24, 19, 30))

    run_with_card(card, fn)


def test_issue_sell_read_back(pcscd, tmp_path):
    card = card_model.Card.blank(MK_C, SERIAL)
    book = str(tmp_path / "office" / "ledger.jsonl")
    with inserted(card):
        rc, out = tool("dump")
        assert rc == 0 and "blank card (unissued)" in out and "genuine" in out, out
        rc, out = tool("issue", "--type", "purchase", "--meter", "000000000001",
                       "--customer", "112233445566", "--count", "1")
        assert rc == 0 and "issued purchase card 8800000000000042" in out, out
        rc, out = tool("sell", "--amount", "100.00", "--ledger", book)
        assert rc == 0 and "sold 100.00 yuan" in out and "purchase count 2" in out, out
        rc, out = tool("status")
        assert rc == 1 and "NOT confirmed" in out, out
    p_type, meter, customer = cf.parse_param(card.files[cf.SFI_PARAM])
    assert (p_type, meter, customer) == (cf.PURCHASE, "000000000001", "112233445566")
    amount, count, s = cf.parse_purse(card.files[cf.SFI_PURSE])
    assert (amount, count) == (10000, 2)
    kc = card_model.kdf(MK_C, SERIAL)
    assert s == card_model.mac(kc, cf.sale_mac_input(card.files[cf.SFI_PARAM], 10000, 2))

    # the sale is in the ledger the head-end imports
    (sale,) = ledger.read(book)
    assert (sale["card"], sale["count"], sale["customer"], sale["meter"], sale["amount"]) == \
        (SERIAL.hex(), 2, "112233445566", "000000000001", 10000)

    terminal_write_back(card, 25000, 2)  # the terminal credited purchase 2

    with inserted(card):
        rc, out = tool("status")
        assert rc == 0 and "REACHED the meter" in out and "balance 250.00" in out, out
        assert "terminal 000000000099 at 2026-11-24 19:30" in out, out
        rc, out = tool("dump")
        assert rc == 0 and "purse: 100.00 yuan, purchase count 2, sale MAC OK" in out, out
        assert MK_C.hex() not in out and kc.hex() not in out


def test_second_sale_waits_for_the_meter(pcscd, tmp_path):
    book = str(tmp_path / "ledger.jsonl")
    card = card_model.Card.issued(MK_C, SERIAL, cf.PURCHASE, "000000000001",
                                  "112233445566", 5000, 3)
    with inserted(card):
        rc, out = tool("sell", "--amount", "20", "--ledger", book)
        assert rc == 1 and "has not reached the meter" in out, out
        assert not os.path.exists(book)  # no sale, no ledger line
        rc, out = tool("issue", "--type", "opening", "--meter", "000000000001",
                       "--customer", "112233445566")
        assert rc == 1 and "already issued" in out, out
        rc, out = tool("sell", "--amount", "20", "--force", "--ledger", book)
        assert rc == 0 and "purchase count 4" in out, out
    assert cf.parse_purse(card.files[cf.SFI_PURSE])[0:2] == (2000, 4)
    assert [(s["count"], s["amount"]) for s in ledger.read(book)] == [(4, 2000)]


def test_reissued_and_opening_cards(pcscd):
    for t in ("reissued", "opening"):
        card = card_model.Card.blank(MK_C, SERIAL)
        with inserted(card):
            rc, out = tool("issue", "--type", t, "--meter", "000000000002",
                           "--customer", "000000000777", "--count", "5")
            assert rc == 0, out
            rc, out = tool("dump")
            assert "type: %s" % t in out and "purchase count 5" in out, out
        info = run_with_card(card, _read)
        assert (info.kind, info.meter, info.customer, info.count) == (t, "000000000002",
                                                                     "000000000777", 5)


async def _read(reader, sim):
    await reader.power_up()
    return await uc.UserCard(reader, MK_C).read()


def test_tool_refuses_clone_forgery_and_wrong_key(pcscd):
    clone = card_model.Card.issued(MK_C, SERIAL, cf.PURCHASE, "000000000001",
                                   "112233445566", 5000, 3)
    clone._key = bytes(16)
    with inserted(clone):
        rc, out = tool("dump")
        assert rc == 1 and "NOT genuine" in out, out
    forged = card_model.Card.issued(MK_C, SERIAL, cf.PURCHASE, "000000000001",
                                    "112233445566", 5000, 3)
    forged.files[cf.SFI_PURSE] = cf.u32(500000) + forged.files[cf.SFI_PURSE][4:]
    with inserted(forged):
        rc, out = tool("status")
        assert rc == 1 and "FORGED" in out, out
        rc, out = tool("dump", key="00112233445566778899aabbccddeeff")
        assert rc == 1 and "NOT genuine" in out, out


def test_tool_usage_errors():
    for args in (["sell", "--amount", "1.234"], ["sell", "--amount", "-5"],
                 ["issue", "--type", "purchase", "--meter", "12", "--customer", "112233445566"]):
        p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "card_tool.py"),
                            "--card-master-key", MK_C.hex()] + args,
                           capture_output=True, text=True)
        assert p.returncode == 2 and "error" in p.stderr, p.stderr
    rc, out = tool("dump", key="abcd")
    assert rc == 1 and "32 hex digits" in out


def test_tool_help_for_newcomers():
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "card_tool.py"), "--help"],
                       capture_output=True, text=True)
    assert p.returncode == 0
    for word in ("issue", "sell", "status", "dump", "--key-file", "pcsc_env.py", "Exit status"):
        assert word in p.stdout



def test_virtual_card_is_virtualsmartcards_vicc(pcscd):
    # The PC/SC face is the vsmartcard project's VirtualICC loop (Debian's
    # python3-virtualsmartcard) with our card model as its SmartcardOS.
    import card_vicc

    card = card_model.Card.issued(MK_C, SERIAL, cf.PURCHASE, "000000000001",
                                 "112233445566", 10000, 2)
    with inserted(card):
        code, out = tool("dump")
    assert code == 0, out
    vs = sys.modules["virtualsmartcard.VirtualSmartcard"]
    assert vs.__file__.startswith(card_vicc.VICC_PATH)
    assert "112233445566" in out and "100.00" in out


def test_vpcd_port_is_outside_the_ephemeral_range():
    # a port the kernel can hand to any client socket may be taken when pcscd starts
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = map(int, f.read().split())
    assert not low <= PORT <= high
