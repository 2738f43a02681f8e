#!/usr/bin/env python3
"""Deploy a bundle (tools/build_bundle.py) to a board over mpremote: copy,
verify every file by its SHA-256 computed on the board, reset.

  python tools/flash_board.py DEVICE BUNDLE_DIR [--force] [--downgrade] [--no-reset]

Refused unless told: a bundle built for another architecture than the
board's (sys.implementation._mpy: its .mpy files would not load; --force),
or a version older than the one on the board (its /bundle.json;
--downgrade). The board's bundle.json is removed first and written last,
so a deploy cut short leaves a board that claims no version rather than a
wrong one; files of the old bundle that the new one lacks (a main.py, a
module) are removed.
The reset is machine.reset(); the unix port has none: restart
tools/unix_board.py. Any refusal or failure: one line, exit 2.
"""
import argparse
import base64
import hashlib
import sys

import build_bundle
from board_link import BoardError, Link, board_info

_CHUNK = 2048  # bytes a raw-REPL exec writes (base64 in the command)


def arch_of(mpy):
    n = mpy >> 10
    return build_bundle.ARCHS[n] if n < len(build_bundle.ARCHS) else "arch %d" % n


def check(bundle, info, force=False, downgrade=False):
    """Why this bundle must not go on this board (one line), or None."""
    arch = arch_of(info["mpy"])
    if bundle["arch"] != arch and not force:
        return ("bundle %s is built for %s, the board runs %s: build it for this board "
                "(tools/build_bundle.py), or --force" % (bundle["board"], bundle["arch"], arch))
    major = str(info["mpy"] & 0xFF)
    if bundle.get("mpy", "").split(".")[0] != major and not force:
        return ("bundle is mpy v%s, the board's MicroPython loads v%s: use a matching "
                "mpy-cross or MicroPython, or --force" % (bundle.get("mpy"), major))
    have = info.get("bundle") or {}
    if have.get("version"):
        try:
            older = (build_bundle.parse_version(bundle["version"])
                     < build_bundle.parse_version(have["version"]))
        except build_bundle.Bad:
            older = False  # the board's claim is garbled: replace it
        if older and not downgrade:
            return ("bundle %s is older than the board's %s: --downgrade to install it anyway"
                    % (bundle["version"], have["version"]))
    return None


_HASHES = """import hashlib,binascii,json
def _h(p):
 h=hashlib.sha256()
 b=bytearray(512)
 try:
  with open(p,'rb') as f:
   while True:
    n=f.readinto(b)
    if not n:break
    h.update(b[:n])
 except OSError:return None
 return binascii.hexlify(h.digest()).decode()
print(json.dumps({p:_h(%r+'/'+p) for p in %r}))
"""

# Runs on the board before the copy: the old bundle's claim goes first,
# then its files the new bundle lacks (a main.py too) and stray modules.
_PREPARE = """import os,json
r=%r
keep=%r
old=[]
try:
 with open(r+'/bundle.json') as f:old=list(json.load(f)['files'])
except Exception:pass
try:os.remove(r+'/bundle.json')
except OSError:pass
try:os.mkdir(r+'/lib')
except OSError:pass
for n in os.listdir(r+'/lib'):
 if n.endswith('.mpy'):old.append('lib/'+n)
for p in old:
 if p not in keep:
  try:os.remove(r+'/'+p)
  except OSError:pass
"""


def write_file(link, path, data):
    link.run("import binascii\n_f=open(%r,'wb')\n_w=lambda s:_f.write(binascii.a2b_base64(s))"
             % path)
    for i in range(0, len(data), _CHUNK):
        link.run("_w(%r)" % base64.b64encode(data[i:i + _CHUNK]).decode())
    link.run("_f.close()")


def hashes(link, root, paths):
    return link.run_json(_HASHES % (root, sorted(paths)), timeout=120)


def deploy(device, bundle_dir, force=False, downgrade=False, reset=True, out=print,
           timeout=10):
    bundle = build_bundle.load_bundle(bundle_dir)
    files = build_bundle.bundle_files(bundle_dir)
    with Link(device, timeout) as link:
        info = board_info(link)
        why = check(bundle, info, force, downgrade)
        if why:
            raise BoardError(why)
        root = info["root"]
        have = (info.get("bundle") or {}).get("version") or "none"
        out("board %s (%s, %s): bundle %s -> %s, %d files to %s/"
            % (device, info["platform"], arch_of(info["mpy"]), have, bundle["version"],
               len(files), root))
        link.run(_PREPARE % (root, sorted(bundle["files"])))
        for path in sorted(bundle["files"]):
            write_file(link, root + "/" + path, files[path])
        got = hashes(link, root, bundle["files"])
        bad = sorted(p for p, h in bundle["files"].items() if got.get(p) != h)
        if bad:
            raise BoardError("%d files differ on the board after copying (%s): flash again"
                             % (len(bad), ", ".join(bad[:3])))
        write_file(link, root + "/bundle.json", files["bundle.json"])
        if hashes(link, root, ["bundle.json"]).get("bundle.json") != \
                hashlib.sha256(files["bundle.json"]).hexdigest():
            raise BoardError("bundle.json differs on the board after copying: flash again")
        out("verified: %d files, every SHA-256 computed on the board matches bundle.json"
            % (len(files)))
        if not reset:
            out("not reset (--no-reset)")
        elif info["platform"] == "linux":
            out("unix board: no reset on the unix port: restart tools/unix_board.py "
                "to run the new bundle")
        else:
            link.send("import machine\nmachine.reset()")
            out("reset: the board restarts with %s" % bundle["version"])
    return bundle


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("device", help="the board's serial port (or the unix board's PTY)")
    p.add_argument("bundle", help="a bundle folder (build/bundle-BOARD-VERSION)")
    p.add_argument("--force", action="store_true", help="deploy for another architecture")
    p.add_argument("--downgrade", action="store_true", help="deploy an older version")
    p.add_argument("--no-reset", action="store_true", help="leave the board running")
    p.add_argument("--timeout", type=int, default=10, help="seconds the board may stay silent")
    a = p.parse_args(argv)
    try:
        deploy(a.device, a.bundle, a.force, a.downgrade, not a.no_reset, timeout=a.timeout)
    except (BoardError, build_bundle.Bad) as e:
        print("flash_board: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
