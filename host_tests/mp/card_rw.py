# Terminal side under MicroPython: listen on the card slot, take one card,
# read + authenticate it, optionally write back, print one JSON line.
# argv: port mk_c_hex write(0/1)
import sys
import json
import asyncio

import card_files as cf
import user_card as uc
from card_reader import BadAtr, CardMute, CardReader, CardRemoved, ProtocolError

port = int(sys.argv[1])
mk = bytes.fromhex(sys.argv[2])
write = sys.argv[3] == "1"
result = {}
done = asyncio.Event()


async def on_card(r, w):
    # a plain listener, not boards/unix/card_slot.py: this tests the driver
    reader = CardReader(r, w)
    try:
        await reader.power_up()
        card = uc.UserCard(reader, mk)
        info = await card.read()
        result.update(kind=info.kind, meter=info.meter, customer=info.customer,
                      amount=info.amount, count=info.count, serial=info.serial.hex())
        result["read_apdus"] = reader.apdus
        result["read_bytes"] = reader.bytes_on_wire
        if write:
            await card.write_return(-1234, info.count, cf.RET_CREDITED, "000000000099",
                                    (26, 11, 24, 19, 30))
            result["write_apdus"] = reader.apdus - result["read_apdus"]
            result["write_bytes"] = reader.bytes_on_wire - result["read_bytes"]
    except (uc.CardError, CardRemoved, CardMute, BadAtr, ProtocolError) as e:
        result["error"] = type(e).__name__
    w.close()
    done.set()


async def main():
    slot = await asyncio.start_server(on_card, "127.0.0.1", port)
    print("listening")
    await asyncio.wait_for_ms(done.wait(), 20000)
    slot.close()
    import gc
    gc.collect()
    result["mem_free"] = gc.mem_free()
    print(json.dumps(result))


asyncio.run(main())
