"""Helper processes, the same way everywhere: a loopback port for one to
listen on (free_port), and stopping one: ask (SIGTERM), give it a few
seconds to close its sockets and files, then insist (SIGKILL)."""
import random
import socket
import subprocess


def free_port():
    """A port for a listener started later (the terminal's slot, a broker).
    Picked below the kernel's ephemeral range (32768..): no client socket of
    a parallel test can be handed it between this check and the listener's
    bind."""
    pick = random.SystemRandom()
    while True:
        port = pick.randint(20000, 30000)  # (the PC/SC tests own 31867)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()


def stop(proc, grace_s=5):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
