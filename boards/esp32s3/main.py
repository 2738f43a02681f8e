"""The production board boots into the terminal: the same app every board
runs (firmware/app.py), from two littlefs partitions on encrypted flash.

/data   the "data" partition: records and journal, config/meters.json
/keys   the "keys" partition, apart: keystore.bin (tools/make_keystore.py)
        and network.json (the reporting link; Wi-Fi credentials)

There is no REPL to fall back to: the build has no REPL console
(docs/production-board.md), Ctrl-C is off from the first line, and main()
never returns: a crash resets the board, a terminal that cannot start shows
"out of service" and, only then, opens the provisioning port
(provisioning_port.py).
"""
import micropython

micropython.kbd_intr(-1)  # first: no byte on any console interrupts the terminal

import json  # noqa: E402
import time  # noqa: E402

import machine  # noqa: E402
from esp32 import Partition  # noqa: E402

import app  # noqa: E402
import board  # noqa: E402
import screens  # noqa: E402
import storage  # noqa: E402
from keystore import KeyStore, KeyStoreError  # noqa: E402

KEYSTORE = "/keys/keystore.bin"
NETWORK = "/keys/network.json"
METERS = "/data/config/meters.json"


def out_of_service(why):
    # No credit may move. Say so on the panel (for residents) and on the
    # console of a development build (for the technician).
    print("terminal: " + why)
    screens.show(board.display(), "out_of_service")


def halt():
    while True:  # no REPL behind us: wait for the technician's power cycle
        time.sleep(3600)


def partition(label):
    found = Partition.find(Partition.TYPE_DATA, label=label)
    if not found:
        raise storage.StorageError("no %s partition: flash boards/esp32s3/partitions.csv" % label)
    return found[0]


def mount_keys():
    """The key partition and whether it mounted. One that holds no valid
    littlefs holds no key store either: provision() formats it."""
    bdev = partition("keys")
    try:
        storage.mount(bdev, "/keys")
        return bdev, True
    except (storage.StorageError, OSError):
        return bdev, False


def provision(keys_fs, have_keys):
    import os
    import vfs
    import provisioning_port as prov

    bdev, mounted = keys_fs
    if not mounted:  # unreadable: no key store there to lose
        vfs.VfsLfs2.mkfs(bdev, progsize=storage.PROGSIZE)
        storage.mount(bdev, "/keys")
    try:
        os.mkdir("/data/config")
    except OSError:
        pass
    port = machine.UART(board.PROV_UART, baudrate=115200, tx=board.PROV_TX,
                        rx=board.PROV_RX, timeout=1000, rxbuf=1024)
    prov.Station(port, {"keystore": KEYSTORE, "meters": METERS, "network": NETWORK},
                 have_keys).serve()


def main():
    try:
        storage.mount(partition("data"), "/data")  # formats only a blank partition
    except (storage.StorageError, OSError) as e:
        out_of_service("cannot mount the records: %s" % e)
        halt()
    keys_fs = mount_keys()
    keys = None
    try:
        keys = KeyStore.load(KEYSTORE)
        seed = json.loads(storage.read_checked(METERS, 65536))
        meters = [m["address"] for m in seed]
    except (KeyStoreError, storage.StorageError, OSError, ValueError, KeyError, TypeError) as e:
        out_of_service("cannot start: %s" % e)
        provision(keys_fs, keys is not None)
        machine.reset()
    try:
        net = json.loads(storage.read_checked(NETWORK, 1024))
    except (storage.StorageError, OSError, ValueError):
        net = {"link": "eth"}
    app.run(board, {"keystore": keys, "keystore_path": KEYSTORE, "meters": meters,
                    "seed": seed, "interval": 5,
                    "lang": "zh", "net": net})


try:
    main()
finally:
    machine.reset()  # never the REPL: whatever ended the app starts it again
