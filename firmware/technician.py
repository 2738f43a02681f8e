"""Technician mode: a technician card in the slot. Reads top to bottom.

serve(app, reader, card, info) is called by topup.serve once the card is
read: genuine (internal authenticate under K_c) with an all-zero purse.

  1. the terminal's lock-out (3 wrong PINs here: 15 minutes, on flash)
  2. the PIN typed on the keypad, masked, checked by the card itself
     (VERIFY); the terminal holds no PIN
  3. the menu, until the card is pulled: mark a customer's meter replaced
     (top-ups refused from then on), or re-register its new meter
  4. re-registration: the new meter's address and number (read from the
     bus where it can, confirmed on the keypad), its keys (derived from
     MK_M, or a sealed key package from the inbox, MAC-checked), then the
     new meter authenticated (identity authentication and a MAC-checked
     read-back) with the key held in RAM; a meter that fails is not saved
  5. saving (reregistration.py), in an order a power cut cannot tear: the
     intent on flash, the key store, the record (awaiting its opening
     purchase at the meter); a boot completes an intent a cut left.

Every action is journalled with the card's serial and the technician's id
(app.event("technician", ...), docs/reporting.md).
"""
import asyncio

from micropython import const

import keypad
import meter_items
import records
import reregistration
import storage
import tech_lock
import user_card
from card_reader import CardRemoved
from keystore import KeyStoreError
from meter_security import MeterSession

_WAIT_MS = const(120000)  # a technician reads the meter's label meanwhile
_OK = (keypad.OK, keypad.CANCEL)


class _Pulled(Exception):
    """The technician card left the slot: the mode ends."""


async def serve(app, reader, card, info):
    tech = _Tech(app, info)
    try:
        await _session(app, reader, card, tech)
    except _Pulled:  # the mode ends when the card is pulled
        app.log("card: removed")


