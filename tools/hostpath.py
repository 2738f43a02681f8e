"""Where host tools and tests find the project's modules: the one place.

On a board, firmware/, drivers/ and the board's own files are frozen side by
side as flat modules. On the host the same names must resolve the same way,
so every tool and test starts with

    import hostpath  # noqa: F401

(tools/ is the script directory for `python tools/x.py`; pytest gets it from
pytest.ini's `pythonpath`). Importing this module puts DIRS at the front of
sys.path, in that order, each exactly once, whatever was there before, so a
same-named module elsewhere on the path (a site-package, the current
directory) never silently wins. host_tests/test_lint.py checks that no two
of these folders hold a module of the same name, that none shadows the
standard library, and that nothing else in the project edits sys.path.

MP_DIRS is the matching path for scripts run under the real `micropython`
(host_tests/mp_runner.py passes it as MICROPYPATH).
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Searched in this order on the host (CPython).
DIRS = tuple(os.path.join(ROOT, d) for d in (
    "firmware",          # the application, flat modules
    "drivers",           # asyncio hardware drivers
    "boards/unix",       # the unix board: console display, PNG writer, UART
    "host_tests/shim",   # CPython stand-ins for MicroPython-only modules
    "tools",             # simulators, card tool, build tools
    "host_tests",        # test helpers (simulator controllers, mp_runner)
    "",                  # the root, for the head-end's package (headend/)
))

# Searched in this order under the MicroPython unix port (after .frozen).
MP_DIRS = tuple(os.path.join(ROOT, d) for d in (
    "firmware", "drivers", "host_tests/mp", "boards/unix",
))


def micropypath():
    """MICROPYPATH for the unix port: `.frozen` (asyncio) first, which a
    MICROPYPATH replaces unless it names it, then MP_DIRS."""
    return os.pathsep.join((".frozen",) + MP_DIRS)


def _same(a, b):
    return os.path.normcase(os.path.abspath(a or ".")) == os.path.normcase(os.path.abspath(b))


def prepend(dirs=DIRS):
    """Put dirs at the front of sys.path in order, dropping any other copy
    of them. Idempotent."""
    sys.path[:] = list(dirs) + [p for p in sys.path if not any(_same(p, d) for d in dirs)]


prepend()

if __name__ == "__main__":
    print(micropypath())  # MICROPYPATH=$(python tools/hostpath.py) micropython ...
