"""The reference board boots into the terminal: the same app the unix
board runs (firmware/app.py), with its configuration from flash.

/keys/keystore.bin   the provisioned key store (tools/make_keystore.py)
/inbox/<meter>.key   key packages a technician brings for re-registration
/config/meters.json  the meters this terminal manages, as on the unix board
                     (address, meter_number, customer, state): it seeds the
                     records on first boot, never overwriting one

Without them the terminal is out of service, and the keypad's `* * 0`
runs the factory self-test (firmware/selftest_ui.py).
"""
import json

import app
import board
import screens
from keystore import KeyStore, KeyStoreError

KEYSTORE = "/keys/keystore.bin"
METERS = "/config/meters.json"


def out_of_service(why):
    # No keys or no meters: no credit may move. Say so on the panel (for
    # residents) and on the console (for the technician).
    print("terminal: " + why)
    screens.show(board.display(), "out_of_service")


def main():
    try:
        keys = KeyStore.load(KEYSTORE)
        with open(METERS) as f:
            seed = json.load(f)
        meters = [m["address"] for m in seed]
    except (KeyStoreError, OSError, ValueError, KeyError, TypeError) as e:
        out_of_service("cannot start: %s" % e)
        # Not provisioned yet, or broken: the factory self-test (* * 0)
        # still runs from the keypad, with the report on the console.
        import asyncio
        import selftest_ui
        asyncio.run(selftest_ui.offer(board, {}, "out_of_service"))
        return
    app.run(board, {"keystore": keys, "keystore_path": KEYSTORE, "meters": meters,
                    "seed": seed, "interval": 5, "lang": "zh"})


main()
