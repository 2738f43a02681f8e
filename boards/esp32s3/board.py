"""Pin map of the production board: an ESP32-S3-WROOM-1-N16R8 module (16 MB
flash, 8 MB octal PSRAM) with an RS-485 transceiver on UART1, a card
interface chip (TDA8035-class) on UART2, an ST7565 128x64 LCD on SPI3, a
4x4 matrix keypad and a W5500 Ethernet controller on SPI2 (Wi-Fi is the
alternative link: same board, no parts). docs/production-board.md has the
table this file must match (host_tests/test_board_esp32s3.py checks it).

The same functions as every board (firmware/app.py), plus network(config).
UART0 (GPIO43/44) is the provisioning port, not a REPL: boards/esp32s3/
main.py and provisioning_port.py. GPIO 26-37 belong to the flash and the PSRAM.
"""
import asyncio
import time

from machine import Pin, UART
from micropython import const

from rs485 import RS485

# RS-485 meter bus: UART1, 2400 baud 8E1 by default (DL/T 645-2007).
BUS_UART = const(1)
BUS_TX = const(17)
BUS_RX = const(18)
BUS_DE = const(8)  # DE and /RE tied: high while we send

# Card slot: UART2 through the card interface chip, 9600 baud 8E2 (T=0 at
# the default F=372, D=1 with a 3.5712 MHz card clock).
CARD_UART = const(2)
CARD_TX = const(4)  # through an open-drain buffer onto the chip's I/OUC line
CARD_RX = const(5)  # the same line: we hear our own bytes (echo)
CARD_CLK = const(6)  # LEDC, 3.5712 MHz into the chip's CLKIN
CARD_RST = const(7)  # the chip's RSTIN: the card's RST once it is active
CARD_CMDVCC = const(15)  # low: the chip activates the card (VCC, I/O, CLK)
CARD_OFF = const(16)  # the chip's OFF: high with a card in, low when none or a fault
CARD_HZ = const(3571200)

# Display: ST7565 on SPI3 (machine.SPI(2)), mode 3, 8 MHz. /RES comes from
# the reset supervisor with the module's EN.
LCD_SPI = const(2)
LCD_SCK = const(12)
LCD_MOSI = const(11)
LCD_CS = const(10)
LCD_DC = const(9)

# Keypad 4x4: rows driven, columns read with pull-ups. GPIO3 is a strapping
# pin only for the JTAG source, and JTAG is disabled in eFuse.
KEY_ROWS = (1, 2, 39, 40)
KEY_COLS = (41, 42, 14, 3)

# Ethernet: W5500 on SPI2 (machine.SPI(1)) alone on its bus, so its driver
# (an ESP-IDF task) never clocks the display. /RST from the supervisor.
ETH_SPI = const(1)
ETH_SCK = const(47)
ETH_MOSI = const(38)
ETH_MISO = const(48)
ETH_CS = const(21)
ETH_INT = const(13)

# Provisioning port (UART0): the key store arrives here once (provisioning_port.py).
PROV_UART = const(0)
PROV_TX = const(43)
PROV_RX = const(44)

_ACTIVATE_MS = const(3)  # the chip's activation sequence, with margin
_NET_POLL_MS = const(100)
_NET_TIMEOUT_MS = const(30000)


def bus(config=None):
    """The meter bus: 2400 baud 8E1 unless the configuration says otherwise."""
    baudrate = (config or {}).get("baud", 2400)
    uart = UART(BUS_UART, baudrate=baudrate, bits=8, parity=0, stop=1,
                tx=BUS_TX, rx=BUS_RX, txbuf=256, rxbuf=512)
    return RS485(uart, de=Pin(BUS_DE, Pin.OUT, value=0), baudrate=baudrate)


class _Contacts:
    """The card interface chip's CMDVCC and RSTIN as the one `reset` line
    card_reader and card_detect drive. value(0): RSTIN low, CMDVCC high, so
    the chip deactivates the card (RST, CLK, I/O, VCC down in ISO 7816-3
    order). value(1): CMDVCC low and a wait while the chip powers the card
    and starts its clock with RST still low (well over 400 clocks), then
    RSTIN high: a cold reset, and the card answers with its ATR."""

    def __init__(self, cmdvcc, rstin):
        self._cmd = cmdvcc
        self._rst = rstin
        self.value(0)

    def value(self, v):
        if v:
            if self._cmd.value():  # inactive: activate first
                self._cmd.value(0)
                time.sleep_ms(_ACTIVATE_MS)  # once a card, a few ms
            self._rst.value(1)
        else:
            self._rst.value(0)
            self._cmd.value(1)


