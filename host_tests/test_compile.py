"""Every firmware and driver module compiles with mpy-cross for the unix
board (x64) and for a Cortex-M0+ board (armv6m), as the board build does when
it freezes them (viper and native code need the target architecture)."""
import glob
import os
import subprocess

import pytest

from mp_runner import MPY_CROSS, ROOT

MODULES = sorted(
    glob.glob(os.path.join(ROOT, "firmware", "*.py"))
    + glob.glob(os.path.join(ROOT, "drivers", "*.py"))
    + glob.glob(os.path.join(ROOT, "boards", "*", "*.py"))
)


@pytest.mark.parametrize("arch", ["x64", "armv6m"])
@pytest.mark.parametrize("path", MODULES, ids=lambda p: os.path.relpath(p, ROOT))
def test_mpy_cross_compiles(path, arch, tmp_path):
    out = tmp_path / "m.mpy"
    proc = subprocess.run([MPY_CROSS, "-march=" + arch, "-o", str(out), path],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
