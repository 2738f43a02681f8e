"""The resident's side of the terminal: one owner of the screen, and the
keys routed to whoever the screen is showing.

Other tasks never draw: they ask.

    ui.show("reading")                     # replace the screen now
    key = await ui.ask("card_info", (OK, CANCEL), 30000, customer=..., ...)
    ui.idle()                              # back to the clock

The drawing task (run) redraws only when the wanted screen changed, the
language changed, or, on the idle screen, the minute turned. The key task
(keys) switches the language itself (and the current screen follows); any
other key goes to the flow waiting in ask(), or to the idle screen's own
pages (about, history: `idle_keys`), and is dropped otherwise.
"""
import asyncio

from micropython import const

import keypad
import screens

_MINUTE_MS = const(60000)


class UI:
    def __init__(self, display, clock, lang="zh", log=None):
        self.display = display
        self.clock = clock  # () -> time.localtime()-style tuple
        self.lang = lang
        self._log = log
        self._want = ("idle", {})
        self._drawn = None  # (name, fields, lang) last pushed
        self._drawn_want = None  # the request it answered
        self._changed = asyncio.Event()
        self._asking = None  # (keys accepted, Event, [key]) while a flow waits
        self._entry = None  # key -> used, while a flow takes digits (enter)
        self.idle_keys = None  # key -> handled by the idle pages (app sets it)
        self.shown = 0  # screens pushed, for tests and figures

    @property
    def current(self):
        return self._want[0]

    def show(self, name, **fields):
        """Ask for a screen. Checked here (a bad field is the caller's bug,
        raised in the caller's task, never in the drawing task)."""
        screens.layout(name, self.lang, **self._fill(name, fields))
        self._want = (name, fields)
        self._changed.set()

    def idle(self):
        self._want = ("idle", {})
        self._changed.set()

    def toggle_lang(self):
        self.lang = "en" if self.lang == "zh" else "zh"
        self._changed.set()

    def _fill(self, name, fields):
        if name == "idle":
            return {"time": tuple(self.clock()[0:5])}  # to the minute
        return fields

    def draw(self):
        """Push the wanted screen if it differs from what is up."""
        want = self._want
        name, fields = want
        fields = self._fill(name, fields)
        key = (name, fields, self.lang)
        self._drawn_want = want
        if key == self._drawn:
            return False
        screens.show(self.display, name, self.lang, **fields)
        self._drawn = key
        self.shown += 1
        if self._log:
            self._log("screen: %s" % name)
        return True

    async def drawn(self):
        """Wait until the screen asked for last is on the panel (a flow that
        logs "shown" must mean it)."""
        while self._drawn_want is not self._want:
            await asyncio.sleep_ms(5)

    async def run(self):
        """The drawing task: the only code that touches the display."""
        while True:
            self.draw()
            self._changed.clear()
            wait = _MINUTE_MS - self.clock()[5] * 1000 if self.current == "idle" else _MINUTE_MS
            try:
                await asyncio.wait_for_ms(self._changed.wait(), wait)
            except asyncio.TimeoutError:
                pass  # a new minute on the idle clock

    async def ask(self, name, accept, timeout_ms, **fields):
        """Show a screen and wait for one of the keys `accept`; returns the
        key, or None when nobody answered in time."""
        self.show(name, **fields)
        ev = asyncio.Event()
        got = []
        self._asking = (accept, ev, got)
        try:
            await asyncio.wait_for_ms(ev.wait(), timeout_ms)
        except asyncio.TimeoutError:
            return None
        finally:
            self._asking = None
        return got[0]

    async def enter(self, name, size, timeout_ms, field="digits", value="", **fields):
        """Digits typed on the keypad into `field` of screen `name` (Delete
        takes one back) until OK with `size` of them: returns the digits, or
        None on Cancel or when no key came for timeout_ms. `value`: digits
        already known (read from a meter) to confirm or edit. Every key is
        handled in the key task as it comes, so fast typing loses none."""
        typed = [value]
        done = []
        ev = asyncio.Event()
        keys = [0]

        def key(k):
            v = typed[0]
            if k == keypad.CANCEL:
                done.append(None)
            elif k == keypad.OK and len(v) == size:
                done.append(v)
            elif k == keypad.DELETE and v:
                typed[0] = v[:-1]
            elif len(k) == 1 and "0" <= k <= "9" and len(v) < size:
                typed[0] = v + k
            else:
                return False
            keys[0] += 1
            if done:
                ev.set()
            else:
                fields[field] = typed[0]
                self.show(name, **fields)
            return True

        fields[field] = value
        self.show(name, **fields)
        self._entry = key
        try:
            while not done:
                seen = keys[0]
                try:
                    await asyncio.wait_for_ms(ev.wait(), timeout_ms)
                except asyncio.TimeoutError:
                    if keys[0] == seen:
                        return None  # nobody is typing
        finally:
            self._entry = None
        return done[0]

    def key(self, k):
        """One key press -> whoever the screen is showing."""
        if k == keypad.LANG:
            self.toggle_lang()
            return True
        if self._entry is not None:
            return self._entry(k)
        asking = self._asking
        if asking is not None:
            if k in asking[0] and not asking[1].is_set():
                asking[2].append(k)
                asking[1].set()
                return True
            return False
        if self.idle_keys is not None and self.current in self.idle_keys.pages:
            return self.idle_keys.key(k)
        return False

    async def keys(self, queue):
        """The key task: route every press from a keypad.KeyQueue."""
        while True:
            k = await queue.get()
            try:
                used = self.key(k)
            except Exception as e:  # noqa: BLE001 - a page's bug must not kill the keypad
                used = False
                if self._log:
                    self._log("key: %s failed on %s: %r" % (k, self.current, e))
            if not used and self._log:
                self._log("key: %s ignored on %s" % (k, self.current))
