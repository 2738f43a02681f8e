"""Stopping a helper process the same way everywhere: ask (SIGTERM), give it
a few seconds to close its sockets and files, then insist (SIGKILL)."""
import subprocess


def stop(proc, grace_s=5):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
