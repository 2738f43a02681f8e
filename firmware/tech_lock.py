"""The terminal's own lock-out of technician mode: three wrong PINs at this
terminal lock the mode for 15 minutes, across power cuts.

The card counts its own wrong PINs (and blocks itself); this counts the
terminal's, so trying many cards at one terminal is slow too. State is one
small checked file (storage.write_atomic): the wrong PINs in a row and,
once locked, when. Fail safe: a file that cannot be read, or a clock that
is now before the moment of locking, means locked for 15 minutes from now.
An attempt is counted on flash BEFORE the PIN goes to the card: pulling
the power after a wrong VERIFY cannot give a free try.
"""
from micropython import const

import storage

LIMIT = const(3)  # wrong PINs in a row
LOCK_S = const(900)  # 15 minutes
_MAX = const(32)


def seconds(t):
    """A time.localtime()-style tuple -> seconds since 1970 (civil calendar,
    no time module: the same on every board)."""
    y, m, d = t[0], t[1], t[2]
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return ((days * 24 + t[3]) * 60 + t[4]) * 60 + t[5]


class Lockout:
    def __init__(self, root, clock, log=None):
        self.path = root + "/tech/lock"
        self._dir = root + "/tech"
        self.clock = clock
        self._log = log

    def _now(self):
        return seconds(self.clock())

    def _load(self):
        """-> (wrong, locked_at or None); a bad file: locked from now."""
        try:
            data = storage.read_checked(self.path, _MAX)
            wrong, at = data.decode().split(",")
            return int(wrong), (int(at) if at else None)
        except storage.Missing:
            return 0, None
        except (storage.StorageError, ValueError, OSError) as e:
            if self._log:
                self._log("technician: lock file unreadable (%s): locked" % e)
            return LIMIT, self._now()

    def _save(self, wrong, at):
        try:
            import os
            os.mkdir(self._dir)
        except OSError:
            pass  # there already
        storage.write_atomic(self.path, ("%d,%s" % (wrong, "" if at is None else at)).encode())

    def minutes_left(self):
        """0 when technician mode may be entered; else the minutes to wait."""
        wrong, at = self._load()
        if wrong < LIMIT:
            return 0
        now = self._now()
        if at is None or now < at:  # the clock went back: count from now
            self._save(LIMIT, now)
            return LOCK_S // 60
        left = at + LOCK_S - now
        if left <= 0:
            self._save(0, None)  # served: a fresh start
            return 0
        return (left + 59) // 60

    def attempt(self):
        """Count a PIN try before the card sees it; -> the state to restore
        when the card did not check a PIN at all (blocked, pulled)."""
        before = self._load()
        wrong = before[0] + 1
        self._save(wrong, self._now() if wrong >= LIMIT else None)
        return before, wrong

    def restore(self, before):
        self._save(before[0], before[1])

    def good(self):
        """The card took the PIN: the count starts again."""
        self._save(0, None)
