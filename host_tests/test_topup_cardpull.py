"""Issue 10, card pulls: the card pulled at every byte of the conversation
after the meter session (the write-back: the credit is on the meter, the
card not told yet) and at every command of the read, then re-inserted: the
purchase lands exactly once and the return file ends up right."""
import pytest

import card_model
from topup_ctl import Rig, meter_state

METER = "000000000001"



class Marked(card_model.Card):
    """A card noting the wire position at which it executes each command:
    its effect happens there, before its answer leaves."""

    sim = None

    def apdu(self, cmd):
        self.at.append((self.sim.wire.count, bytes(cmd[:2]).hex()))
        return super().apdu(cmd)


def _marked(p):
    c = p.card
    p.card = Marked(c.serial, c._key, dict(c.files), c.atr)
    p.card.at = []
    return p.card


def _prepare(rig):
    rig.boot()
    p = rig.sell(METER)
    rig.session(p)
    rig.check()
    rig.term.cmd("halt")
    st = rig.sim.meter(METER)
    return rig.snapshot("prepared.img"), p.serial, (st["balance"], st["count"])


def _one(rig, image, serial, start, pull_after):
    """A second purchase on the known card, pulled after `pull_after` bytes,
    then re-inserted until settled. -> (logs of the pulled session, card)."""
    rig.restore(image)
    rig.sim.set(METER, balance=start[0], count=start[1])
    rig.initial[METER] = start
    rig.sold[METER] = []
    p = rig.sell(METER, serial=serial)
    card = _marked(p)
    rig.boot()
    logs = rig.session(p, pull_after=pull_after)
    rig.settle_card(p)
    rig.check()
    return logs, card


@pytest.mark.parametrize("phase", ["read", "write_back"])
def test_card_pulled_at_every_byte_then_reinserted(mpy, phase):
    """write_back: every byte from the write-back's GET CHALLENGE to the
    last SW (the credit on the meter, the card not told yet). read: the
    ATR, and each command's last byte in and first byte out (nothing sent
    to a meter yet; each costs the 3 s "card pulled" screen)."""
    with Rig([meter_state(METER)], mpy=mpy) as rig:
        image, serial, start = _prepare(rig)
        logs, card = _one(rig, image, serial, start, None)
        total = rig.last_sim.wire.count
        cmds = card.at  # [(wire position, "CLA INS")] of the clean conversation
        assert [c for _, c in cmds][-2:] == ["0084", "04d6"], cmds  # challenge, write-back
        challenge = cmds[-2][0] - 5  # its header's first byte
        if phase == "write_back":
            points = list(range(challenge, total))
        else:
            points = sorted({3} | {q for q, _ in cmds[:-2]} | {q + 1 for q, _ in cmds[:-2]})
        pulled = 0
        for n in points:
            logs, _ = _one(rig, image, serial, start, n)
            pulled += "card: removed before the write-back" in logs or "screen: card_pulled" \
                in logs or any(line.startswith("card: refused") for line in logs)
        print("card conversation %d bytes, %d commands; %s: pulled at %d positions"
              % (total, len(cmds), phase, len(points)))
        assert pulled == len(points)


def test_a_card_told_but_not_heard_leaves_no_entry_open_for_ever(mpy):
    """The card executes the write-back (its return file says credited) but
    is pulled before its 9000 reaches the terminal. The office reads the
    card back (credited), sells the next purchase onto it, and so on: the
    card never needs that old entry again. The journal must not keep such
    entries open for ever (each stays in the heap, and no open slot is
    ever reused: the ring runs out, and the heap first)."""
    with Rig([meter_state(METER)], mpy=mpy, display=False) as rig:
        image, serial, _ = _prepare(rig)
        rig.restore(image)
        rig.boot()
        p = rig.sell(METER, serial=serial)
        rig.session(p)
        heard = rig.last_sim.wire.count - 2  # the write-back's SW1 SW2 not sent
        heap0 = rig.term.cmd("gc")["alloc"]
        for _ in range(40):
            p = rig.sell(METER, serial=serial)
            logs = rig.session(p, pull_after=heard)
            assert "card: removed before the write-back" in logs, logs
            assert p.returned()["count"] == p.count  # the card was told
            rig.check()
        st = rig.term.cmd("status")
        heap = rig.term.cmd("gc")["alloc"]
        assert st["open_n"] <= 1, ("%d journal entries open for cards long since told "
                                   "(heap %+d bytes): %s"
                                   % (st["open_n"], heap - heap0, st["open"]))
