"""Pin map of the reference board: a Raspberry Pi Pico (RP2040) with an
RS-485 transceiver (MAX3485-class, DE and /RE tied together) on UART1, a
card interface chip (TDA8024-class) on UART0, an ST7565 128x64 LCD on SPI0
and a 4x4 matrix keypad.

The firmware asks only this module for its drivers; the unix board's
board.py answers the same questions with sockets and PTYs.
"""
from machine import Pin, UART
from micropython import const

from rs485 import RS485

# RS-485 meter bus: 2400 baud 8E1 by default (DL/T 645-2007).
_BUS_UART = const(1)
_BUS_TX = const(4)
_BUS_RX = const(5)
_BUS_DE = const(6)

# Card slot: UART0 half-duplex through the card interface chip.
CARD_UART = const(0)
CARD_IO = const(0)  # TX and RX joined by the interface chip
CARD_RX = const(1)
CARD_DETECT = const(2)  # low when a card is in the slot
CARD_RESET = const(3)
CARD_CLK = const(7)  # PWM, 3.571 MHz card clock

# Display: ST7565 on SPI0.
LCD_SCK = const(18)
LCD_MOSI = const(19)
LCD_CS = const(17)
LCD_DC = const(20)
LCD_RST = const(21)

# Keypad 4x4: rows driven, columns read with pull-ups.
KEY_ROWS = (10, 11, 12, 13)
KEY_COLS = (14, 15, 16, 22)


def bus(config=None):
    """The meter bus: 2400 baud 8E1 unless the configuration says otherwise."""
    baudrate = (config or {}).get("baud", 2400)
    uart = UART(_BUS_UART, baudrate=baudrate, bits=8, parity=0, stop=1,
                tx=Pin(_BUS_TX), rx=Pin(_BUS_RX), txbuf=256, rxbuf=512)
    return RS485(uart, de=Pin(_BUS_DE, Pin.OUT, value=0), baudrate=baudrate)


def card_reader(baud=9600):
    """The card interface: UART0 through the card interface chip (its I/O
    line loops our own bytes back: echo), detect switch low with a card in,
    and the card's clock from PWM (3.5712 MHz: 9600 baud at the default F/D)."""
    import asyncio
    from machine import PWM
    from card_reader import CardReader

    clk = PWM(Pin(CARD_CLK))
    clk.freq(3571200)
    clk.duty_u16(32768)
    uart = UART(CARD_UART, baudrate=baud, bits=8, parity=0, stop=2,
                tx=Pin(CARD_IO), rx=Pin(CARD_RX))
    reset = Pin(CARD_RESET, Pin.OUT, value=0)
    return CardReader(asyncio.StreamReader(uart), asyncio.StreamWriter(uart, {}),
                      detect=Pin(CARD_DETECT, Pin.IN, Pin.PULL_UP), reset=reset,
                      echo=True, baud=baud, detect_level=0), reset


def card_slot(config=None):
    """The card slot the app serves: the reader behind its detect switch."""
    from card_detect import DetectSlot

    reader, reset = card_reader()
    return DetectSlot(reader, reset)


_lcd = None


def display(config=None):
    """The ST7565 128x64 LCD on SPI0 (mode 3, 8 MHz), made once."""
    global _lcd
    if _lcd is None:
        from machine import SPI
        from st7565 import ST7565

        spi = SPI(0, baudrate=8000000, polarity=1, phase=1,
                  sck=Pin(LCD_SCK), mosi=Pin(LCD_MOSI))
        _lcd = ST7565(spi, Pin(LCD_DC, Pin.OUT), Pin(LCD_CS, Pin.OUT, value=1),
                      Pin(LCD_RST, Pin.OUT, value=1))
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
    """The rp2 port mounts littlefs on the on-board flash at / when it
    boots (progsize 256, the NOR page): records and journal live there."""
    return ""


def inbox(config=None):
    """Key packages for re-registration (`<meter>.key`), copied onto the
    flash with mpremote (`mpremote fs cp 000000000123.key :/inbox/`)."""
    return "/inbox"


def clock():
    import time
    return time.localtime()


def report(kind, text):
    """The poll table and events go to the USB serial console."""
    print(text)


def network(config=None):
    """The Pico has no network: no reports (boards/esp32s3 has one)."""
    return None


def close():
    pass


def config():
    """Settings for tools that run without main.py (the self-test over
    mpremote): none; this board's parts need no command line."""
    return {}
