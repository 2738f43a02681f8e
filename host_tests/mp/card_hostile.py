# The T=0 driver alone under MicroPython against a (hostile) card simulator:
# listen on the slot, power the card up, send one APDU again and again until
# something gives, print one JSON line: what ended it and after how long.
# argv: port apdu_hex session_ms (0: the reader's default) [stall_ms: block
# the event loop that long once, in the first APDU, as a flash erase would]
import asyncio
import gc
import json
import sys
import time

from card_reader import CardMute, CardReader, ProtocolError

port = int(sys.argv[1])
apdu = bytes.fromhex(sys.argv[2])
session_ms = int(sys.argv[3])
stall_ms = int(sys.argv[4]) if len(sys.argv) > 4 else 0
result = {"ok": 0}
done = asyncio.Event()


async def stall():
    await asyncio.sleep_ms(0)
    time.sleep_ms(stall_ms)  # blocking: nothing else runs meanwhile


async def on_card(r, w):
    reader = CardReader(r, w)
    if session_ms:
        reader.session_ms = session_ms
    t0 = time.ticks_ms()
    try:
        await reader.power_up()
        result["wwt_ms"] = reader.wwt_ms
        staller = asyncio.create_task(stall()) if stall_ms else None  # noqa: F841
        for _ in range(50):
            await reader.transmit(apdu)
            result["ok"] += 1
    except Exception as e:  # noqa: BLE001 - MemoryError included: that is the point
        result["error"] = type(e).__name__
        result["msg"] = str(e)
        result["mute"] = isinstance(e, CardMute)
        result["protocol"] = isinstance(e, ProtocolError)
    result["ms"] = time.ticks_diff(time.ticks_ms(), t0)
    result["apdus"] = reader.apdus
    w.close()
    done.set()


async def main():
    srv = await asyncio.start_server(on_card, "127.0.0.1", port)
    print("listening")
    await asyncio.wait_for_ms(done.wait(), 60000)
    srv.close()
    gc.collect()
    result["mem_free"] = gc.mem_free()
    print(json.dumps(result))


asyncio.run(main())
