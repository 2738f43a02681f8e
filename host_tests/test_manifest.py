"""The freeze manifests: every board freezes every firmware and driver module
and its own, under names that do not collide, with the version the firmware
shows.

The manifests are run here the way MicroPython's tools/manifestfile.py runs
them (in freeze mode): each with its own folder as the current directory,
`include()` of a folder meaning its manifest.py, `$(VAR)` paths substituted,
and at most one metadata() per build outside require(). The port's own
manifests ($(PORT_DIR), $(MPY_DIR)) are not in this repository: they are
recorded, not run."""
import glob
import os
import re

import pytest

import version
from mp_runner import ROOT

BOARDS = sorted(os.path.basename(os.path.dirname(p))
                for p in glob.glob(os.path.join(ROOT, "boards", "*", "manifest.py")))


class ManifestError(Exception):
    pass


class Manifest:
    """Runs a manifest tree with stub functions; collects what is frozen."""

    def __init__(self):
        self.frozen = {}       # target name on the board -> source file
        self.external = []     # includes of the port's own manifests
        self.metadata = None
        self.visited = set()

    def _add(self, full_path, target):
        if not os.path.isfile(full_path):
            raise ManifestError("no such file: " + full_path)
        if target in self.frozen and self.frozen[target] != full_path:
            raise ManifestError("%s frozen twice: %s and %s"
                                % (target, self.frozen[target], full_path))
        self.frozen[target] = full_path

    def include(self, manifest_path, **kwargs):
        if not isinstance(manifest_path, str):
            for m in manifest_path:
                self.include(m, **kwargs)
            return
        if manifest_path.startswith("$("):
            self.external.append(manifest_path)
            return
        path = os.path.abspath(manifest_path)
        if os.path.isdir(path):
            path = os.path.join(path, "manifest.py")
        if path in self.visited:
            return
        self.visited.add(path)
        with open(path, encoding="utf-8") as f:
            code = f.read()
        prev = os.getcwd()
        os.chdir(os.path.dirname(path))
        try:
            exec(compile(code, path, "exec"), self._globals())
        finally:
            os.chdir(prev)

    def _globals(self):
        return {"metadata": self._metadata, "include": self.include,
                "require": self._require, "package": self._package,
                "module": self._module, "freeze": self._freeze}

    def _metadata(self, description=None, version=None, license=None, author=None, **kw):
        if self.metadata is not None:
            raise ManifestError("Duplicate call to metadata().")
        self.metadata = dict(kw, description=description, version=version,
                             license=license, author=author)

    def _require(self, name, **kwargs):
        self.external.append("require:" + name)

    def _module(self, module_path, base_path=".", opt=None):
        if not module_path.endswith(".py"):
            raise ManifestError("module() wants a .py file: " + module_path)
        self._add(os.path.abspath(os.path.join(base_path, module_path)),
                  os.path.basename(module_path))

    def _package(self, package_path, files=None, base_path=".", opt=None):
        base = os.path.abspath(base_path)
        if files is None:
            files = [os.path.relpath(os.path.join(d, f), os.path.join(base, package_path))
                     for d, _, fs in os.walk(os.path.join(base, package_path))
                     for f in fs if f.endswith(".py")]
        for f in files:
            self._add(os.path.join(base, package_path, f), os.path.join(package_path, f))

    def _freeze(self, path, script=None, opt=None):
        base = os.path.abspath(path)
        if script is None:
            for d, _, fs in os.walk(base):
                for f in fs:
                    if f.endswith(".py"):
                        full = os.path.join(d, f)
                        self._add(full, os.path.relpath(full, base))
        else:
            for s in [script] if isinstance(script, str) else script:
                self._add(os.path.join(base, s), s)


def run(manifest):
    m = Manifest()
    m.include(manifest)
    return m


def modules(folder):
    return sorted(p for p in glob.glob(os.path.join(ROOT, folder, "*.py"))
                  if os.path.basename(p) != "manifest.py")


def test_every_board_has_a_manifest():
    assert "rp2_pico" in BOARDS and "unix" in BOARDS


@pytest.mark.parametrize("board", BOARDS)
def test_board_freezes_firmware_drivers_and_its_own_modules(board):
    m = run(os.path.join(ROOT, "boards", board, "manifest.py"))
    frozen = set(m.frozen.values())
    for folder in ("firmware", "drivers", os.path.join("boards", board)):
        missing = [os.path.relpath(p, ROOT) for p in modules(folder) if p not in frozen]
        assert not missing, "%s does not freeze %s" % (board, missing)
    assert not [p for p in frozen if os.path.basename(p) == "manifest.py"]
    # Flat modules, as the unix board imports them: target = file name.
    assert all("/" not in t for t in m.frozen), sorted(m.frozen)
    assert m.external, "the port's own manifest (asyncio ...) is not included"


