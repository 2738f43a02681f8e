"""A re-registration saved so that a power cut leaves nothing half-saved.

technician.py authenticates the new meter first (the key held in RAM);
then save(app, p) writes, in this order:

  1. the intent, /tech/pending (storage.write_atomic): the customer, old
     and new meter and address, the key kind and, for a package, the
     sealed record (the key never in clear)
  2. the key store (an imported package, or a stale override removed)
  3. the record: the new meter, awaiting its opening purchase at the
     meter; the old meter's record removed
  4. the intent removed

Every step can be repeated, so finish(app), at boot, completes an intent a
cut left: the customer is either still "replaced" (no intent: nothing was
written) or fully re-registered. An intent is written only after its meter
authenticated, so completing it is always right.
"""
import json
import os

import records
import storage

_PENDING = "/tech/pending"


def save(app, p):
    root = app.records_root
    try:
        os.mkdir(root + "/tech")
    except OSError:
        pass  # there already
    storage.write_atomic(root + _PENDING, json.dumps(p).encode())
    _apply(app, p)
    os.remove(root + _PENDING)


def _apply(app, p):
    ks = app.keystore
    path = app.config.get("keystore_path")
    changed = False
    if p["key"] == "package":
        ks.import_meter_key(bytes.fromhex(p["sealed"]))
        changed = True
    elif p["address"] in ks.overrides():  # a stale override would shadow the derived key
        changed = ks.remove_meter_key(p["address"])
    old_address = p.get("old_address", p["old"])
    if old_address != p["address"] and old_address in ks.overrides():
        changed = ks.remove_meter_key(old_address) or changed  # that meter is gone
    if changed and path:
        ks.save(path)
    rs = app.records
    old = rs.get(p["old"])
    new = rs.get(p["meter"])
    base = new if new is not None and new.customer == p["customer"] else old
    if base is None or base.customer != p["customer"]:
        raise records.RecordError("no record of customer %s to re-register" % p["customer"])
    rec = records.Record(p["meter"], p["customer"], p["address"], records.AWAITING_OPENING,
                         base.category, base.type, base.prepaid, base.archived,
                         "override" if p["key"] == "package" else "derived",
                         "", base.retired)  # the next card seen is the customer's
    rs.put(rec)
    if p["old"] != p["meter"]:
        rs.remove(p["old"])
    if old_address in app.meters:  # the poll table follows
        app.meters[app.meters.index(old_address)] = p["address"]
    elif p["address"] not in app.meters:
        app.meters.append(p["address"])


def finish(app):
    """At boot: complete a re-registration a power cut interrupted. One that
    cannot be completed now (a failing flash) stays for the next boot; the
    customer stays refused meanwhile, and the terminal boots."""
    root = app.records_root
    try:
        p = json.loads(storage.read_checked(root + _PENDING, 512))
    except storage.Missing:
        return
    except (storage.StorageError, ValueError) as e:
        app.log("technician: unfinished re-registration unreadable (%s): dropped" % e)
        _remove(root + _PENDING)
        return
    try:
        _apply(app, p)
    except Exception as e:  # noqa: BLE001 - the terminal must boot; retried next boot
        app.log("technician: re-registration of meter %s not completed: %r" % (p.get("meter"), e))
        return
    _remove(root + _PENDING)
    app.log("technician: re-registration of meter %s completed at boot" % p["meter"])


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
