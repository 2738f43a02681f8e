#!/usr/bin/env python3
"""Print a terminal's journal and meter records, newest top-up first, with
the entries still open (unsettled, or awaiting the card's write-back)
marked: from the unix board's flash image, or from a board over mpremote.

  python tools/journal_tool.py image STATE_DIR/flash.img [--block-size 4096] [--blocks 256]
  python tools/journal_tool.py board DEVICE [--root /flash] [--timeout 60]

(Not tools/journal.py: that name would shadow firmware/journal.py, which
this reads the slots with; host_tests/test_lint.py forbids one module name
in two path folders.)

image: the littlefs image is mounted with littlefs-python, an
implementation nobody here wrote. board: `mpremote connect DEVICE resume
exec` runs a small snippet on the board that prints each file's bytes in
hex (resume: the unix port has a raw REPL but no soft reset); everything is
decoded here, on the PC, by the firmware's own code: journal slots
(/jrn/NNNN) by journal.Entry.unpack, meter records (the 96-byte slots of
/rec/NNN pages) by records' slot decoder.

A missing or wrong-sized image, one that holds no littlefs, a device that
does not answer: one line on stderr, exit 2.
"""
import argparse
import os
import subprocess
import sys

import hostpath

import common
import journal  # firmware/journal.py (hostpath puts firmware/ first)
import records

ROOT = hostpath.ROOT
MPREMOTE = os.path.join(ROOT, ".venv", "bin", "mpremote")
_READ_MAX = 512  # bytes of a file the board prints (a journal slot ~100, a record page 480)


class Bad(Exception):
    """An input this cannot read: one line, exit 2."""


# -- reading the files: path under the root ("/jrn/0000") -> bytes ------------

def files_from_image(path, block_size, blocks):
    import littlefs
    try:
        with open(path, "rb") as f:
            image = f.read()
    except OSError as e:
        raise Bad("%s: %s" % (path, e.strerror or e)) from None
    if len(image) != block_size * blocks:
        raise Bad("%s is %d bytes, not %d blocks x %d (--blocks, --block-size)"
                  % (path, len(image), blocks, block_size))
    fs = littlefs.LittleFS(block_size=block_size, block_count=blocks, mount=False)
    fs.context.buffer = bytearray(image)
    try:
        fs.mount()
    except littlefs.LittleFSError as e:
        raise Bad("%s holds no littlefs of %d x %d-byte blocks (%s)"
                  % (path, blocks, block_size, e)) from None

    def names(d):
        try:
            return sorted(fs.listdir(d))
        except littlefs.LittleFSError:
            return []

    def read(p):
        with fs.open(p, "rb") as f:
            return f.read()

    out = {}
    try:
        for n in names("/jrn"):
            out["/jrn/" + n] = read("/jrn/" + n)
        for n in names("/rec"):  # record pages, 5 slots each
            out["/rec/" + n] = read("/rec/" + n)
    except littlefs.LittleFSError as e:
        raise Bad("%s: littlefs cannot read it (%s)" % (path, e)) from None
    return out


# Runs on the board: no project module, only os and binascii.
_SNIPPET = """import os,binascii
r=%r
h=binascii.hexlify
def l(p):
 try:return sorted(os.listdir(r+p))
 except OSError:return []
try:
 os.stat(r or '/')
 for n in l('/jrn'):
  try:
   with open(r+'/jrn/'+n,'rb') as f:print('J','/jrn/'+n,h(f.read(%d)).decode())
  except OSError:print('X','/jrn/'+n)
 for n in l('/rec'):
  with open(r+'/rec/'+n,'rb') as f:print('R','/rec/'+n,h(f.read(%d)).decode())
 print('END')
except OSError:print('NOROOT')
"""


def snippet(root):
    return _SNIPPET % (root, _READ_MAX, _READ_MAX)


