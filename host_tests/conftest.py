"""Test set-up shared by every test: firmware and drivers import as flat
modules (as they are frozen on a board), tools import as modules, and the
`micropython` shim stands in under CPython. tools/hostpath.py decides the
path (pytest.ini's `pythonpath` lets this import find it)."""
import hostpath  # noqa: F401
import pytest

# Property tests check answers, not speed: a busy CI machine must not turn a
# slow example into a failure (speed lives in `make bench`).
from hypothesis import settings

settings.register_profile("project", deadline=None)
settings.load_profile("project")
import mp_compat  # noqa: E402,F401 - MicroPython's asyncio/time extras on CPython (shim/mp_compat.py)


@pytest.fixture(scope="module")
def mpy(tmp_path_factory):
    """firmware/, drivers/ and the unix board as .mpy, as frozen on a board
    (topup_ctl.build_mpy), once per test module."""
    from topup_ctl import build_mpy
    return build_mpy(str(tmp_path_factory.mktemp("mpy")))


@pytest.fixture()
def broker():
    """Debian's mosquitto on a free loopback port (tools/headend_rig.py)."""
    from headend_rig import Mosquitto
    with Mosquitto() as b:
        yield b
