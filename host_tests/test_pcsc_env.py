"""tools/pcsc_env.py as a command: one line and exit 2 when a pcscd (or
anything) is already there, and its own pcscd stopped when it is sent
SIGTERM. Shares the PC/SC tests' lock: one pcscd per machine."""
import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.xdist_group("pcscd")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK = "/tmp/card-pcsc-tests.lock"  # the one test_card_pcsc.py takes
PORT = 0x7C7D  # below the ephemeral range, not the PC/SC tests' port


@pytest.fixture
def pcsc_lock():
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _tool(port=PORT):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "pcsc_env.py"),
                             "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _one_line_exit_2(p):
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2, (out, err)
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def _gone(pid, timeout=10):
    """The process is gone (not even a zombie)."""
    deadline = time.monotonic() + timeout
    while os.path.exists("/proc/%d" % pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_port_held_by_something_else_is_one_line(pcsc_lock):
    with socket.create_server(("127.0.0.1", PORT)):  # a fake pcscd holding vpcd's port
        err = _one_line_exit_2(_tool())
    assert err.startswith("pcsc_env: ")
    # Without the PC/SC packages it names what is missing; with them, what holds the port.
    assert "missing:" in err or ("port %d" % PORT in err and "stop it first" in err)


def test_second_instance_refused_and_sigterm_stops_pcscd(pcsc_lock):
    first = _tool()
    try:
        line = first.stdout.readline()
        if not line:
            pytest.fail("pcsc_env did not start: %s (make setup installs debian-packages.txt)"
                        % first.stderr.read().strip())
        pid = int(re.search(r"pcscd \(pid (\d+)\)", line).group(1))
        assert os.path.exists("/proc/%d" % pid)
        err = _one_line_exit_2(_tool())
        assert "another pcscd already runs" in err and "stop it first" in err
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 143
        assert _gone(pid), "pcscd %d still runs after pcsc_env got SIGTERM" % pid
    finally:
        if first.poll() is None:  # asked, not killed: its pcscd must not outlive the test
            first.terminate()
            try:
                first.wait(30)
            except subprocess.TimeoutExpired:
                first.kill()
                first.wait()
        first.stdout.close()
        first.stderr.close()
