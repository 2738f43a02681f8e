"""The factory self-test from the keypad (the checks are selftest.py's):
`* * 0` on the idle screen of a running terminal (app.App.selftest), or on
the out-of-service screen of a terminal that cannot run, not provisioned
yet (offer, from a board's main.py). The operator starts it with OK,
confirms the display's test pattern and presses the digit keys; the
screen says passed or failed, the report goes to the board's console.
"""
import asyncio

import selftest

SEQUENCE = "**0"  # typed on the idle (or out-of-service) screen


async def from_keypad(ui, parts, log=None):
    """Ask, run every check with the operator, show the outcome; the
    report goes to log (the board's console) line by line. Returns the
    number of failures, None if the operator cancelled."""
    import keypad
    k = await ui.ask("selftest_ready", (keypad.OK, keypad.CANCEL), selftest.KEY_MS)
    if k != keypad.OK:
        return None
    ui.show("selftest_running")
    await ui.drawn()
    parts.ask = ui.ask
    out = (lambda s: log("selftest: " + s)) if log else (lambda s: None)
    failed = await selftest.run(parts, out)
    await ui.ask("selftest_pass" if not failed else "selftest_fail",
                 (keypad.OK, keypad.CANCEL), 600000)
    return failed


def app_parts(app):
    """The running terminal's own parts (the self-test must not open a
    second bus or slot beside them); the bus taken in turn (app.bus_owner)."""
    return selftest.Parts(root=app.board.storage(app.config),
                          bus=app.client.bus if app.client is not None else None,
                          display=app.ui.display, keys=True, slot=getattr(app, "slot", None),
                          bus_lock=app.bus_owner, keystore=app.keystore)


async def offer(board, config, screen="out_of_service"):
    """A terminal that cannot run (no key store: not provisioned yet) shows
    `screen` and still takes the self-test's key sequence, for ever."""
    import ui as ui_mod
    display, keys = board.display(config), board.keys(config)
    if display is None or keys is None:
        return
    u = ui_mod.UI(display, board.clock, config.get("lang", "zh"),
                  log=lambda s: board.report("log", s))
    u.show(screen)
    tasks = [asyncio.create_task(u.run())]
    typed = ""
    try:
        while True:
            k = await keys.get()
            if u.key(k):
                continue
            typed = (typed + k)[-len(SEQUENCE):] if k in SEQUENCE else ""
            if typed == SEQUENCE:
                typed = ""
                ask_keys = asyncio.create_task(_route(u, keys))
                log = lambda s: board.report("log", s)  # noqa: E731
                parts = selftest.parts_from_board(board, config, log, keys=False)
                try:
                    await from_keypad(u, parts, log)
                finally:
                    ask_keys.cancel()
                u.show(screen)
    finally:
        for t in tasks:
            t.cancel()


async def _route(u, keys):
    while True:
        u.key(await keys.get())
