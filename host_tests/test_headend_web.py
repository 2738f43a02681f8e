"""The operator's page, served by `python -m headend serve --http`, read by
a real headless browser (Debian's chromium): every category of the scripted
day is on it with its count, and the JSON says the same."""
import json
import re
import urllib.error
import urllib.request

import pytest

import headend_rig
from headend_ctl import Serve, mosquitto  # noqa: F401 - fixture
from headend_screenshot import shoot

pytestmark = pytest.mark.xdist_group("chromium")

WANT = {"alarms": 7, "credited_twice": 2, "credited_not_sold": 1, "sold_not_credited": 1,
        "silent_terminals": 1, "gaps": 1, "meters_silent": 2, "relays_tripped": 2,
        "awaiting_registration": 1, "awaiting_opening": 2, "waiting": 1, "good": 2,
        "customers": 4, "terminals": 3}


def test_the_page_in_chromium_shows_every_category(tmp_path):
    png = tmp_path / "page.png"
    dom, data = shoot(str(png))
    found = dict(re.findall(r'<h2 id="(\w+)" class="\w*">[^<]*<span class="n">\((\d+)\)', dom))
    assert {k: int(v) for k, v in found.items()} == WANT, dom
    assert re.search(r'<h2 id="credited_twice" class="alarm">', dom)
    assert "meter 000000700005 purchase 7 credited 2 times" in dom
    assert "MAC does not verify under terminal 000000000011" in dom
    assert "<meta http-equiv=\"refresh\" content=\"30\">" in dom
    assert json.loads(data)["summary"] == WANT
    head = png.read_bytes()
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) > 20000


def test_only_the_page_and_its_json_are_served(mosquitto, tmp_path):  # noqa: F811
    port = headend_rig.free_port()
    serve = Serve(mosquitto.url, str(tmp_path / "h.db"), http=port)
    try:
        serve.wait_for("page on")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen("http://127.0.0.1:%d/etc/passwd" % port, timeout=30)
        assert e.value.code == 404
        with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=30) as r:
            page = r.read().decode()
        assert "Alarms <span class='n'>(0)</span>" in page
    finally:
        serve.stop()
