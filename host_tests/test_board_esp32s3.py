"""The production board (boards/esp32s3) under CPython, with stand-ins for
MicroPython's `machine` and `network`: the pin map is the table in
docs/production-board.md, each driver gets the UART/SPI settings the doc
gives, the card interface chip is activated and deactivated in order, the
network link comes up without holding the event loop, the partition table
fits the flash with the key store apart, and the provisioning port accepts
only a whole, valid key store."""
import ast
import asyncio
import csv
import importlib.util
import io
import os
import re
import sys
import types

import pytest

import storage
from keystore import KeyStore
from mp_runner import ROOT, run_mp_json

BOARD_DIR = os.path.join(ROOT, "boards", "esp32s3")
DOC = os.path.join(ROOT, "docs", "production-board.md")
LOG = []  # what the stand-ins were asked, in order


class Pin:
    OUT, IN, PULL_UP = "out", "in", "pull_up"

    def __init__(self, n, mode=None, pull=None, value=None):
        self.n, self.mode, self.pull, self.v = n, mode, pull, value

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v
        LOG.append(("pin", self.n, v))

    __call__ = value


def _n(p):
    return p.n if isinstance(p, Pin) else p


class UART:
    def __init__(self, uid, **kw):
        self.uid = uid
        self.kw = {k: _n(v) for k, v in kw.items()}
        LOG.append(("uart", uid, self.kw))

    def write(self, b):
        return len(b)


class SPI:
    def __init__(self, sid, **kw):
        self.sid = sid
        self.kw = {k: _n(v) for k, v in kw.items()}
        LOG.append(("spi", sid, self.kw))

    def write(self, b):
        pass


class PWM:
    def __init__(self, pin, freq=None, duty_u16=None):
        LOG.append(("pwm", pin.n, freq, duty_u16))


class NIC:
    def __init__(self, *args, **kw):
        self.args = args
        self.kw = {k: _n(v) for k, v in kw.items()}
        self.polls = 0
        self.connected_after = 3  # isconnected() calls before an address
        self.up = False

    def active(self, on):
        self.up = on

    def connect(self, ssid, key):
        self.joined = (ssid, key)

    def isconnected(self):
        self.polls += 1
        return self.up and self.polls > self.connected_after


class Writer:
    def __init__(self, stream, extra):
        self.stream = stream