async def _session(app, reader, card, tech):
    lock = tech_lock.Lockout(app.records_root, app.board.clock, app.log)

    # 1. The terminal's own lock-out, whatever the card.
    minutes = lock.minutes_left()
    if minutes:
        tech.event("locked")
        return await app.until_pulled(reader, "tech_locked", minutes=minutes)

    # 2. The PIN, checked by the card. Each try is counted on flash first.
    while True:
        pin = await _unless_pulled(reader, app.enter("tech_pin", 6, _WAIT_MS, field="pin"))
        if pin is None:
            return await app.until_pulled(reader, "cancelled")
        before, wrong = lock.attempt()
        try:
            await card.verify_pin(pin)
            break
        except user_card.PinWrong as e:
            tech.event("pin_wrong")
            if wrong >= tech_lock.LIMIT:
                tech.event("locked")
                return await app.until_pulled(reader, "tech_locked",
                                              minutes=tech_lock.LOCK_S // 60)
            if e.tries == 0:
                return await app.until_pulled(reader, "tech_card_blocked")
            tries = min(e.tries, tech_lock.LIMIT - wrong)
            k = await _unless_pulled(reader, _choose(app, "tech_pin_wrong", _OK, tries=tries))
            if k != keypad.OK:
                return await app.until_pulled(reader, "cancelled")
        except user_card.PinBlocked:
            lock.restore(before)  # the card checked nothing
            return await app.until_pulled(reader, "tech_card_blocked")
        except CardRemoved:
            raise _Pulled
    lock.good()
    tech.event("enter")

    # 3. The menu until the card is pulled (no card operation is left).
    await _unless_pulled(reader, _menu(app, tech))


async def _menu(app, tech):
    while True:
        k = await _choose(app, "tech_menu", ("1", "2"))
        if k == "1":
            await tech.mark_replaced()
        elif k == "2":
            await tech.register()


async def _unless_pulled(reader, coro):
    """Run coro (keypad waits, meter work; no card operation) in this task,
    with a watcher on the slot: the card pulled cancels it (_Pulled).
    Saving is synchronous, so a cancel never lands inside it."""
    me = asyncio.current_task()
    pulled = []

    async def watch():
        await reader.wait_removed()
        pulled.append(1)
        me.cancel()

    w = asyncio.create_task(watch())
    try:
        return await coro
    except asyncio.CancelledError:
        if not pulled:
            raise  # the terminal stopping, not the card
        u = getattr(me, "uncancel", None)  # CPython counts cancel requests
        if u:
            u()
        raise _Pulled
    finally:
        w.cancel()


class _Tech:
    def __init__(self, app, info):
        self.app = app
        self.card = info.serial.hex()
        self.tech = info.customer  # a technician card's customer field is the id

    def event(self, action, **fields):
        self.app.event("technician", card=self.card, tech=self.tech, action=action, **fields)

    async def _customer(self):
        app = self.app
        c = await app.enter("tech_customer", 12, _WAIT_MS)
        if c is None:
            return None
        rec = app.records.by_customer(c)
        if rec is None:
            await _choose(app, "tech_no_customer", _OK)
        return rec

    async def mark_replaced(self):
        """From now on the customer's top-ups are refused ("meter replaced")."""
        app = self.app
        rec = await self._customer()
        if rec is None:
            return
        if await _choose(app, "tech_mark_confirm", _OK, customer=rec.customer,
                         meter=rec.meter) != keypad.OK:
            return
        rec.state = records.REPLACED
        try:
            app.records.put(rec)
        except OSError as e:
            app.log("technician: not saved: %r" % e)
            return await _choose(app, "tech_not_saved", _OK)
        self.event("replaced", meter=rec.meter)
        await _choose(app, "tech_marked", _OK, customer=rec.customer)

    async def register(self):
        """The new meter of a customer marked replaced."""
        app = self.app
        rec = await self._customer()
        if rec is None:
            return
        if rec.state != records.REPLACED:
            return await _choose(app, "tech_not_replaced", _OK)
        # The address: read from the bus when the new meter is alone on its
        # segment; the technician confirms or types it.
        address = await self._read(None) or ""
        address = await app.enter("tech_address", 12, _WAIT_MS, value=address)
        if address is None:
            return
        number = await self._read(address) or address
        number = await app.enter("tech_meter_number", 12, _WAIT_MS, value=number)
        if number is None:
            return
        if number != rec.meter and app.records.get(number) is not None:
            return await _choose(app, "tech_meter_taken", _OK)
        kind = await _choose(app, "tech_key_kind", ("1", "2", keypad.CANCEL))
        if kind not in ("1", "2"):
            return
        p = {"customer": rec.customer, "old": rec.meter, "old_address": rec.address,
             "meter": number, "address": address,
             "key": "derived" if kind == "1" else "package", "sealed": ""}
        if kind == "1":
            km = app.keystore.derived_key(address)
        else:
            km = await self._package(p)
            if km is None:
                return
        if await _choose(app, "tech_confirm", _OK, customer=rec.customer,
                         meter=number) != keypad.OK:
            return
        # The new meter proves it holds the key before anything is saved.
        app.show("tech_checking")
        why = await self._authenticate(address, km)
        if why:
            self.event("register_failed", meter=number, detail=why)
            return await _choose(app, "tech_no_meter" if why == "no answer"
                                 else "tech_auth_failed", _OK)
        import gc
        gc.collect()  # the session's garbage goes before the key store is copied
        try:
            reregistration.save(app, p)
        except (OSError, MemoryError, KeyStoreError, storage.StorageError) as e:
            app.log("technician: not saved: %r" % e)
            self.event("register_failed", meter=number, detail="not saved")
            return await _choose(app, "tech_not_saved", _OK)
        self.event("registered", meter=number, old_meter=rec.meter, address=address,
                   key=p["key"])
        await _choose(app, "tech_done", _OK, meter=number)

    async def _read(self, address):
        """The only meter's address (address None), or the meter number at
        `address`; None when the bus does not say."""
        app = self.app
        if app.client is None:
            return None
        async with app.bus_owner:
            try:
                if address is None:
                    return await app.client.read_address()
                return await app.client.read_item(address, meter_items.METER_NUMBER)
            except Exception as e:  # noqa: BLE001 - the technician types it instead
                app.log("technician: bus did not say (%s)" % type(e).__name__)
                return None

    async def _package(self, p):
        """K_m from the inbox's <meter>.key, MAC-checked; None refused."""
        app = self.app
        if not app.config.get("keystore_path"):
            app.log("technician: no key store file to keep a package in")
            await _choose(app, "tech_not_saved", _OK)
            return None
        inbox = app.board.inbox(app.config)
        sealed = _read_package("%s/%s.key" % (inbox, p["meter"]))
        if sealed is None:
            await _choose(app, "tech_package_missing", _OK, meter=p["meter"])
            return None
        try:
            address, km = app.keystore.open_sealed(sealed)
            if address != p["address"]:
                raise KeyStoreError("package is for address %s" % address)
        except KeyStoreError as e:
            app.log("technician: key package refused: %s" % e)
            self.event("register_failed", meter=p["meter"], detail="package")
            await _choose(app, "tech_package_bad", _OK)
            return None
        p["sealed"] = sealed.hex()
        return km

    async def _authenticate(self, address, km):
        """Identity authentication and a MAC-checked read-back: None, or why not."""
        app = self.app
        if app.client is None:
            return "no answer"
        async with app.bus_owner:
            s = MeterSession(app.client, address, km, app.keystore.operator_code)
            try:
                await s.authenticate()
                st = await s.read_back()
                app.log("technician: meter %s authenticated (count %d)" % (address, st.count))
                return None
            except Exception as e:  # noqa: BLE001 - any failure: not saved
                app.log("technician: meter %s failed: %s %s" % (address, type(e).__name__, e))
                import dlt645
                if isinstance(e, (dlt645.NoReply, OSError)):
                    return "no answer"
                return "auth"
            finally:
                await s.end()


def _read_package(path):
    """A package file's sealed record (hex, 26 bytes), or None."""
    try:
        with open(path) as f:
            return bytes.fromhex(f.read(80).strip())
    except (OSError, TypeError, ValueError):
        return None


async def _choose(app, name, accept, **fields):
    """A question only a person answers (never auto_ok): the key, or None."""
    if app.ui is None:
        return None
    return await app.ui.ask(name, accept, _WAIT_MS, **fields)
