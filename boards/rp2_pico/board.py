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


def rs485_bus(spec=None, baudrate=2400):
    """The meter bus. `spec` is ignored here: the board has one bus."""
    uart = UART(_BUS_UART, baudrate=baudrate, bits=8, parity=0, stop=1,
                tx=Pin(_BUS_TX), rx=Pin(_BUS_RX), txbuf=256, rxbuf=512)
    return RS485(uart, de=Pin(_BUS_DE, Pin.OUT, value=0), baudrate=baudrate)
