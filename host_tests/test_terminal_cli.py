"""The unix board's command line as a newcomer meets it: every bad value,
file, device or port gets one line saying what is wrong and what to do,
exit status 2, never a traceback and never the whole usage text."""
import json
import os
import socket
import subprocess

import pytest

from mp_runner import MICROPYTHON, MP_PATH, ROOT

TERMINAL = os.path.join(ROOT, "boards", "unix", "terminal.py")


def run(*args, timeout=30):
    p = subprocess.run([MICROPYTHON, "-X", "heapsize=256k", TERMINAL] + list(args),
                       capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, MICROPYPATH=MP_PATH))
    return p.returncode, p.stdout + p.stderr


@pytest.fixture()
def meters(tmp_path):
    p = tmp_path / "meters.json"
    p.write_text(json.dumps([{"address": "000000000001", "customer": "100000000001"}]))
    return str(p)


def one_line_error(rc, out, *words):
    assert rc == 2, out
    assert "Traceback" not in out and "usage:" not in out, out
    lines = out.strip().splitlines()
    # one line says what is wrong (after any start-up notes), and it is the last
    errors = [l for l in lines if l.startswith("terminal: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], out
    for w in words:
        assert w in errors[0], (w, out)


def test_help_is_not_an_error():
    rc, out = run("--help")
    assert rc == 0 and "usage:" in out and "--state DIR" in out and "--keys FILE" in out


@pytest.mark.parametrize("args,words", [
    (["--bus", "tcp:127.0.0.1:notaport", "--meters", "m"], ["--bus", "1..65535"]),
    (["--bus", "tcp:127.0.0.1:0", "--meters", "m"], ["--bus", "1..65535"]),
    (["--baud", "0", "--bus", "tcp:127.0.0.1:1", "--meters", "m"], ["--baud 0", "2400"]),
    (["--baud", "fast", "--bus", "tcp:127.0.0.1:1", "--meters", "m"], ["--baud", "whole"]),
    (["--interval", "0", "--bus", "tcp:127.0.0.1:1", "--meters", "m"], ["--interval"]),
    (["--meters"], ["--meters needs a value"]),
    (["--bus", "tcp:127.0.0.1:1"], ["--meters"]),
    (["--card-slot", "tcp:127.0.0.1:7"], ["--keystore, --keys or a provisioned --state"]),
    (["--card-slot", "tcp:127.0.0.1:7", "--keys", "k"], ["--state DIR"]),
    (["--frobnicate"], ["unknown option --frobnicate"]),
    (["--display", "tv", "--bus", "tcp:127.0.0.1:1", "--meters", "m"], ["console or none"]),
    (["--keypad", "usb", "--bus", "tcp:127.0.0.1:1", "--meters", "m"], ["--keypad is stdin"]),
    (["--inbox"], ["--inbox needs a value"]),
])
def test_bad_command_lines(args, words):
    one_line_error(*run(*args), *words)


@pytest.mark.parametrize("content,words", [
    ("", ["not valid JSON"]),
    ("{not json", ["not valid JSON"]),
    ("[]", ["at least one"]),
    ('{"address": "000000000001"}', ["JSON list"]),
    ('[{"address": "12AB"}]', ["meter 1", "address", "12 digits"]),
    ('[{"address": "000000000001", "customer": "1"}]', ["customer", "12 digits"]),
    ('[{"address": "000000000001", "state": "broken"}]', ["state", "awaiting_opening"]),
    ('[{"address": "000000000001"}, {"address": "000000000001"}]', ["twice"]),
    ('["000000000001"]', ["an object"]),
])
def test_bad_meters_files(tmp_path, content, words):
    p = tmp_path / "m.json"
    p.write_text(content)
    one_line_error(*run("--bus", "tcp:127.0.0.1:1", "--meters", str(p), "--once"), *words)


def test_missing_meters_file(tmp_path):
    one_line_error(*run("--bus", "tcp:127.0.0.1:1", "--meters", str(tmp_path / "nope.json")),
                   "nope.json", "not found", "--meters")


def test_bus_errors_name_the_bus(tmp_path, meters):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    one_line_error(*run("--bus", "tcp:127.0.0.1:%d" % port, "--meters", meters, "--once"),
                   "nothing listens", "--bus")
    one_line_error(*run("--bus", "tcp:no-such-host.invalid:4001", "--meters", meters,
                        "--once"), "host not found", "--bus")
    one_line_error(*run("--bus", str(tmp_path / "ttyNONE"), "--meters", meters, "--once"),
                   "no such device", "ttyNONE")
    one_line_error(*run("--bus", meters, "--meters", meters, "--once"),
                   "not a serial device", "--bus")


def test_card_slot_port_in_use(tmp_path, meters):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"terminal_id": "000000000099",
                                "mk_m": "0123456789abcdeffedcba9876543210",
                                "mk_c": "fedcba98765432100123456789abcdef"}))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        one_line_error(*run("--card-slot", "tcp:127.0.0.1:%d" % port, "--keys", str(keys),
                            "--state", str(tmp_path / "state"),
                            "--display", "none"), "port is in use", str(port))
    finally:
        busy.close()


