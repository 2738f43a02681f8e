"""The unix board as mpremote sees a real one: `micropython -i` on a PTY
whose startup mounts the board's flash (a littlefs image) at /flash and
runs from /flash/lib, as a board runs from its own littlefs.

    micropython -i boards/unix/repl_board.py STATE_DIR

tools/unix_board.py starts it under socat (a PTY: the board's "USB
serial"); the vendor tools deploy, provision and self-test it with
mpremote like any board. STATE_DIR/flash.img is the flash (created erased,
formatted on first start, as a port formats a blank board). This plays the
port's part: drivers/flash.py and firmware/storage.py are taken from the
source tree only to mount, then forgotten, so everything imported later
comes from the bundle on /flash/lib (what tools/flash_board.py deployed).
The unix port has no soft reset: a "reset" is restarting this process.
"""
import sys

_SRC = __file__.rsplit("/", 3)[0] if __file__.count("/") >= 3 else "."  # the checkout


def _mount(state):
    import os
    try:
        os.mkdir(state)
    except OSError:
        pass
    sys.path[:] = [_SRC + "/drivers", _SRC + "/firmware", ".frozen"]
    import flash
    import storage
    storage.mount(flash.FileBlockDev(state + "/flash.img", 4096, 256), "/flash")
    del sys.modules["flash"], sys.modules["storage"]  # the bundle's own, from now on
    # the board's own files first, then the port's frozen modules (asyncio)
    sys.path[:] = ["/flash/lib", ".frozen"]


try:
    _mount(sys.argv[1] if len(sys.argv) > 1 else "build/board")
    print("unix board: /flash mounted, running from /flash/lib")
except Exception as e:  # noqa: BLE001 - say it on the console, keep the REPL
    print("unix board: cannot mount the flash: %s" % e)