@pytest.fixture
def board(monkeypatch):
    machine = types.ModuleType("machine")
    machine.Pin, machine.UART, machine.SPI, machine.PWM = Pin, UART, SPI, PWM
    network = types.ModuleType("network")
    network.STA_IF, network.PHY_W5500 = 0, 102
    network.WLAN = network.LAN = NIC
    monkeypatch.setitem(sys.modules, "machine", machine)
    monkeypatch.setitem(sys.modules, "network", network)
    monkeypatch.setattr(asyncio, "StreamWriter", Writer, raising=False)
    monkeypatch.setattr("time.sleep_ms", lambda ms: None, raising=False)
    spec = importlib.util.spec_from_file_location("esp32s3_board",
                                                  os.path.join(BOARD_DIR, "board.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    LOG.clear()
    return mod


def doc_pins():
    """{constant name in board.py: GPIO} from the doc's pin table rows
    `| GPIO | `NAME` | ... |`."""
    pins = {}
    for line in open(DOC, encoding="utf-8"):
        m = re.match(r"\|\s*(\d+)\s*\|\s*`([A-Z_]+(?:\[\d\])?)`\s*\|", line)
        if m:
            assert m.group(2) not in pins, "%s twice in the doc" % m.group(2)
            pins[m.group(2)] = int(m.group(1))
    return pins


def board_pins(mod):
    pins = {}
    for name in dir(mod):
        v = getattr(mod, name)
        if not re.fullmatch(r"(BUS|CARD|LCD|ETH|PROV|KEY)_[A-Z]+", name) or name.endswith(
                ("_UART", "_SPI", "_HZ")):
            continue
        if isinstance(v, tuple):
            pins.update(("%s[%d]" % (name, i), p) for i, p in enumerate(v))
        else:
            pins[name] = v
    return pins


def test_pin_map_is_the_documented_table(board):
    pins = board_pins(board)
    assert pins == doc_pins()
    used = sorted(pins.values())
    assert len(used) == len(set(used)), "a GPIO used twice: %s" % used
    # flash and octal PSRAM (26-37), USB (19, 20), the boot and VDD_SPI straps
    assert not set(used) & (set(range(26, 38)) | {0, 19, 20, 45, 46})
    assert all(0 <= p <= 48 for p in used)


def test_bus_is_uart1_2400_8e1_with_de(board):
    bus = board.bus({})
    (kind, uid, kw), de = LOG[0], LOG[1]
    assert (kind, uid) == ("uart", 1)
    assert kw["baudrate"] == 2400 and (kw["bits"], kw["parity"], kw["stop"]) == (8, 0, 1)
    assert (kw["tx"], kw["rx"]) == (board.BUS_TX, board.BUS_RX)
    assert de == ("pin", board.BUS_DE, 0)  # receiving until we send
    assert bus.char_us == 11 * 1000000 // 2400
    board.bus({"baud": 9600})
    assert LOG[-2][2]["baudrate"] == 9600


def test_card_uart_is_9600_8e2_at_the_card_clock(board):
    reader, _ = board.card_reader()
    assert ("pwm", board.CARD_CLK, 3571200, 32768) in LOG
    assert board.CARD_HZ // 372 == 9600  # F=372, D=1: one etu is 372 clocks
    uart = next(e for e in LOG if e[0] == "uart")
    assert uart[1] == 2
    kw = uart[2]
    assert (kw["baudrate"], kw["bits"], kw["parity"], kw["stop"]) == (9600, 8, 0, 2)
    assert (uart[2]["tx"], uart[2]["rx"]) == (board.CARD_TX, board.CARD_RX)
    assert reader._echo and reader._level == 1 and reader._detect.n == board.CARD_OFF


def test_card_contacts_activate_before_reset_and_deactivate_after(board):
    _, contacts = board.card_reader()
    LOG.clear()
    contacts.value(1)  # cold reset: CMDVCC low (activate), then RSTIN high
    assert LOG == [("pin", board.CARD_CMDVCC, 0), ("pin", board.CARD_RST, 1)]
    LOG.clear()
    contacts.value(1)  # already active: a warm reset only touches RSTIN
    assert LOG == [("pin", board.CARD_RST, 1)]
    LOG.clear()
    contacts.value(0)  # RST low first, then the chip deactivates the card
    assert LOG == [("pin", board.CARD_RST, 0), ("pin", board.CARD_CMDVCC, 1)]


def test_display_is_spi3_mode3_8mhz(board):
    lcd = board.display({})
    spi = next(e for e in LOG if e[0] == "spi")
    assert spi[1] == 2
    assert spi[2] == {"baudrate": 8000000, "polarity": 1, "phase": 1,
                      "sck": board.LCD_SCK, "mosi": board.LCD_MOSI}
    assert board.display({}) is lcd and (lcd.width, lcd.height) == (128, 64)


def test_ethernet_is_a_w5500_alone_on_spi2(board):
    link = board.network({})  # the default link
    lan = link.nic
    assert lan.kw["phy_type"] == 102 and lan.kw["phy_addr"] == 0
    assert (lan.kw["cs"], lan.kw["int"]) == (board.ETH_CS, board.ETH_INT)
    spi = lan.kw["spi"]
    assert spi.sid == 1 != board.LCD_SPI
    assert spi.kw == {"sck": board.ETH_SCK, "mosi": board.ETH_MOSI, "miso": board.ETH_MISO}
    assert board.network({}) is link  # one W5500: the port allows one LAN


def test_wifi_link_comes_up_without_holding_the_loop(board):
    link = board.network({"net": {"link": "wifi", "ssid": "meter-room", "key": "s3cret"}})
    ticks = []

    async def other():
        while True:
            ticks.append(1)
            await asyncio.sleep(0)

    async def go():
        t = asyncio.create_task(other())
        ok = await link.up()
        t.cancel()
        return ok

    assert asyncio.run(go()) is True
    assert link.nic.joined == ("meter-room", "s3cret")
    assert link.nic.polls == 4 and len(ticks) >= 3  # the loop ran while it waited


def test_link_gives_up_at_its_deadline_and_none_is_none(board):
    link = board.network({"net": {"link": "wifi", "ssid": "x"}})
    link.nic.connected_after = 10 ** 9
    assert asyncio.run(link.up(timeout_ms=0)) is False
    assert board.network({"net": {"link": "none"}}) is None
    with pytest.raises(ValueError, match="eth, wifi or none"):
        board.network({"net": {"link": "lte"}})


# --- the partition table -------------------------------------------------

def partitions():
    rows = []
    with open(os.path.join(BOARD_DIR, "partitions.csv")) as f:
        for r in csv.reader(line for line in f if line.strip() and not line.startswith("#")):
            r = [c.strip() for c in r]
            rows.append({"name": r[0], "type": r[1], "subtype": r[2], "offset": int(r[3], 16),
                         "size": int(r[4], 16), "flags": r[5] if len(r) > 5 else ""})
    return rows


def test_partitions_fit_16mib_in_order_with_the_key_store_apart():
    rows = partitions()
    sdk = open(os.path.join(BOARD_DIR, "sdkconfig.board")).read()
    table = re.search(r"^CONFIG_PARTITION_TABLE_OFFSET=(0x[0-9a-fA-F]+)$", sdk, re.M)
    table = int(table.group(1), 16)
    end = table + 0x1000  # the table's own sector
    for r in rows:
        assert r["offset"] >= end, r  # no overlap, in order
        assert r["offset"] % (0x10000 if r["type"] == "app" else 0x1000) == 0, r
        assert r["size"] % 0x1000 == 0, r
        end = r["offset"] + r["size"]
    assert end <= 16 * 1024 * 1024
    by = {r["name"]: r for r in rows}
    assert "vfs" not in by  # MicroPython's _boot.py would format it
    assert by["keys"]["flags"] == by["data"]["flags"] == "encrypted"
    assert by["ota_0"]["size"] == by["ota_1"]["size"] >= 0x200000
    assert by["keys"]["size"] >= 16 * 4096  # littlefs: the store, its .tmp, metadata
    assert by["data"]["size"] >= 256 * 4096  # at least the unix board's 1 MB


def test_partitions_are_the_documented_table():
    doc = open(DOC, encoding="utf-8").read()
    for r in partitions():
        row = r"\|\s*`%s`\s*\|[^\n]*0x%x[^\n]*0x%x" % (r["name"], r["offset"], r["size"])
        assert re.search(row, doc, re.I), r["name"]


def test_release_mode_security_settings():
    sdk = open(os.path.join(BOARD_DIR, "sdkconfig.board")).read()
    on = set(re.findall(r"^(CONFIG_\w+)=y$", sdk, re.M))
    must = {"SECURE_BOOT", "SECURE_BOOT_V2_ENABLED", "SECURE_FLASH_ENC_ENABLED",
            "SECURE_FLASH_ENCRYPTION_MODE_RELEASE", "SECURE_ENABLE_SECURE_ROM_DL_MODE",
            "BOOTLOADER_APP_ANTI_ROLLBACK", "ESP_CONSOLE_NONE"}
    never = {"SECURE_BOOT_ALLOW_JTAG", "SECURE_FLASH_UART_BOOTLOADER_ALLOW_ENC",
             "SECURE_INSECURE_ALLOW_DL_MODE", "SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT"}
    assert {"CONFIG_" + k for k in must} <= on
    assert not on & {"CONFIG_" + k for k in never}
    h = open(os.path.join(BOARD_DIR, "mpconfigboard.h")).read()
    for repl in ("ENABLE_UART_REPL", "USB_CDC", "ESP_USB_SERIAL_JTAG", "ENABLE_USBDEV"):
        assert re.search(r"#define MICROPY_HW_%s\s+\(0\)" % repl, h), repl


def test_main_never_leaves_a_repl():
    """Ctrl-C off before anything else runs; whatever ends main() resets."""
    tree = ast.parse(open(os.path.join(BOARD_DIR, "main.py")).read())
    body = [n for n in tree.body
            if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    assert ast.unparse(body[1]) == "micropython.kbd_intr(-1)"
    last = body[-1]
    assert isinstance(last, ast.Try) and ast.unparse(last.body[0]) == "main()"
    assert ast.unparse(last.finalbody[0]) == "machine.reset()"


# --- the provisioning port -------------------------------------------------

class Port:
    def __init__(self, data):
        self.rx = io.BytesIO(data)
        self.tx = bytearray()

    def readline(self):
        line = self.rx.readline()
        if not line:  # a real port times out and waits on; a test ends here
            raise EOFError
        return line

    def read(self, n):
        return self.rx.read(n)

    def write(self, b):
        self.tx += b


@pytest.fixture
def prov():
    spec = importlib.util.spec_from_file_location("esp32s3_provisioning_port",
                                                  os.path.join(BOARD_DIR, "provisioning_port.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _store():
    return KeyStore("000000000099", bytes(range(1, 17)), bytes(range(2, 18)),
                    bytes(range(3, 19)), bytes(range(4, 20))).to_bytes()


def _session(prov, tmp_path, data, have_keys=False):
    paths = {w: str(tmp_path / (w + ".bin")) for w in ("keystore", "meters", "network")}
    port = Port(data)
    try:
        prov.Station(port, paths, have_keys).serve()
    except EOFError:
        pass
    return port.tx.decode().splitlines(), paths


def _put(what, payload):
    return b"PUT %s %d\n" % (what.encode(), len(payload)) + payload


def test_provisioning_stores_a_whole_key_store_and_the_lists(prov, tmp_path):
    meters = b'[{"address": "000000000001", "customer": "112233445566"}]'
    lines, paths = _session(prov, tmp_path, _put("meters", meters) + _put("keystore", _store())
                            + _put("network", b'{"link": "eth"}') + b"END\n")
    assert lines == ["OK meters %d bytes" % len(meters), "OK keystore terminal 000000000099",
                     "OK network 15 bytes", "OK end"]
    assert KeyStore.load(paths["keystore"]).to_bytes() == _store()
    assert storage.read_checked(paths["meters"]) == meters


def test_provisioning_takes_the_checked_file_as_make_keystore_writes_it(prov, tmp_path):
    storage.write_atomic(str(tmp_path / "made.bin"), _store())
    made = open(tmp_path / "made.bin", "rb").read()
    lines, _ = _session(prov, tmp_path, _put("keystore", made) + b"END\n")
    assert lines[0] == "OK keystore terminal 000000000099"
    damaged = bytearray(made)
    damaged[20] ^= 1
    (tmp_path / "x").mkdir()
    lines, _ = _session(prov, tmp_path / "x", _put("keystore", bytes(damaged)) + b"END\n")
    assert lines[0].startswith("ERR key store file damaged in transit")
    assert not os.path.exists(tmp_path / "x" / "keystore.bin")


@pytest.mark.parametrize("data, says", [
    (_put("keystore", _store()[:-1] + b"\x00"), "ERR key store sent is corrupted"),
    (_put("keystore", _store()[:40]), "ERR key store sent is truncated"),
    (b"PUT keystore 500\n" + _store()[:100], "ERR cut short after 104 of 500 bytes"),
    (b"PUT keystore 99999999\n", "ERR keystore of 99999999 bytes is too large"),
    (_put("meters", b"{not json"), "ERR meters is not JSON"),
    (_put("meters", b'{"address": 1}'), "ERR meters: a list of"),
    (_put("network", b"[]"), "ERR network: {"),
    (_put("firmware", b"x"), "ERR unknown item firmware"),
    (b"GET keystore\n", "ERR say PUT <item> <bytes> or END"),
])
def test_provisioning_refuses_with_one_line_and_writes_nothing(prov, tmp_path, data, says):
    lines, paths = _session(prov, tmp_path, data + b"END\n")
    assert lines[0].startswith(says), lines
    assert (lines[-1] == "OK end" and len(lines) == 2) or "cut short" in says
    assert not [p for p in paths.values() if os.path.exists(p)]


def test_provisioning_never_replaces_a_working_key_store(prov, tmp_path):
    lines, paths = _session(prov, tmp_path, _put("keystore", _store()) + b"END\n", have_keys=True)
    assert lines[0] == "ERR a valid key store is there: erase the keys partition first"
    assert not os.path.exists(paths["keystore"])


def test_boot_blank_provision_then_start_and_never_format_records(tmp_path):
    """main.py under the real micropython (host_tests/mp/esp32s3_boot.py):
    a blank board shows "out of service" and takes its keys, meters and
    network on the provisioning port; the next boot starts the app with
    them and opens no port; a data partition holding garbage is left as it
    is, out of service, no port."""
    meters = (b'[{"address": "000000000001", "customer": "112233445566"},'
              b' {"address": "000000000002"}]')
    net = b'{"link": "wifi", "ssid": "meter-room", "key": "k"}'
    session = tmp_path / "session.bin"
    session.write_bytes(_put("keystore", _store()) + _put("meters", meters)
                        + _put("network", net) + b"END\n")
    got = run_mp_json("host_tests/mp/esp32s3_boot.py", ROOT, str(session), heap="512k")
    first, second, third = got["first"], got["second"], got["third"]
    assert first["screens"] == ["out_of_service"] and first["runs"] == 0
    assert first["port"] == [0, 115200, 43, 44]
    assert first["said"] == ["OK keystore terminal 000000000099",
                             "OK meters %d bytes" % len(meters),
                             "OK network %d bytes" % len(net), "OK end"]
    assert first["resets"] >= 1
    assert second["runs"] == [{"terminal": KeyStore.from_bytes(_store()).terminal_id.hex(),
                               "meters": ["000000000001", "000000000002"],
                               "net": {"link": "wifi", "ssid": "meter-room", "key": "k"}}]
    assert second["screens"] == [] and second["ports"] == 1  # the port stayed shut
    assert second["resets"] > first["resets"]  # the app returning resets the board
    assert third["screens"] == ["out_of_service"] and third["halted"] == 1
    assert third["untouched"] and third["ports"] == 1
