# The profile's card vectors with the firmware's SM4 and card_files under MicroPython.
import json
import sm4
import card_files as cf

mk_c = bytes.fromhex("fedcba98765432100123456789abcdef")
kc = sm4.kdf(mk_c, bytes.fromhex("8800000000000001"))
rt = bytes.fromhex("0102030405060708")
auth = sm4.encrypt(kc, rt + bytes(b ^ 0xFF for b in rt))[0:8]
param = cf.pack_param(cf.PURCHASE, "000000000001", "112233445566")
s = sm4.mac(kc, cf.sale_mac_input(param, 10000, 2))
data = cf.pack_return(15000, 2, cf.RET_CREDITED, "000000000099", (26, 11, 24, 19, 30))
m = sm4.mac(kc, bytes.fromhex("11223344") + bytes.fromhex("04d685001c") + data)
neg = cf.pack_return(-1234, 7, cf.RET_REFUSED, "000000000099", (26, 11, 24, 19, 30))
tech = cf.parse_param(cf.pack_param(cf.TECHNICIAN, "000000000000", "000012345678"))
errors = []
for f, v in ((cf.u32, 0x100000000), (cf.u32, -1), (cf.s32, 0x80000000), (cf.s32, -0x80000001)):
    try:
        f(v)
        errors.append("none")
    except cf.CardDataError:
        errors.append("CardDataError")
print(json.dumps({"kc": kc.hex(), "auth": auth.hex(), "param13": param[0:13].hex(),
                  "s": s.hex(), "data": data.hex(), "m": m.hex(),
                  "neg": cf.parse_return(neg)["balance"], "neg_hex": neg[0:4].hex(),
                  "tech": list(tech), "range_errors": errors,
                  "u32_max": cf.u32(0xFFFFFFFF).hex(), "s32_min": cf.s32(-0x80000000).hex()}))
