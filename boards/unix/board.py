"""The unix board's "pin map": where each driver gets its bus.

A real board's board.py builds the same drivers on machine.UART and
machine.Pin; the firmware only ever asks this module.
"""
from rs485 import RS485
from uart import UART, Pin


def rs485_bus(spec, baudrate=2400, echo=False):
    """The meter bus: spec is tcp:HOST:PORT or a PTY/serial device path.
    echo: the line hears our own bytes (a transceiver with /RE held low)."""
    return RS485(UART(spec, baudrate), de=Pin(), baudrate=baudrate, echo=echo)
