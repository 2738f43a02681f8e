"""Every firmware and driver module compiles with mpy-cross (the board build
does the same when it freezes them)."""
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


@pytest.mark.parametrize("path", MODULES, ids=lambda p: os.path.relpath(p, ROOT))
def test_mpy_cross_compiles(path, tmp_path):
    out = tmp_path / "m.mpy"
    proc = subprocess.run([MPY_CROSS, "-o", str(out), path], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
