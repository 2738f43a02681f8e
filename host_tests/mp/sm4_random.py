# Under MicroPython: stdin lines "key_hex block_hex data_hex"; for each, one
# output line "viper_block plain_block viper_decrypt plain_decrypt viper_mac plain_mac".
import sys

import sm4

while True:
    line = sys.stdin.readline()
    if not line.strip():
        break
    k, b, d = [bytes.fromhex(x) for x in line.strip("\n").split(" ")]
    row = []
    for fast in (True, False):
        assert sm4.use_fast(fast) == fast
        c = sm4.Cipher(k)
        row.append((c.encrypt(b).hex(), c.decrypt(b).hex(), c.mac(d).hex()))
    print(" ".join(row[0][i] + " " + row[1][i] for i in range(3)))
