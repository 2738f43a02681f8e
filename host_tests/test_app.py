"""The app (firmware/app.py) under the real micropython: keys reach the
screen showing them, the language follows, cards are refused at read time
with their screens, and a meter session owns the bus from first frame to
last. The same app runs on every board: both boards' entry points call it."""
import os

from mp_runner import ROOT, run_mp_json


def test_keys_language_and_refusals_at_read_time():
    got = run_mp_json("host_tests/mp/app_flow.py", heap="512k")  # 128 KB of it is "flash"
    assert got["about"] and got["about_back"]  # idle: OK shows the version page
    assert got["asked"] and got["still_asking"]
    assert got["lang_redraw"]  # the question redrawn in English, still up
    assert got["confirmed"] and got["released"]  # OK reached the question
    assert got["cancelled"]
    assert got["unknown"] == "meter_unknown"
    assert got["opening"] == "opening_card"
    assert got["zero"] == "nothing_to_credit"
    assert got["count0"] == "count_error"


def test_a_session_owns_the_bus():
    got = run_mp_json("host_tests/mp/app_bus.py", heap="256k")
    assert got["session_frames"] == 4
    assert got["contiguous"], got  # no poll frame between the session's
    assert got["polled_before"] and got["polled_after"], got


def test_both_boards_run_the_same_app():
    unix = open(os.path.join(ROOT, "boards/unix/terminal.py")).read()
    assert "app.main(board, config)" in unix
    for b in ("rp2_pico", "esp32s3"):
        assert "app.run(board, " in open(os.path.join(ROOT, "boards", b, "main.py")).read()
    # every board's pin map offers the functions the app asks for
    for b in BOARDS:
        src = open(os.path.join(ROOT, "boards", b, "board.py")).read()
        for fn in APP_ASKS:
            assert "\ndef %s(" % fn in src, (b, fn)


BOARDS = ("unix", "rp2_pico", "esp32s3")
APP_ASKS = ("bus", "card_slot", "display", "keys", "storage", "clock", "report", "close",
            "network")


def _functions(board):
    import ast
    tree = ast.parse(open(os.path.join(ROOT, "boards", board, "board.py")).read())
    return {n.name for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and not n.name.startswith("_")}


def test_every_board_offers_the_same_functions():
    """The production board is the Pico's twin: the same public functions
    (the card reader behind the slot included); the unix board offers at
    least what the app asks for. A function added to one board and not the
    others fails here."""
    pico, esp = _functions("rp2_pico"), _functions("esp32s3")
    assert esp == pico, (sorted(esp - pico), sorted(pico - esp))
    for b in BOARDS:
        missing = set(APP_ASKS) - _functions(b)
        assert not missing, (b, sorted(missing))
    assert _functions("unix") - set(APP_ASKS) <= pico - set(APP_ASKS)
