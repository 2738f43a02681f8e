"""The terminal: its tasks, the same on every board.

    import app, board
    app.run(board, config)

`board` is the board's pin map module (boards/<b>/board.py). Every board
offers the same functions; each returns None where the board has no such
part:

    board.bus(config)        the RS-485 meter bus (drivers/rs485.RS485)
    board.card_slot(config)  the card slot: `await slot.open()`, then
                             `await slot.wait_card()` -> a CardReader for
                             the card just inserted, `await
                             slot.release(reader)` once it is out
    board.display(config)    a 128x64 frame buffer with show()
    board.keys(config)       a keypad.KeyQueue the keypad feeds
    board.storage(config)    the path where littlefs holds the records and
                             the journal (mounted by the board)
    board.inbox(config)      the folder where key packages for re-registration
                             arrive (<meter>.key), or None
    board.clock()            time.localtime()-style tuple
    board.report(kind, text) where the board puts the poll table
                             ("table") and events ("log"): a console, a
                             serial port, nothing

`config` is a dict: "meters" (the bus addresses polled), "seed" (meter
entries for the records on first boot: address, meter_number, customer,
state), "keystore" (a keystore.KeyStore), "interval" (s between polls),
"once" (poll once, report, stop), "lang", "auto_ok" (confirm every
question: tests and benchmarks; never a technician's), "keystore_path"
(where re-registration saves the key store; None: it cannot keep a key
package), "mqtt" (the head-end's broker: {"host", "port", "username",
"password", "tls"}; none: no reporting), "low_balance" (fen: a polled
balance under it raises an alarm).

Tasks: the screen's owner (ui.UI.run) and the key router (ui.UI.keys), the
card slot (a card in -> topup.serve), and the bus poller. The bus has one
owner at a time: `App.bus_owner`, held by the poller for one meter's poll
and by a card's meter session from its first frame to its last, so the
poller never interleaves frames into a session.
"""
import asyncio


import common
import keypad
from meter import MeterClient

# The screen (glyphs, catalogue), the card flow and the storage modules are
# imported when the board has the part: `--once` on a small heap needs none.



