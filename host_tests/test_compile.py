"""Every firmware, driver and board module compiles with mpy-cross for the
unix board (x64) and for a Cortex-M0+ board (armv6m), as the board build does
when it freezes them (viper and native code need the target architecture).
Found by glob, so a new module (or a board's main.py) is compiled without
editing this file; the freeze manifests are build scripts, not modules."""
import glob
import os
import subprocess

import pytest

from mp_runner import MPY_CROSS, ROOT

MODULES = sorted(
    p for p in glob.glob(os.path.join(ROOT, "firmware", "*.py"))
    + glob.glob(os.path.join(ROOT, "drivers", "*.py"))
    + glob.glob(os.path.join(ROOT, "boards", "*", "*.py"))
    if os.path.basename(p) != "manifest.py"
)


def test_the_glob_finds_the_modules():
    names = {os.path.relpath(p, ROOT) for p in MODULES}
    assert {"firmware/version.py", "firmware/dlt645.py", "drivers/rs485.py",
            "boards/unix/terminal.py", "boards/rp2_pico/board.py"} <= names


@pytest.mark.parametrize("arch", ["x64", "armv6m"])
@pytest.mark.parametrize("path", MODULES, ids=lambda p: os.path.relpath(p, ROOT))
def test_mpy_cross_compiles(path, arch, tmp_path):
    out = tmp_path / "m.mpy"
    proc = subprocess.run([MPY_CROSS, "-march=" + arch, "-o", str(out), path],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