def files_from_board(device, root, timeout):
    if not os.path.exists(device):
        raise Bad("%s: no such device" % device)
    try:
        p = subprocess.run([MPREMOTE, "connect", device, "resume", "exec", snippet(root)],
                           check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Bad("%s: no complete answer in %d s" % (device, timeout)) from None
    return parse_board(device, root, p.returncode, p.stdout, p.stderr)


def parse_board(device, root, rc, stdout, stderr):
    err = (stderr or "").strip()
    if rc != 0 or "Traceback" in stdout:
        if "could not enter raw repl" in err:
            raise Bad("%s does not answer (no MicroPython raw REPL there)" % device)
        if "failed to access" in err:
            raise Bad("%s: cannot open it (in use by another program?)" % device)
        last = (err or stdout.strip() or "exit %d" % rc).splitlines()[-1]
        raise Bad("%s: the board did not run the snippet: %s" % (device, last))
    out = {}
    lines = stdout.splitlines()
    if "NOROOT" in lines:
        raise Bad("%s: no %s on the board (--root: where littlefs is mounted)" % (device, root))
    if "END" not in lines:
        raise Bad("%s: the answer stopped short" % device)
    for line in lines:
        parts = line.split()
        if parts and parts[0] in ("J", "R") and len(parts) in (2, 3):
            try:  # an empty file prints no hex
                out[parts[1]] = bytes.fromhex(parts[2]) if len(parts) == 3 else b""
            except ValueError:
                raise Bad("%s: garbled line %r" % (device, line[:60])) from None
        elif len(parts) == 2 and parts[0] == "X":
            out[parts[1]] = None  # listed but unreadable
    return out


# -- decoding -----------------------------------------------------------------

def open_kind(e):
    """Why the terminal keeps this entry open (journal.Journal._scan's
    rule), or None."""
    if not e.settled:
        return "unsettled"
    if not e.written_back and e.result in (journal.CREDITED, journal.ALREADY):
        return "write-back"
    return None


def decode(files):
    """-> (entries newest first, records (records.Record), problems (path, why))."""
    entries, recs, problems = [], [], []
    for path in sorted(files):
        b = files[path]
        parts = path.strip("/").split("/")
        if parts[0] == "jrn":
            e = None
            if len(parts) == 2 and parts[1].isdigit() and b is not None:
                try:
                    e = journal.Entry.unpack(b)
                except ValueError:  # CRC good, a field not BCD: foreign
                    e = None
            if e is None:
                problems.append((path, "not a journal slot (torn or foreign): read as empty"))
                continue
            e.slot = int(parts[1])
            entries.append(e)
        elif parts[0] == "rec":
            b = b or b""
            for k in range(len(b) // records.SLOT):
                slot = b[k * records.SLOT:(k + 1) * records.SLOT]
                if not slot[0]:
                    continue  # never used
                r = records.unpack(slot)
                if r is None:
                    problems.append(("%s/%d" % (path, k),
                                     "record slot torn or foreign: read as empty"))
                else:
                    recs.append(r)
    entries.sort(key=lambda e: -e.seq)
    return entries, recs, problems


def _written(e, kind):
    """The write-back column: when, or why not."""
    if e.written_back:
        return "%s%s" % (_when(e.steps[2][1]), " (card moved on)" if e.unwritten else "")
    return "open: " + kind if kind else "-"


def _when(t):
    """'YYMMDDhhmmss' -> '2026-11-29 18:38:12'."""
    if t == "000000000000":
        return "-"
    return "20%s-%s-%s %s:%s:%s" % (t[0:2], t[2:4], t[4:6], t[6:8], t[8:10], t[10:12])


def _yuan(n):
    try:
        return common.money(n)
    except TypeError:
        return "?"


def table(files, source):
    entries, recs, problems = decode(files)
    lines = []
    n_open = sum(1 for e in entries if open_kind(e))
    lines.append("journal of %s: %d entr%s, %d open (* unsettled: settled against the meter "
                 "before its next sale; + awaiting the card's write-back)"
                 % (source, len(entries), "y" if len(entries) == 1 else "ies", n_open))
    lines.append("    seq  slot  time (intent)        meter         customer      count"
                 "  amount/yuan  result        balance before -> after  done")
    for e in entries:
        kind = open_kind(e)
        mark = {"unsettled": "*", "write-back": "+"}.get(kind, " ")
        balances = "%s -> %s" % (_yuan(e.before_balance), _yuan(e.after_balance)) \
            if e.result in (journal.CREDITED, journal.ALREADY, journal.NOT_CREDITED) \
            else "%s -> ?" % _yuan(e.before_balance)
        result = journal.RESULT_NAMES[e.result] if e.result < len(journal.RESULT_NAMES) \
            else "result %d" % e.result
        if e.relay_open:
            result += ", relay open"
        lines.append("%s %6d  %04d  %-19s  %s  %s  %5d  %11s  %-12s  %-23s  %s" % (
            mark, e.seq, e.slot, _when(e.steps[0][1]), e.meter, e.customer, e.count,
            _yuan(e.amount), result, balances, _written(e, kind)))
    last = {}
    for e in entries:
        if e.result == journal.CREDITED and e.count > last.get(e.meter, -1):
            last[e.meter] = e.count
    lines.append("")
    lines.append("meter records: %d" % len(recs))
    lines.append("meter         customer      address       state             key       "
                 "card serial       last count  retired")
    for r in sorted(recs, key=lambda r: r.meter):
        lines.append("%s  %s  %s  %-16s  %-8s  %-16s  %10s  %s" % (
            r.meter, r.customer, r.address, r.state, r.key, r.serial or "-",
            last.get(r.meter, "-"), ",".join(r.retired) or "-"))
    if problems:
        lines.append("")
        lines.append("problems: %d" % len(problems))
        for path, why in problems:
            lines.append("  %s: %s" % (path, why))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="source", required=True)
    im = sub.add_parser("image", help="the unix board's flash image (--state DIR/flash.img)")
    im.add_argument("path")
    im.add_argument("--block-size", type=int, default=4096)
    im.add_argument("--blocks", type=int, default=256)
    bd = sub.add_parser("board", help="a board's littlefs over mpremote")
    bd.add_argument("device")
    bd.add_argument("--root", default="/flash", help="where littlefs is mounted (/flash)")
    bd.add_argument("--timeout", type=int, default=60, help="seconds for the whole read")
    a = p.parse_args(argv)
    try:
        if a.source == "image":
            if a.block_size <= 0 or a.blocks <= 0:
                raise Bad("--block-size and --blocks are positive")
            files = files_from_image(a.path, a.block_size, a.blocks)
            source = a.path
        else:
            if not a.root.startswith("/") or any(c in a.root for c in "'\"\\\n"):
                raise Bad("--root is an absolute path such as /flash")
            files = files_from_board(a.device, a.root.rstrip("/"), a.timeout)
            source = "%s:%s" % (a.device, a.root)
    except Bad as e:
        print("journal_tool: %s" % e, file=sys.stderr)
        return 2
    print(table(files, source))
    return 0


if __name__ == "__main__":
    sys.exit(main())
