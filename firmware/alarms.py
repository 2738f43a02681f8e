"""Alarms the head-end must hear of, derived from what the terminal sees:
journalled (kind "alarm") once per change, never once per poll.

  meter_silent / meter_back   SILENT_AFTER failed polls in a row / answering again
  relay_open                  a poll shows the relay open (again once it closed)
  low_balance                 balance under config "low_balance" fen (again
                              once it was back above)
  auth_failures               AUTH_AFTER refusals of a clone or forged card,
                              or a meter refusing our MAC, within AUTH_WINDOW
"""
import time

from micropython import const

SILENT_AFTER = const(3)
AUTH_AFTER = const(3)
AUTH_WINDOW_MS = const(600000)  # 10 minutes
AUTH_SCREENS = ("card_invalid", "meter_auth_failed")


class Alarms:
    def __init__(self, raise_alarm, low_balance=None):
        self._alarm = raise_alarm  # (name, meter, detail)
        self.low = low_balance
        self._fails = {}  # meter -> failed polls in a row
        self._state = {}  # meter -> set of alarm names raised and not cleared
        self._auth = []  # ticks of recent authentication refusals
        self._auth_raised = False

    def _on(self, meter, name, detail):
        s = self._state.setdefault(meter, set())
        if name not in s:
            s.add(name)
            self._alarm(name, meter, detail)

    def _off(self, meter, name):
        s = self._state.get(meter)
        if s and name in s:
            s.discard(name)
            return True
        return False

    def polled(self, meter, st):
        """One poll's outcome: a status dict, or the error text."""
        if not isinstance(st, dict):
            n = self._fails[meter] = self._fails.get(meter, 0) + 1
            if n >= SILENT_AFTER:
                self._on(meter, "meter_silent", "%d polls unanswered: %s" % (n, st))
            return
        self._fails[meter] = 0
        if self._off(meter, "meter_silent"):
            self._alarm("meter_back", meter, "answering again")
        if st.get("relay_open"):
            self._on(meter, "relay_open", "balance %d" % st.get("balance", 0))
        else:
            self._off(meter, "relay_open")
        if self.low is not None and "balance" in st:
            if st["balance"] < self.low:
                self._on(meter, "low_balance", "balance %d under %d" % (st["balance"], self.low))
            else:
                self._off(meter, "low_balance")

    def refused(self, screen):
        """A refusal's screen: authentication failures, counted."""
        now = time.ticks_ms()
        self._auth = [t for t in self._auth if time.ticks_diff(now, t) < AUTH_WINDOW_MS]
        if screen not in AUTH_SCREENS:
            return
        self._auth.append(now)
        if len(self._auth) >= AUTH_AFTER and not self._auth_raised:
            self._auth_raised = True
            self._alarm("auth_failures", None, "%d authentication failures in %d min"
                        % (len(self._auth), AUTH_WINDOW_MS // 60000))
        elif len(self._auth) == 1:
            self._auth_raised = False  # a quiet window since the last alarm