class App:
    def __init__(self, board, config):
        self.board = board
        self.config = config
        self.keystore = config.get("keystore")
        self.meters = list(config.get("meters") or ())
        self.status = {}  # meter number -> last poll (dict) or error text
        self.bus_owner = asyncio.Lock()
        self._poll_now = asyncio.Event()
        display = None if config.get("once") else board.display(config)
        self.ui = None
        if display is not None:
            import ui
            self.ui = ui.UI(display, board.clock, config.get("lang", "zh"), log=self.log)
        if self.ui is not None:
            import idle_pages
            self.ui.idle_keys = idle_pages.IdlePages(self)
        self.records = self.journal = self.events = self.reporter = self.alarms = None
        root = None if config.get("once") else board.storage(config)
        self.records_root = root
        if root is not None:
            import journal
            import records
            self.records = records.Records(root, config.get("record_capacity",
                                                            records.CAPACITY))
            moved = {}  # customers re-registered since the meters list was written
            added = self.records.seed(config.get("seed") or (), moved)
            if added:
                self.log("records: %d meters added" % added)
            k_r = self._reporting_key()
            self.journal = journal.Journal(root, self.terminal_id, board.clock,
                                           config.get("journal_slots", journal.SLOTS),
                                           track=k_r is not None)
            if k_r is not None:  # events and alarms are for the head-end: only then
                import alarms
                import events
                import reporter
                self.events = events.Events(root, self.journal,
                                            config.get("event_slots", events.SLOTS))
                self.reporter = reporter.Reporter(self, root, k_r, config["mqtt"])
                self.alarms = alarms.Alarms(self._alarm, config.get("low_balance"))
            self.log("journal: next #%d, %d open" % (self.journal.next_seq,
                                                      len(self.journal.open_entries())))
            if _exists(root + "/tech/pending") or _exists(root + "/tech/pending.tmp"):
                import reregistration  # one a power cut interrupted
                reregistration.finish(self)
            self._follow(moved)
            self.event("boot", reason="power_on",
                       open=sum(1 for e in self.journal.open_entries() if not e.settled))
        # the bus last: a flash that cannot be used is said before a bus is tried
        bus = board.bus(config)
        self.client = MeterClient(bus) if bus is not None else None
        self._tasks = []
        self._timer = None
        self.slot = None

    def _follow(self, moved):
        """Poll a re-registered customer's meter now, not the one taken away
        (whose silence would be a false alarm at the head-end)."""
        for old, new in moved.items():
            if old in self.meters and new not in self.meters:
                self.meters[self.meters.index(old)] = new

    @property
    def terminal_id(self):
        import bcd
        return bcd.to_digits(self.keystore.terminal_id) if self.keystore else "000000000000"

    def log(self, line):
        self.board.report("log", line)

    def _reporting_key(self):
        """K_r when the terminal reports: a broker configured and a key
        store provisioned with a reporting key."""
        if not self.config.get("mqtt"):
            return None
        k_r = self.keystore.reporting_key if self.keystore else None
        if k_r is None:
            self.log("report: off: the key store has no reporting key (provisioned "
                     "before reporting): re-provision it to report")
        return k_r

    def event(self, kind, **fields):
        """Journal something that is not a top-up: a refusal, a technician's
        action (with the technician card's serial), an alarm. Each gets the
        terminal's next sequence number and reaches the head-end like a
        top-up (docs/reporting.md). Never raises: an event that cannot be
        written is logged, and the resident's flow goes on."""
        items = sorted(fields.items())
        self.log("event: %s %s" % (kind, " ".join("%s=%s" % kv for kv in items)))
        if self.events is not None:
            try:
                seq = self.events.add(kind, items)
                self.log("event: journalled #%d" % seq)
            except Exception as e:  # noqa: BLE001 - flash full, ring full: said, flow goes on
                self.log("event: %s not journalled: %s %s" % (kind, type(e).__name__, e))
        if kind == "refusal" and self.alarms is not None:
            self.alarms.refused(fields.get("screen"))

    def _alarm(self, name, meter, detail):
        if meter is None:
            self.event("alarm", alarm=name, detail=detail)
        else:
            self.event("alarm", alarm=name, meter=meter, detail=detail)

    def selftest(self):
        """The factory self-test from the keypad (firmware/selftest_ui.py),
        on the terminal's own parts; back to idle when the operator is done."""
        import selftest_ui

        async def go():
            try:
                await selftest_ui.from_keypad(self.ui, selftest_ui.app_parts(self), self.log)
            finally:
                self.ui.idle()
        self._tasks.append(asyncio.create_task(go()))

    def later(self, ms, screen):
        """Back to idle after `ms` if `screen` is still up (one timer)."""
        async def back():
            await asyncio.sleep_ms(ms)
            if self.ui.current == screen:
                self.ui.idle()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.create_task(back())

    # --- the bus poller ----------------------------------------------
    async def poll_once(self):
        for m in self.meters:
            async with self.bus_owner:
                try:
                    self.status[m] = await self.client.status(m)
                except Exception as e:  # noqa: BLE001 - one meter must not stop the poll
                    self.status[m] = "%s: %s" % (type(e).__name__, e)
            if self.alarms is not None:
                self.alarms.polled(m, self.status[m])
        self.board.report("table", self.table())

    async def poller(self):
        while True:
            await self.poll_once()
            self._poll_now.clear()
            try:
                await asyncio.wait_for(self._poll_now.wait(), self.config.get("interval", 5))
            except asyncio.TimeoutError:
                pass

    def poll_soon(self):
        """A top-up moved a balance: show it without waiting for the interval."""
        self._poll_now.set()

    def table(self):
        lines = ["meter         balance/yuan  count  relay"]
        for m in self.meters:
            st = self.status.get(m, "not polled yet")
            if isinstance(st, dict):
                lines.append("%s  %12s  %5d  %s%s" % (
                    m, common.money(st["balance"]), st["count"],
                    "OPEN" if st["relay_open"] else "closed",
                    "" if st["opened"] else "  (not opened)"))
            else:
                lines.append("%s  %s" % (m, st))
        return "\n".join(lines)

    # --- the card slot -----------------------------------------------
    async def card_loop(self, slot, topup):
        while True:
            reader = await slot.wait_card()
            try:
                await topup.serve(self, reader)
            except Exception as e:  # noqa: BLE001 - a card must never stop the slot
                self.log("card: error %s %s" % (type(e).__name__, e))
            finally:
                self.poll_soon()
                await slot.release(reader)
                if self.ui is not None:
                    self.ui.idle()

    async def ask(self, name, accept, timeout_ms, **fields):
        """A question on the screen; auto_ok answers OK at once."""
        if self.config.get("auto_ok") or self.ui is None:
            if self.ui is not None:  # shown, then answered, as a resident would
                self.ui.show(name, **fields)
                await self.ui.drawn()
            return keypad.OK
        return await self.ui.ask(name, accept, timeout_ms, **fields)

    async def enter(self, name, size, timeout_ms, field="digits", value="", **fields):
        """Digits typed on the keypad (ui.UI.enter); None without a keypad.
        Never auto-answered: nobody can guess a PIN or a meter number."""
        if self.ui is None:
            return None
        return await self.ui.enter(name, size, timeout_ms, field, value, **fields)

    def show(self, name, **fields):
        if self.ui is not None:
            self.ui.show(name, **fields)

    async def drawn(self):
        if self.ui is not None:
            await self.ui.drawn()

    async def until_pulled(self, reader, screen, **fields):
        """A card's outcome (top-up or technician) stays up until it is pulled."""
        self.show(screen, **fields)
        await self.drawn()
        self.log("card: shown; waiting for the pull")
        await reader.wait_removed()
        self.log("card: removed")

    # --- running -------------------------------------------------------
    async def start(self):
        """Open the parts and start every task the board has parts for.
        OSError from a part (a card slot that cannot open) reaches the caller."""
        slot = self.slot = self.board.card_slot(self.config)
        if slot is not None:
            await slot.open()
        spawn = self._tasks.append
        if self.ui is not None:
            spawn(asyncio.create_task(self.ui.run()))
            keys = self.board.keys(self.config)
            if keys is not None:
                spawn(asyncio.create_task(self.ui.keys(keys)))
        if slot is not None:
            import topup  # at boot: a card must never be the one to find the heap short
            spawn(asyncio.create_task(self.card_loop(slot, topup)))
        if self.client is not None and self.journal is not None:
            import recovery
            spawn(asyncio.create_task(recovery.settle_all(self)))
        if self.client is not None and self.meters:
            spawn(asyncio.create_task(self.poller()))
        if self.reporter is not None:
            spawn(asyncio.create_task(self.reporter.run()))
        return self

    def stop(self):
        if self._timer is not None:
            self._timer.cancel()
        for t in self._tasks:
            t.cancel()
        self._tasks = []


def _exists(path):
    import os
    try:
        os.stat(path)
        return True
    except OSError:
        return False


async def main(board, config):
    a = App(board, config)
    if config.get("once"):
        await a.poll_once()
        return a
    await a.start()
    await asyncio.Event().wait()  # serve until the board stops us


def run(board, config):
    asyncio.run(main(board, config))

