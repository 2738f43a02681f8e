"""The card simulator's PC/SC face: our card model inside virtualsmartcard's
VirtualICC (the vsmartcard project's virtual card, Debian's
python3-virtualsmartcard), which speaks vpcd's protocol to the vpcd reader
driver that pcscd loads. The protocol loop is theirs; the card is ours.

Debian installs the package under /usr/lib/python3/site-packages/
virtualsmartcard, off every interpreter's path, and it imports PyCryptodome's
`Crypto` package (pinned in requirements.txt).
"""
import os
import socket
import sys
import threading
import time

VICC_PATH = "/usr/lib/python3/site-packages/virtualsmartcard"


def _virtualsmartcard():
    if os.path.isdir(VICC_PATH) and VICC_PATH not in sys.path:
        sys.path.append(VICC_PATH)
    try:
        from virtualsmartcard.VirtualSmartcard import SmartcardOS, VirtualICC
    except ImportError as e:
        raise ImportError("virtualsmartcard unavailable (%s): install Debian's "
                          "python3-virtualsmartcard and PyPI's pycryptodome "
                          "(`make setup` does both)" % e)
    return SmartcardOS, VirtualICC


def _connect(host, port, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection((host, port), timeout=2)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def serve_vpcd(card, host="127.0.0.1", port=35963, stop=None, connect_timeout=10.0,
               ready=None):
    """The card in pcscd's vpcd reader until `stop` (threading.Event) is set
    or vpcd goes away; `ready` (an Event) is set once pcscd has read the ATR.
    Returns the number of APDUs served."""
    SmartcardOS, VirtualICC = _virtualsmartcard()

    class CardOS(SmartcardOS):
        apdus = 0

        def getATR(self):
            if ready is not None:
                ready.set()
            return card.atr

        def powerUp(self):
            card.power_up()

        def reset(self):
            card.power_up()

        def powerDown(self):
            pass

        def execute(self, msg):
            self.apdus += 1
            return card.apdu(msg)

    class Vicc(VirtualICC):
        # VirtualICC.__init__ builds one of its demo cards and exits the
        # process when it cannot connect; we only want its vpcd loop.
        def __init__(self, sock):
            self.os = CardOS()
            self.type = "prepaid user card"
            self.host, self.port = host, port
            self.sock, self.server_sock = sock, None

    sock = _connect(host, port, connect_timeout)
    sock.settimeout(None)
    vicc = Vicc(sock)
    if stop is not None:
        def pull():
            stop.wait()
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the loop's recv
            except OSError:
                pass
        threading.Thread(target=pull, daemon=True).start()
    try:
        vicc.run()  # returns only by sys.exit() when vpcd goes away
    except (SystemExit, OSError, UnboundLocalError):
        pass  # UnboundLocalError: its recv loop on a reset connection
    finally:
        sock.close()
    return vicc.os.apdus
