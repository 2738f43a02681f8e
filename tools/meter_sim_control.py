"""The simulator's control interface: newline-delimited JSON over TCP, one
reply line per request, {"ok": true, ...} or {"ok": false, "error": "..."}."""
import asyncio
import json
import logging

import meter_sim_codec as codec
from meter_sim_meter import StateError

log = logging.getLogger("meter_sim")
_MAX_LINE = 1 << 20


def _arg(req, name, kind=str, default=KeyError):
    if name not in req:
        if default is KeyError:
            raise StateError("missing %r" % name)
        return default
    value = req[name]
    if value is None and default is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise StateError("%r has the wrong type: %r" % (name, value))
    return value


class Control:
    def __init__(self, bus):
        self.bus = bus

    def handle(self, req):
        """One request dict -> one reply dict (never raises)."""
        try:
            if not isinstance(req, dict):
                raise StateError("a request is a JSON object")
            cmd = _arg(req, "cmd")
            fn = getattr(self, "cmd_" + cmd, None)
            if fn is None:
                raise StateError("unknown cmd %r" % (cmd,))
            out = fn(req)
            out["ok"] = True
            return out
        except (StateError, codec.FrameError, ValueError) as e:
            return {"ok": False, "error": str(e)}

    def _meter(self, req):
        return self.bus.meter(_arg(req, "address"))

    def cmd_list(self, req):
        return {"meters": [m.state() for m in self.bus.meters.values()]}

    def cmd_get(self, req):
        return {"meter": self._meter(req).state()}

    def cmd_set(self, req):
        m = self._meter(req)
        fields = {k: v for k, v in req.items() if k not in ("cmd", "address")}
        m.update(fields)
        return {"meter": m.state()}

    def cmd_add(self, req):
        return {"meter": self.bus.add(_arg(req, "meter", dict)).state()}

    def cmd_remove(self, req):
        self.bus.remove(_arg(req, "address"))
        return {}

    def cmd_fault(self, req):
        self.bus.set_fault(_arg(req, "address"), _arg(req, "kind"),
                           _arg(req, "times", int, 1), _arg(req, "ms", int, None))
        return {}

    def cmd_trip(self, req):
        m = self._meter(req)
        m.relay_open = True
        return {"meter": m.state()}

    def cmd_card_at_meter(self, req):
        m = self._meter(req)
        customer = _arg(req, "customer", str, None)
        if customer is not None and (not m.opened or m.customer == "000000000000"):
            m.update({"customer": customer})
        m.opened = True
        if m.balance > 0:
            m.relay_open = False
        return {"meter": m.state()}

    def cmd_replace(self, req):
        m = self.bus.readdress(_arg(req, "address"), _arg(req, "new_address"),
                               _arg(req, "key", str, None))
        return {"meter": m.state()}

    def cmd_expire_sessions(self, req):
        address = _arg(req, "address", str, None)
        meters = [self.bus.meter(address)] if address else self.bus.meters.values()
        for m in meters:
            m.esam.end_session()
        return {}

    def cmd_new_day(self, req):
        for m in self.bus.meters.values():
            m.new_day()
        return {}

    def cmd_stats(self, req):
        return dict(self.bus.stats)

    def cmd_reset_stats(self, req):
        self.bus.reset_stats()
        return {}

    def cmd_log(self, req):
        n = _arg(req, "n", int, None)
        frames = list(self.bus.log)
        if n is not None:
            if n < 0:
                raise StateError("n must be >= 0")
            frames = frames[len(frames) - n:] if n else []
        return {"frames": frames}

    def cmd_inject(self, req):
        hexstr = _arg(req, "hex")
        try:
            raw = bytes.fromhex(hexstr)
        except ValueError:
            raise StateError("hex is not hexadecimal") from None
        reply = self.bus.inject(raw)
        return {"reply": None if reply is None else reply.hex()}


async def serve(control, host, port):
    """Start the control server -> (server, "tcp:host:port")."""

    async def client(reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    req = json.loads(line)
                except ValueError as e:
                    out = {"ok": False, "error": "bad JSON: %s" % e}
                else:
                    out = control.handle(req)
                writer.write(json.dumps(out).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError) as e:   # ValueError: line too long
            log.debug("control client gone: %s", e)
        finally:
            writer.close()

    server = await asyncio.start_server(client, host, port, limit=_MAX_LINE)
    h, p = server.sockets[0].getsockname()[:2]
    return server, "tcp:%s:%d" % (h, p)
