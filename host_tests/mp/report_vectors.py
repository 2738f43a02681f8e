"""docs/reporting.md's vectors computed by the firmware under micropython:
K_r (keystore.report_key) and report MACs (reports.Signer), for the host
test to compare with OpenSSL's SM4. stdin: JSON {"mk_r", "tid", "cases":
[[topic, body], ...]}; stdout: one JSON line."""
import json
import sys

import keystore
import reports

req = json.loads(sys.stdin.read())
k_r = keystore.report_key(bytes.fromhex(req["mk_r"]), req["tid"])
s = reports.Signer(k_r)
print(json.dumps({"k_r": k_r.hex(),
                  "macs": [s.mac(t, b.encode()) for t, b in req["cases"]],
                  "body": reports.encode([("t", "000000000099"), ("seq", 1), ("ok", True),
                                          ("n", None), ("l", [1, -2]), ("m", {"b": "x", "a": 1})]
                                         ).decode()}))
