"""tools/work_order.py: the key package a terminal accepts (sealed under
its transport key, MAC-checked by the firmware's key store) and a work
order with no key in it; keys never on the command line."""
import json
import os
import subprocess
import sys

import keystore
from mp_runner import ROOT

TOOL = os.path.join(ROOT, "tools", "work_order.py")
KM = "a5a5a5a55a5a5a5a0f0f0f0ff0f0f0f0"
KT = "00112233445566778899aabbccddeeff"
MK = bytes.fromhex("0123456789abcdeffedcba9876543210")


def run(*args, stdin=None):
    return subprocess.run([sys.executable, TOOL] + list(args), input=stdin,
                          capture_output=True, text=True)


def keys_file(tmp_path, mode=0o600, d=None, name="keys.json"):
    p = tmp_path / name
    p.write_text(json.dumps(d or {"km": KM, "transport": KT}))
    os.chmod(p, mode)
    return p


def test_package_is_what_the_terminal_accepts(tmp_path):
    r = run("package", "--meter", "000000000777", "--keys", str(keys_file(tmp_path)),
            "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    sealed = bytes.fromhex((tmp_path / "000000000777.key").read_text().strip())
    ks = keystore.KeyStore("000000000099", MK, MK[::-1], bytes.fromhex(KT))
    assert ks.open_sealed(sealed) == ("000000000777", bytes.fromhex(KM))
    other = keystore.KeyStore("000000000099", MK, MK[::-1], bytes(range(16)))
    try:
        other.open_sealed(sealed)
        raise AssertionError("another terminal's transport key opened it")
    except keystore.KeyStoreError:
        pass
    assert KM not in r.stdout and KT not in r.stdout


def test_keys_from_stdin(tmp_path):
    r = run("package", "--meter", "000000000777", "--keys", "-", "--out", str(tmp_path),
            stdin=json.dumps({"km": KM, "transport": KT}))
    assert r.returncode == 0, r.stderr


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    cases = [
        (["--keys", str(keys_file(tmp_path, 0o644, name="a"))], "readable by others"),
        (["--keys", str(keys_file(tmp_path, 0o600, {"km": "00"}, "b"))], '"km" must be 32 hex'),
        (["--keys", str(tmp_path / "none.json")], "cannot read"),
        (["--keys", str(keys_file(tmp_path, 0o600, {"km": "00" * 16, "transport": KT}, "c"))],
         "blank"),
    ]
    for extra, said in cases:
        r = run("package", "--meter", "000000000777", "--out", str(tmp_path), *extra)
        assert r.returncode == 2 and said in r.stderr, (extra, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = run("package", "--meter", "12345", "--keys", "-", "--out", str(tmp_path))
    assert r.returncode == 2 and "12 digits" in r.stderr


def test_work_order_names_the_package_by_hash_and_holds_no_key(tmp_path):
    run("package", "--meter", "000000000777", "--keys", str(keys_file(tmp_path)),
        "--out", str(tmp_path))
    pkg = tmp_path / "000000000777.key"
    r = run("print", "--terminal", "000000000099", "--customer", "112233445566",
            "--old-meter", "000000000001", "--new-meter", "000000000777", "--key", "package",
            "--package", str(pkg))
    assert r.returncode == 0, r.stderr
    import hashlib
    assert hashlib.sha256(pkg.read_bytes()).hexdigest() in r.stdout
    for secret in (KM, KT, pkg.read_text().strip()):
        assert secret not in r.stdout
    for field in ("000000000099", "112233445566", "000000000001", "000000000777.key"):
        assert field in r.stdout
    r = run("print", "--terminal", "000000000099", "--customer", "112233445566",
            "--old-meter", "000000000001", "--new-meter", "000000000778", "--key", "package",
            "--package", str(pkg))
    assert r.returncode == 2 and "000000000778.key" in r.stderr
