"""boards/esp32s3/main.py under micropython, with stand-ins for what only
the ESP32 has: esp32.Partition (RAM block devices), machine (reset ends a
boot; UART0, the provisioning port, reads a script), the board, the
screens and the app (it records what it was started with). The real
storage, keystore and provisioning_port modules do the work.

argv: the repository, then a file holding the provisioning session's bytes.
Boots a blank board (out of service, provisioned, reset), boots it again
(the app starts with its keys and meters, the port stays shut), and boots a
board whose data partition holds garbage (out of service, never
formatted). Prints one JSON line."""
import hashlib
import json
import sys

import flash
import vfs

REPO = sys.argv[1]
with open(sys.argv[2], "rb") as f:
    SESSION = f.read()

seen = {"screens": [], "resets": 0, "ports": 0, "runs": [], "halted": 0, "said": []}


class Reset(Exception):
    pass


class Halted(Exception):
    pass


class Port:
    def __init__(self, uid, **kw):
        seen["ports"] += 1
        seen["port"] = [uid, kw["baudrate"], kw["tx"], kw["rx"]]
        self.data = SESSION
        self.at = 0

    def readline(self):
        end = self.data.find(b"\n", self.at) + 1 or len(self.data)
        line = self.data[self.at:end]
        self.at = end
        if not line:
            raise Halted  # a real port waits on: the session is over here
        return line

    def read(self, n):
        b = self.data[self.at:self.at + n]
        self.at += len(b)
        return b

    def write(self, b):
        seen["said"].append(bytes(b).decode().strip())


class Machine:
    UART = Port

    def reset(self):
        seen["resets"] += 1
        raise Reset


class Partition:
    TYPE_DATA = 1
    devices = {}

    @classmethod
    def find(cls, kind, label=None):
        return [cls.devices[label]] if label in cls.devices else []


class Esp32:
    Partition = Partition


class Board:
    PROV_UART, PROV_TX, PROV_RX = 0, 43, 44

    def display(self):
        return None


class Screens:
    def show(self, display, name, **kw):
        seen["screens"].append(name)


class App:
    def run(self, board, config):
        seen["runs"].append({"terminal": config["keystore"].terminal_id.hex(),
                             "meters": config["meters"], "net": config["net"]})


class Time:
    def sleep(self, s):
        seen["halted"] += 1
        raise Halted


def module(path, name):
    """A module from the board's folder (not on MICROPYPATH: its board.py
    would shadow the unix board's), as an object in sys.modules."""
    g = {"__name__": name}
    with open(path) as f:
        exec(f.read(), g)

    class M:
        pass
    m = M()
    for k, v in g.items():
        setattr(m, k, v)
    return m


sys.modules["machine"] = Machine()
sys.modules["esp32"] = Esp32()
sys.modules["board"] = Board()
sys.modules["screens"] = Screens()
sys.modules["app"] = App()
sys.modules["provisioning_port"] = module(REPO + "/boards/esp32s3/provisioning_port.py",
                                          "provisioning_port")
with open(REPO + "/boards/esp32s3/main.py") as f:
    MAIN = compile(f.read(), "main.py", "exec")


def boot():
    """One power-on: main.py from the top; every way out is a reset."""
    real_time = sys.modules.get("time")
    sys.modules["time"] = Time()
    try:
        exec(MAIN, {"__name__": "__main__"})
    except (Reset, Halted):
        pass
    finally:
        sys.modules["time"] = real_time
        for p in ("/data", "/keys"):
            try:
                vfs.umount(p)
            except OSError:
                pass


Partition.devices = {"data": flash.RAMBlockDev(4096, 32), "keys": flash.RAMBlockDev(4096, 16)}
boot()
first = {"screens": seen["screens"][:], "said": seen["said"][:], "resets": seen["resets"],
         "ports": seen["ports"], "runs": len(seen["runs"]), "port": seen.get("port")}
seen["screens"], seen["said"] = [], []
boot()
second = {"screens": seen["screens"][:], "ports": seen["ports"], "runs": seen["runs"],
          "resets": seen["resets"]}

Partition.devices = {}
garbage = flash.RAMBlockDev(4096, 16)
for i in range(len(garbage.data)):
    garbage.data[i] = (i * 7 + 3) & 0xFF  # records someone may still need
before = hashlib.sha256(garbage.data).digest()
Partition.devices = {"data": garbage, "keys": flash.RAMBlockDev(4096, 16)}
seen["screens"] = []
boot()
third = {"screens": seen["screens"], "halted": seen["halted"], "ports": seen["ports"],
         "untouched": hashlib.sha256(garbage.data).digest() == before, "resets": seen["resets"]}
print(json.dumps({"first": first, "second": second, "third": third}))
