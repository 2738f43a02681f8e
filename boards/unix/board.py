"""The unix board's "pin map": where each driver gets its bus.

The same functions as every board's board.py (see firmware/app.py); the
parts are sockets, PTYs and the console instead of machine.UART and
machine.Pin. `config` is terminal.py's parsed command line.
"""
import time

from rs485 import RS485
from uart import UART, Pin

_console = None  # the console's panel, keys and log, made on first use


def bus(config):
    """The meter bus: tcp:HOST:PORT (an RS-485 converter or a simulator) or
    a PTY/serial device path. echo: the line hears our own bytes."""
    spec = config.get("bus")
    if not spec:
        return None
    baud = config.get("baud", 2400)
    # A TCP converter or a PTY adds jitter a wire has not: a gap inside a
    # reply must be 100 ms before it ends the reply, at any speed.
    return RS485(UART(spec, baud), de=Pin(), baudrate=baud, echo=config.get("echo", False),
                 gap_chars=max(20, baud // 110))


def card_slot(config):
    """A TCP listener standing in for the card interface chip."""
    spec = config.get("card-slot")
    if not spec:
        return None
    import card_slot as cs
    return cs.CardSlot(spec, log=lambda s: report("log", s))


def _get_console(config):
    global _console
    if _console is None:
        import console_ui
        _console = console_ui.start(config)
    return _console


def display(config):
    c = _get_console(config)
    return c.display if c is not None else None


def keys(config):
    c = _get_console(config)
    return c.keys if c is not None else None


_FLASH_BLOCK = 4096
_FLASH_BLOCKS = 256  # 1 MB: records of 256 meters and the journal, with room
FLASH = "/flash"


def storage(config):
    """littlefs on the terminal's flash: an image file in --state DIR (a
    restart keeps records and journal; killing the process is a power cut).
    No --state, no storage (polling only)."""
    if config.get("_root"):
        return config["_root"]
    import flash
    import storage as st
    state = config.get("state")
    if not state:
        return None
    try:
        import os
        os.mkdir(state)
    except OSError:
        pass
    try:
        bdev = flash.FileBlockDev(state + "/flash.img", _FLASH_BLOCK, _FLASH_BLOCKS)
    except ValueError as e:  # an image of another size
        raise st.StorageError(str(e))
    st.mount(bdev, FLASH)
    config["_root"] = FLASH
    config["_bdev"] = bdev
    return FLASH


def config():
    """The board's own configuration when no terminal.py command line gave
    one: the REPL board (repl_board.py, mpremote's view), which has its
    flash at /flash and its bus wired as $TERMINAL_BUS says (the self-test's
    loopback). The self-test asks this, as a real board's needs nothing."""
    import os
    c = {"display": "none"}
    try:
        os.stat(FLASH)
        c["_root"] = FLASH
    except OSError:
        pass
    bus_spec = os.getenv("TERMINAL_BUS")
    if bus_spec:
        c["bus"] = bus_spec
    return c


def inbox(config):
    """Where key packages for re-registration arrive (`<meter>.key`, the
    sealed record as hex): --inbox DIR, by default <--state>/inbox."""
    d = config.get("inbox") or (config.get("state") and config["state"] + "/inbox")
    return d or None


def clock():
    return time.localtime()


def report(kind, text):
    """The poll table and events: under the panel when there is one."""
    c = _console
    if c is None or not getattr(c, "drawing", False):
        print(text)
    elif kind == "table":
        c.table(text)
    else:
        c.log(text)


class _HostLink:
    """The host's own network, always up."""

    async def up(self, timeout_ms=None):
        return True


def network(config):
    """The reporting link: the host's network (boards/esp32s3: W5500 or Wi-Fi)."""
    return _HostLink()


def close():
    global _console
    if _console is not None:
        _console.close()
        _console = None
