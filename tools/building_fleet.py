"""The utility's side of `make run`: a broker and a head-end beside the
simulated building, so a newcomer sees a top-up reach the operator's page.

    fleet = Fleet(state_dir)          mosquitto on a loopback port, the
                                      head-end (SQLite in state_dir) taking
                                      its reports, the page on a port
    fleet.mqtt                        "tcp:127.0.0.1:PORT" for terminal.py --mqtt
    fleet.page                        "http://127.0.0.1:PORT/"
    fleet.sold(card, customer, meter, count, amount)
                                      what the sales office did before the
                                      card reached the slot: one ledger line,
                                      imported at once
    fleet.stop()

The development reporting key (make_keystore.py --dev, headend --dev) signs
and checks the reports: a demo, never a terminal in service.
"""
import os
import subprocess
import sys

import hostpath  # noqa: F401

import headend_rig  # noqa: E402
import procs  # noqa: E402
from headend import ledger  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FleetError(Exception):
    pass


def available():
    """Why the fleet cannot start here, or None."""
    if not os.path.exists(headend_rig.MOSQUITTO):
        return "no mosquitto (Debian package mosquitto): the terminal runs without reporting"
    return None


class Fleet:
    def __init__(self, state, log_path):
        self.state = state
        self.db = os.path.join(state, "headend.db")
        self.ledger = os.path.join(state, "ledger.jsonl")
        self.broker = headend_rig.Mosquitto()
        self.mqtt = self.broker.url
        port = headend_rig.free_port()
        self.page = "http://127.0.0.1:%d/" % port
        self._log = open(log_path, "a")
        self.headend = subprocess.Popen(
            [sys.executable, "-m", "headend", "serve", "--mqtt", self.mqtt, "--db", self.db,
             "--dev", "--http", str(port)],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            headend_rig._wait_port(port, self.headend, "the head-end")
        except RuntimeError as e:
            self.stop()
            raise FleetError("%s (its log: %s)" % (e, log_path))

    def sold(self, card, customer, meter, count, amount):
        """The office's sale of this card, in the head-end's ledger."""
        with open(self.ledger, "a") as f:
            f.write(ledger.sale_line(card, count, customer, meter, amount) + "\n")
        subprocess.run([sys.executable, "-m", "headend", "import-ledger", self.ledger,
                        "--db", self.db], cwd=ROOT, stdout=subprocess.DEVNULL,
                       stderr=self._log, check=False)

    def stop(self):
        procs.stop(self.headend)
        self.broker.stop()
        self._log.close()
