"""Every firmware, driver and board module compiles with mpy-cross for the
unix board (x64), for a Cortex-M0+ board (armv6m, the Pico) and for the
production board's ESP32-S3 (xtensawin), as the board build does when it
freezes them (viper and native code need the target architecture: without
-march sm4_viper.py does not compile at all).
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
            "boards/unix/terminal.py", "boards/rp2_pico/board.py",
            "boards/esp32s3/board.py", "boards/esp32s3/main.py"} <= names


ARCHS = {"x64": 2, "armv6m": 4, "xtensawin": 10}  # -march -> arch in the .mpy header


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("path", MODULES, ids=lambda p: os.path.relpath(p, ROOT))
def test_mpy_cross_compiles(path, arch, tmp_path):
    out = tmp_path / "m.mpy"
    proc = subprocess.run([MPY_CROSS, "-march=" + arch, "-o", str(out), path],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_the_viper_path_is_native_code_for_each_board(arch, tmp_path):
    """sm4_viper.py needs -march, and its .mpy holds machine code for that
    architecture (header byte 2 carries the arch of native code)."""
    src = os.path.join(ROOT, "firmware", "sm4_viper.py")
    bare = subprocess.run([MPY_CROSS, "-o", str(tmp_path / "n.mpy"), src],
                          capture_output=True, text=True)
    assert bare.returncode != 0 and "invalid arch" in bare.stderr
    out = tmp_path / "v.mpy"
    subprocess.run([MPY_CROSS, "-march=" + arch, "-o", str(out), src], check=True)
    head = out.read_bytes()[:4]
    assert head[0:1] == b"M" and head[2] >> 2 == ARCHS[arch], head