@pytest.mark.parametrize("board", BOARDS)
def test_board_includes_the_shared_manifests(board):
    with open(os.path.join(ROOT, "boards", board, "manifest.py"), encoding="utf-8") as f:
        text = f.read()
    assert 'include("../../firmware")' in text
    assert 'include("../../drivers")' in text
    assert "freeze(" not in text, "freeze the shared folders through their manifests"


@pytest.mark.parametrize("board", BOARDS)
def test_board_metadata_is_the_firmware_version(board):
    m = run(os.path.join(ROOT, "boards", board, "manifest.py"))
    assert m.metadata["version"] == version.VERSION
    assert m.metadata["license"] == "MIT"
    assert m.metadata["description"]


def test_version_is_semantic():
    assert re.fullmatch(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)", version.VERSION)


def test_firmware_manifest_freezes_every_firmware_module_and_nothing_else():
    m = run(os.path.join(ROOT, "firmware", "manifest.py"))
    assert sorted(m.frozen.values()) == modules("firmware")
    assert m.metadata["version"] == version.VERSION


def test_a_new_module_is_frozen_without_editing_the_manifest(tmp_path):
    for name in ("manifest.py", "version.py"):
        (tmp_path / name).write_text(open(os.path.join(ROOT, "firmware", name)).read())
    (tmp_path / "brand_new.py").write_text("X = 1\n")
    m = run(str(tmp_path / "manifest.py"))
    assert sorted(m.frozen) == ["brand_new.py", "version.py"]


def test_stub_refuses_a_second_metadata(tmp_path):
    (tmp_path / "manifest.py").write_text('metadata(version="1")\nmetadata(version="2")\n')
    with pytest.raises(ManifestError):
        run(str(tmp_path / "manifest.py"))


def test_stub_refuses_two_modules_of_one_name(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.py").write_text("")
    (tmp_path / "x.py").write_text("")
    (tmp_path / "manifest.py").write_text('module("x.py")\nmodule("x.py", base_path="a")\n')
    with pytest.raises(ManifestError):
        run(str(tmp_path / "manifest.py"))


# Built into MicroPython's esp32 port (C modules); asyncio is Python, frozen
# by the port's own manifest ($(PORT_DIR)/boards/manifest.py).
ESP32_BUILTINS = {"array", "binascii", "errno", "esp32", "framebuf", "gc", "hashlib", "io",
                  "json", "machine", "micropython", "network", "os", "random", "select",
                  "socket", "ssl", "struct", "sys", "time", "vfs"}


def _imports(path):
    import ast
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def _uses(board):
    """Every project module the board's files import, directly or through
    others, and the modules from elsewhere they import."""
    project = {}
    for folder in (os.path.join("boards", board), "firmware", "drivers"):
        for p in modules(folder):
            project.setdefault(os.path.basename(p)[:-3], p)
    todo = modules(os.path.join("boards", board))
    used, outside = set(), set()
    while todo:
        p = todo.pop()
        if p in used:
            continue
        used.add(p)
        for name in _imports(p):
            if name in project:
                todo.append(project[name])
            else:
                outside.add(name)
    return used, outside


def test_production_board_freezes_every_module_it_imports():
    m = run(os.path.join(ROOT, "boards", "esp32s3", "manifest.py"))
    used, outside = _uses("esp32s3")
    assert {"board.py", "main.py", "provisioning_port.py", "app.py", "rs485.py", "card_reader.py",
            "st7565.py", "keypad.py", "card_detect.py", "keystore.py",
            "sm4_viper.py"} <= {os.path.basename(p) for p in used}
    missing = sorted(os.path.relpath(p, ROOT) for p in used - set(m.frozen.values()))
    assert not missing, missing
    # what is not ours is the port's: built in, or asyncio from its manifest
    assert outside <= ESP32_BUILTINS | {"asyncio"}, sorted(outside - ESP32_BUILTINS)
    assert "$(PORT_DIR)/boards/manifest.py" in m.external
    # main.py is frozen under the name the port runs at boot
    assert m.frozen["main.py"] == os.path.join(ROOT, "boards", "esp32s3", "main.py")


def test_production_board_build_names_this_manifest_and_partition_table():
    with open(os.path.join(ROOT, "boards", "esp32s3", "mpconfigboard.cmake")) as f:
        cmake = f.read()
    assert "set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)" in cmake
    assert "${MICROPY_BOARD_DIR}/partitions.csv" in cmake
    assert "${MICROPY_BOARD_DIR}/sdkconfig.board" in cmake
