"""Keypad scanning and debounce with fake pins: bounce, two keys at once,
a held key, ghosting, and the queue the top-up flow reads."""
import asyncio

import pytest

import keypad


class Matrix:
    """Fake 4x4 matrix: row pins are outputs (0 selects), column pins read 0
    where a pressed key joins a selected row. Without diodes, current also
    flows through pressed keys between rows: that is what makes ghosts."""

    def __init__(self, nrows=4, ncols=4, diodes=False):
        self.down = set()
        self.levels = [1] * nrows
        self.diodes = diodes
        self.rows = [self._row(i) for i in range(nrows)]
        self.cols = [self._col(j) for j in range(ncols)]

    def _row(self, i):
        def pin(v=None):
            if v is None:
                return self.levels[i]
            self.levels[i] = v
        return pin

    def _col(self, j):
        def pin():
            low_rows = {i for i, v in enumerate(self.levels) if v == 0}
            if not self.diodes:
                # Spread through pressed keys: rows and columns joined by a key.
                changed = True
                cols = set()
                while changed:
                    changed = False
                    for (r, c) in self.down:
                        if r in low_rows and c not in cols:
                            cols.add(c)
                            changed = True
                        if c in cols and r not in low_rows:
                            low_rows.add(r)
                            changed = True
                return 0 if j in cols else 1
            return 0 if any((r, j) in self.down for r in low_rows) else 1
        return pin

    def press(self, key):
        self.down.add(divmod(keypad.KEYMAP_4X4.index(key), 4))

    def release(self, key):
        self.down.discard(divmod(keypad.KEYMAP_4X4.index(key), 4))


def make(**kw):
    m = Matrix()
    return m, keypad.Keypad(m.rows, m.cols, **kw)


def scans(kp, n):
    out = []
    for _ in range(n):
        out += kp.poll()
    return out


def test_clean_press_needs_debounce_scans():
    m, kp = make()
    m.press("5")
    assert kp.poll() == [] and kp.poll() == []
    assert kp.poll() == ["5"]
    assert kp.queue.get_nowait() == "5" and len(kp.queue) == 0


def test_bounce_on_press_and_release_gives_one_key():
    m, kp = make()
    got = []
    for closed in (1, 0, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1):  # contact chatter, then closed
        (m.press if closed else m.release)("ok")
        got += kp.poll()
    for closed in (0, 1, 0, 0, 1, 0, 0, 0, 0, 0):  # chatter on release
        (m.press if closed else m.release)("ok")
        got += kp.poll()
    assert got == ["ok"]
    assert kp.pressed == 0


def test_glitch_while_held_is_not_a_second_press():
    m, kp = make()
    m.press("1")
    assert scans(kp, 5) == ["1"]
    m.release("1")
    assert scans(kp, 2) == []  # two open scans < debounce
    m.press("1")
    assert scans(kp, 10) == []


def test_held_key_never_repeats():
    m, kp = make()
    m.press("cancel")
    assert scans(kp, 500) == ["cancel"]  # 5 s at 10 ms
    m.release("cancel")
    assert scans(kp, 5) == []
    m.press("cancel")
    assert scans(kp, 5) == ["cancel"]


def test_two_keys_at_once_both_reported_once():
    m, kp = make()
    m.press("1")
    m.press("9")
    assert sorted(scans(kp, 10)) == ["1", "9"]
    m.release("1")
    assert scans(kp, 10) == []
    m.press("0")
    assert scans(kp, 10) == ["0"]


def test_ghost_corner_is_not_reported():
    # 1 and 2 (row 0) then 4 (row 1, column of 1): the matrix also reads 5 closed.
    m, kp = make()
    m.press("1")
    m.press("2")
    assert sorted(scans(kp, 5)) == ["1", "2"]
    m.press("4")
    assert kp.scan() & (1 << keypad.KEYMAP_4X4.index("5")), "fake matrix shows the ghost"
    assert scans(kp, 10) == []  # neither 4 nor the ghost 5 is guessed


def test_scan_reads_the_right_key():
    m, kp = make()
    for i, k in enumerate(keypad.KEYMAP_4X4):
        m.down.clear()
        m.press(k)
        assert kp.scan() == 1 << i, k
    # Rows idle high after a scan.
    assert m.levels == [1, 1, 1, 1]


def test_settings_checked():
    m = Matrix()
    with pytest.raises(ValueError):
        keypad.Keypad(m.rows, m.cols, keymap=("1",) * 15)
    with pytest.raises(ValueError):
        keypad.Keypad(m.rows, m.cols, debounce=0)


def test_queue_order_and_overflow():
    q = keypad.KeyQueue(size=3)
    for k in "1234":
        q.put_nowait(k)
    assert q.dropped == 1 and len(q) == 3
    assert [q.get_nowait() for _ in range(3)] == ["1", "2", "3"]
    with pytest.raises(IndexError):
        q.get_nowait()
    q.put_nowait("5")
    q.clear()
    assert len(q) == 0


def test_queue_get_waits_for_a_key():
    async def main():
        q = keypad.KeyQueue()
        waiter = asyncio.ensure_future(q.get())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        q.put_nowait("ok")
        return await asyncio.wait_for(waiter, 1)
    assert asyncio.run(main()) == "ok"


def test_task_scans_and_feeds_the_queue():
    async def main():
        m = Matrix()
        kp = keypad.Keypad(m.rows, m.cols, period_ms=2)
        task = kp.start()
        m.press("7")
        first = await asyncio.wait_for(kp.queue.get(), 1)
        await asyncio.sleep(0.05)  # held: nothing more
        m.release("7")

        async def released():
            # debounced state, whatever the machine's load; Keypad has no
            # release event to wait on, so poll it as the scan task would
            while kp.pressed:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
        await asyncio.wait_for(released(), 1)
        m.press("ok")
        second = await asyncio.wait_for(kp.queue.get(), 1)
        task.cancel()
        return first, second, len(kp.queue)
    assert asyncio.run(main()) == ("7", "ok", 0)
