"""The idle screen's keys: the about page, the history of top-ups, the
factory self-test's key sequence (App.ui.idle_keys)."""
from micropython import const

import keypad
import version

_PAGE_MS = const(15000)  # an idle page left up goes back to the clock
_HISTORY = const(10)  # top-ups the keypad's history shows


class IdlePages:
    """What the keys do on the idle screen: OK shows the about page
    (firmware version, terminal id), # the last top-ups (* older ones);
    Cancel goes back; `* * 0` starts the factory self-test."""

    pages = ("idle", "about", "history", "no_history")

    def __init__(self, app):
        self.app = app
        self._history = []
        self._at = 0
        self._typed = ""  # the self-test's key sequence so far

    def key(self, k):
        u = self.app.ui
        if u.current == "idle" and k in "*0":
            self._typed = (self._typed + k)[-3:]
            if self._typed == "**0":
                self._typed = ""
                self.app.selftest()
            return True
        self._typed = ""
        if u.current == "idle" and k == keypad.OK:
            u.show("about", version=version.VERSION, terminal=self.app.terminal_id)
        elif u.current == "idle" and k == "#":
            self._history = self._credited()
            self._at = 0
            self._page()
        elif u.current == "history" and k == "*":
            self._at = (self._at + 1) % len(self._history)
            self._page()
        elif u.current != "idle" and k in (keypad.OK, keypad.CANCEL):
            u.idle()
            return True
        else:
            return False
        self.app.later(_PAGE_MS, u.current)
        return True

    def _credited(self):
        j = self.app.journal
        if j is None:
            return []
        import journal
        return [e for e in j.newest(_HISTORY) if e.result == journal.CREDITED]

    def _page(self):
        if not self._history:
            self.app.ui.show("no_history")
            return
        e = self._history[self._at]
        t = e.steps[0][1]  # YYMMDDhhmmss
        when = (2000 + int(t[0:2]), int(t[2:4]), int(t[4:6]), int(t[6:8]), int(t[8:10]))
        self.app.ui.show("history", meter=e.meter, amount=e.amount, time=when)
