#!/usr/bin/env python3
"""The README's picture of the operator's page: the scripted day
(host_tests/headend_script.py) in a SQLite file, `python -m headend serve`
with mosquitto, and Debian's chromium taking the screenshot.

  headend_screenshot.py [OUT.png]     (default docs/headend/operator.png)"""
import os
import sys
import tempfile
import urllib.request

import hostpath  # noqa: F401
import headend_rig  # noqa: E402
from headend.store import Store  # noqa: E402
from headend_ctl import Serve  # noqa: E402
from headend_script import scripted  # noqa: E402


def shoot(out, width=1200, height=1900):
    """Serve the scripted day; return (the page's DOM as chromium saw it,
    the JSON). Writes the screenshot to `out`."""
    with tempfile.TemporaryDirectory() as d:
        db = os.path.join(d, "headend.db")
        s = Store(db)
        scripted(s, os.path.join(d, "ledger.jsonl"))
        s.close()
        broker = headend_rig.Mosquitto()
        port = headend_rig.free_port()
        serve = Serve(broker.url, db, http=port)
        try:
            serve.wait_for("page on")
            url = "http://127.0.0.1:%d/" % port
            dom = headend_rig.chromium(url, "--dump-dom")
            headend_rig.chromium(url, "--window-size=%d,%d" % (width, height),
                                 "--hide-scrollbars", "--screenshot=" + os.path.abspath(out))
            with urllib.request.urlopen(url + "report.json", timeout=30) as r:
                data = r.read().decode()
        finally:
            serve.stop()
            broker.stop()
    return dom, data


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = argv[0] if argv else os.path.join(hostpath.ROOT, "docs", "headend", "operator.png")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    shoot(out)
    print("wrote %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
