"""Project rules a linter checks: ruff (ruff.toml, after micropython-lib's
configuration) finds nothing, and modules are found one way only: through
tools/hostpath.py, whose folders hold no two modules of one name and nothing
that shadows the standard library."""
import ast
import fnmatch
import glob
import importlib.metadata
import os
import re
import subprocess
import sys

import hostpath
import pytest

ROOT = hostpath.ROOT
RUFF = os.path.join(ROOT, ".venv", "bin", "ruff")
SKIP_DIRS = {".venv", "build", ".git", "__pycache__", ".pytest_cache", ".hypothesis",
             ".ruff_cache"}

# Files allowed to edit sys.path themselves, and how (None: any way).
PATH_EDITORS = {
    "tools/hostpath.py": None,            # the one place
    "boards/unix/terminal.py": None,      # runs under micropython, no hostpath there
    "boards/unix/repl_board.py": None,    # the unix board's "port": mounts, runs from /flash/lib
    "host_tests/mp/*.py": None,           # run under micropython (mp_runner sets MICROPYPATH)
    "tools/card_vicc.py": {"append"},     # Debian's virtualsmartcard, a system package:
                                          # appended, so it shadows nothing
    "host_tests/test_lint.py": {"assignment"},  # tests hostpath.prepend, path restored
}
# Calls on sys.path that only read it.
_READS = {"index", "count", "copy"}
# In a string (code handed to `python -c`): an edit of sys.path.
_IN_STRING = re.compile(r"sys\.path\s*(\.\s*(insert|append|extend|remove|pop|clear)\s*\(|"
                        r"(\[[^\]]*\])?\s*\+?=(?!=))")
# PyPI packages a hostpath folder may shadow, and why that is safe.
SHADOWS_ALLOWED = {
    "dlt645": "a test oracle only; test_dlt645_props loads it explicitly",
}


def python_files():
    for d, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS)
        for f in sorted(files):
            if f.endswith(".py"):
                yield os.path.relpath(os.path.join(d, f), ROOT).replace(os.sep, "/")


def _is_sys_path(node):
    return (isinstance(node, ast.Attribute) and node.attr == "path"
            and isinstance(node.value, ast.Name) and node.value.id == "sys")


def path_edits(source, filename="<string>"):
    """[(line, how)] for every edit of sys.path in source."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and _is_sys_path(node.func.value) and node.func.attr not in _READS:
            found.append((node.lineno, node.func.attr))
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) \
                else [node.target]
            for t in targets:
                if _is_sys_path(t) or (isinstance(t, ast.Subscript) and _is_sys_path(t.value)):
                    found.append((node.lineno, "assignment"))
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" \
                and any(a.name == "path" for a in node.names):
            found.append((node.lineno, "from sys import path"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and _IN_STRING.search(node.value):
            found.append((node.lineno, "in code given as a string"))
    return found


def _allowed(rel, how):
    for pattern, ways in PATH_EDITORS.items():
        if fnmatch.fnmatch(rel, pattern):
            return ways is None or how in ways
    return False


def module_names(folder):
    """Importable names in a folder (manifests and pytest's conftest are never imported)."""
    names = set()
    for p in glob.glob(os.path.join(folder, "*")):
        base = os.path.basename(p)
        if base.endswith(".py") and base not in ("conftest.py", "manifest.py"):
            names.add(base[:-3])
        elif os.path.isfile(os.path.join(p, "__init__.py")):
            names.add(base)
    return names


def test_ruff_finds_nothing():
    if not os.path.exists(RUFF):
        pytest.fail("ruff is missing: .venv/bin/pip install -r requirements.txt (or make setup)")
    proc = subprocess.run([RUFF, "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, "ruff check . found:\n" + proc.stdout + proc.stderr


def test_ruff_is_the_pinned_version():
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as f:
        pins = dict(line.strip().split("==", 1) for line in f if "==" in line)
    assert importlib.metadata.version("ruff") == pins["ruff"]


def test_nothing_but_hostpath_edits_sys_path():
    wrong = []
    for rel in python_files():
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            source = f.read()
        try:
            edits = path_edits(source, rel)
        except SyntaxError as e:
            wrong.append("%s: does not parse (%s)" % (rel, e))
            continue
        wrong += ["%s:%d: sys.path %s" % (rel, line, how)
                  for line, how in edits if not _allowed(rel, how)]
    assert not wrong, ("modules are found through tools/hostpath.py (`import hostpath  "
                       "# noqa: F401`), not by editing sys.path:\n" + "\n".join(wrong))


def test_the_path_check_sees_every_kind_of_edit():
    sp = "sys." + "path"  # not spelled out, so this file does not trip the check itself
    for code in (sp + ".insert(0, 'x')", sp + ".append('x')", sp + "[:] = []",
                 sp + " += ['x']", "from sys import path",
                 "subprocess.run(['python', '-c', 'import sys; %s.insert(0, 1)'])" % sp):
        assert path_edits("import sys\n" + code), code
    for code in ("print(%s)" % sp, "x = 'a' in " + sp, sp + ".index('a')",
                 "'''Docs may name %s.'''" % sp):
        assert not path_edits("import sys\n" + code), code


def test_hostpath_puts_its_folders_first_once_in_order():
    saved = sys.path[:]
    try:
        sys.path[:] = ["/elsewhere", hostpath.DIRS[2], "/else/too", hostpath.DIRS[0]]
        hostpath.prepend()
        assert sys.path == list(hostpath.DIRS) + ["/elsewhere", "/else/too"]
        hostpath.prepend()
        assert sys.path == list(hostpath.DIRS) + ["/elsewhere", "/else/too"]
    finally:
        sys.path[:] = saved


def test_hostpath_folders_exist():
    for d in hostpath.DIRS + hostpath.MP_DIRS:
        assert os.path.isdir(d), d
    assert hostpath.micropypath().split(os.pathsep)[0] == ".frozen"


@pytest.mark.parametrize("dirs", [hostpath.DIRS, hostpath.MP_DIRS], ids=["host", "micropython"])
def test_no_module_name_in_two_path_folders(dirs):
    seen, clashes = {}, []
    for d in dirs:
        for name in module_names(d):
            if name in seen:
                clashes.append("%s: %s and %s" % (name, os.path.relpath(seen[name], ROOT),
                                                  os.path.relpath(d, ROOT)))
            seen[name] = d
    assert not clashes, "the first on the path silently wins:\n" + "\n".join(clashes)


def test_no_project_module_shadows_the_standard_library_or_an_installed_package():
    installed = importlib.metadata.packages_distributions()
    stdlib, shadows = [], []
    for d in hostpath.DIRS:
        for name in sorted(module_names(d)):
            where = "%s/%s" % (os.path.relpath(d, ROOT), name)
            if name in sys.stdlib_module_names:
                stdlib.append(where)
            elif name in installed and name not in SHADOWS_ALLOWED:
                shadows.append("%s (PyPI %s)" % (where, ", ".join(installed[name])))
    assert not stdlib, "shadows the standard library for every tool and test: %s" % stdlib
    assert not shadows, "shadows an installed package: %s" % shadows