@pytest.mark.parametrize("content,words", [
    (None, ["not found", "--keys"]),
    ("[]", ["terminal_id"]),
    ('{"terminal_id": "000000000099", "mk_m": "00", "mk_c": "11"}', ["mk_m"]),
    (('{"terminal_id": "99", "mk_m": "0123456789abcdeffedcba9876543210",'
      ' "mk_c": "fedcba98765432100123456789abcdef"}'), ["terminal id"]),
])
def test_bad_dev_key_files(tmp_path, content, words):
    p = tmp_path / "keys.json"
    if content is not None:
        p.write_text(content)
    one_line_error(*run("--state", str(tmp_path), "--card-slot", "tcp:127.0.0.1:7",
                        "--keys", str(p)), *words)


def test_key_store_error_without_usage_noise(tmp_path):
    p = tmp_path / "ks.bin"
    p.write_bytes(b"not a key store")
    one_line_error(*run("--state", str(tmp_path), "--card-slot", "tcp:127.0.0.1:7",
                        "--keystore", str(p)),
                   "key store", "re-provision")


def test_flash_image_of_another_size(tmp_path, meters):
    state = tmp_path / "state"
    state.mkdir()
    (state / "flash.img").write_bytes(b"\xff" * 4096)
    one_line_error(*run("--bus", "tcp:127.0.0.1:1", "--meters", meters, "--state", str(state),
                        "--display", "none"), "--state", "flash image")


_REPORT = ["--bus", "tcp:127.0.0.1:1", "--meters", "m", "--state", "s"]


@pytest.mark.parametrize("args,words", [
    (["--mqtt", "127.0.0.1:1883"] + _REPORT, ["--mqtt", "tcp:HOST:PORT"]),
    (["--mqtt", "tcp::1883"] + _REPORT, ["--mqtt", "tcp:HOST:PORT"]),
    (["--mqtt", "tcp:broker:99999"] + _REPORT, ["--mqtt", "1..65535"]),
    (["--mqtt", "tcp:broker:1883", "--bus", "tcp:127.0.0.1:1", "--meters", "m"],
     ["--mqtt needs --state"]),
    (["--mqtt-credentials", "c.json"] + _REPORT, ["--mqtt-credentials and --mqtt-ca need --mqtt"]),
    (["--low-balance", "-5"] + _REPORT, ["--low-balance", "whole"]),
])
def test_bad_reporting_options(args, words):
    one_line_error(*run(*args), *words)


@pytest.mark.parametrize("content,words", [
    (None, ["not found", "--mqtt-credentials"]),
    ("{user", ["not valid JSON"]),
    ('{"username": 5}', ["username"]),
    ('["u", "p"]', ["username"]),
])
def test_bad_credentials_files(tmp_path, meters, content, words):
    p = tmp_path / "creds.json"
    if content is not None:
        p.write_text(content)
    one_line_error(*run("--bus", "tcp:127.0.0.1:1", "--meters", meters, "--state",
                        str(tmp_path / "s"), "--mqtt", "tcp:127.0.0.1:1883",
                        "--mqtt-credentials", str(p), "--display", "none"), *words)


def test_mqtt_ca_needs_tls_and_a_readable_file(tmp_path, meters):
    one_line_error(*run("--mqtt-ca", "ca.pem", "--mqtt", "tcp:broker:8883", *_REPORT),
                   "--mqtt-ca needs --mqtt tls:")
    one_line_error(*run("--bus", "tcp:127.0.0.1:1", "--meters", meters, "--state",
                        str(tmp_path / "s"), "--mqtt", "tls:127.0.0.1:8883", "--mqtt-ca",
                        str(tmp_path / "nope.pem"), "--display", "none"),
                   "nope.pem", "--mqtt-ca")