def card_reader(baud=9600):
    """The card interface: UART2 through the chip (its I/O line loops our
    own bytes back: echo), the chip's OFF line as the detect switch (high
    with a card in; it drops, and the chip deactivates the card by itself,
    when the card is pulled or shorted), the card clock from LEDC."""
    from machine import PWM
    from card_reader import CardReader

    global _card_clock
    _card_clock = PWM(Pin(CARD_CLK), freq=CARD_HZ, duty_u16=32768)  # held: never collected
    uart = UART(CARD_UART, baudrate=baud, bits=8, parity=0, stop=2,
                tx=CARD_TX, rx=CARD_RX, rxbuf=512)
    contacts = _Contacts(Pin(CARD_CMDVCC, Pin.OUT, value=1), Pin(CARD_RST, Pin.OUT, value=0))
    reader = CardReader(asyncio.StreamReader(uart), asyncio.StreamWriter(uart, {}),
                        detect=Pin(CARD_OFF, Pin.IN, Pin.PULL_UP), reset=contacts,
                        echo=True, baud=baud, detect_level=1)
    return reader, contacts


def card_slot(config=None):
    """The card slot the app serves: the reader behind the chip's OFF line."""
    from card_detect import DetectSlot

    reader, contacts = card_reader()
    return DetectSlot(reader, contacts)


_card_clock = None
_lcd = None
_links = {}  # one network interface of each kind: the port allows one


def display(config=None):
    """The ST7565 128x64 LCD on SPI3 (mode 3, 8 MHz), made once."""
    global _lcd
    if _lcd is None:
        from machine import SPI
        from st7565 import ST7565

        spi = SPI(LCD_SPI, baudrate=8000000, polarity=1, phase=1,
                  sck=Pin(LCD_SCK), mosi=Pin(LCD_MOSI))
        _lcd = ST7565(spi, Pin(LCD_DC, Pin.OUT), Pin(LCD_CS, Pin.OUT, value=1))
    return _lcd


def keys(config=None):
    """The 4x4 keypad (rows driven low one at a time, columns pulled up),
    scanned in its own task; returns the queue it fills."""
    from keypad import Keypad

    rows = [Pin(p, Pin.OUT, value=1) for p in KEY_ROWS]
    cols = [Pin(p, Pin.IN, Pin.PULL_UP) for p in KEY_COLS]
    pad = Keypad(rows, cols)
    pad.start()
    return pad.queue


def storage(config=None):
    """main.py mounts littlefs on the "data" partition (records and
    journal) at /data; the key store has its own partition at /keys."""
    return "/data"


def clock():
    return time.localtime()


def report(kind, text):
    """The poll table and events: the console of a development build (a
    production build has none, docs/production-board.md); the head-end
    gets its reports over the network."""
    print(text)


class _Link:
    """One network interface: up() brings it up without holding the event
    loop (the driver connects in its own task; we poll), True once it has
    an address, False after timeout_ms."""

    def __init__(self, nic, connect=None):
        self.nic = nic
        self._connect = connect

    async def up(self, timeout_ms=_NET_TIMEOUT_MS):
        if self.nic.isconnected():
            return True
        self.nic.active(True)
        if self._connect is not None:
            self._connect()
        t0 = time.ticks_ms()
        while not self.nic.isconnected():
            if time.ticks_diff(time.ticks_ms(), t0) >= timeout_ms:
                return False
            await asyncio.sleep_ms(_NET_POLL_MS)
        return True


def network(config=None):
    """The reporting link: config["net"] is {"link": "eth"} (the W5500,
    the default), {"link": "wifi", "ssid": ..., "key": ...} (credentials
    from the key partition, main.py) or {"link": "none"} (None)."""
    import network as nw

    net = (config or {}).get("net") or {}
    link = net.get("link", "eth")
    if link == "none":
        return None
    if link not in ("eth", "wifi"):
        raise ValueError("net link %r: use eth, wifi or none" % link)
    if link not in _links:
        if link == "wifi":
            wlan = nw.WLAN(nw.STA_IF)
            _links[link] = _Link(wlan, lambda: wlan.connect(net["ssid"], net.get("key", "")))
        else:
            from machine import SPI

            spi = SPI(ETH_SPI, sck=Pin(ETH_SCK), mosi=Pin(ETH_MOSI), miso=Pin(ETH_MISO))
            lan = nw.LAN(phy_type=nw.PHY_W5500, phy_addr=0, spi=spi,
                         cs=Pin(ETH_CS), int=Pin(ETH_INT))
            _links[link] = _Link(lan)
    return _links[link]


def close():
    pass


def config():
    """Settings for tools that run without main.py (the self-test over
    mpremote): none; this board's parts need no command line."""
    return {}


def inbox(config=None):
    """Key packages for re-registration (`<meter>.key`). No REPL on this
    board: they are written here by the provisioning port (a board that
    cannot start) or a future field port; see docs/production-board.md."""
    return "/data/inbox"
