"""card_atr: the ATR's length as its bytes arrive (what the reader waits
for) and its parse, under CPython; the reader's use of it over T=0 is in
test_card_t0.py / test_card_hostile.py (also under micropython)."""
import pytest

import card_model
from card_atr import BadAtr, atr_more, parse_atr


def _tck(raw):
    x = 0
    for b in raw[1:]:
        x ^= b
    return raw + bytes((x,))


ATRS = [
    card_model.ATR,  # 3B 06 + 6 historical
    card_model.ATR_WI_255,  # TD1 40 -> TC2 FF
    bytes.fromhex("3b00"),
    _tck(bytes.fromhex("3bd2180081 31fe45") + b"AB"),  # TA1 TD1(T=1) TD2 TA3 TB3, TCK
    _tck(bytes.fromhex("3f8001")),  # inverse TS, TD1 T=1 only, TCK
]


@pytest.mark.parametrize("raw", ATRS, ids=lambda r: r.hex())
def test_length_known_byte_by_byte(raw):
    for k in range(1, len(raw)):
        more = atr_more(raw[:k])
        assert more > 0 and k + more <= len(raw), k
    assert atr_more(raw) == 0
    parse_atr(raw)  # and the complete ATR parses


def test_wi_from_tc2():
    assert parse_atr(card_model.ATR_WI_255).wi == 255


@pytest.mark.parametrize("raw", [b"\x12", b"\x00\x00", b"\x3e"])
def test_wrong_ts_refused_at_the_first_byte(raw):
    with pytest.raises(BadAtr, match="TS"):
        atr_more(raw)


def test_endless_td_chain_refused():
    # every TDi announces another TDi: refused once past 33 bytes, not read for ever
    raw = bytearray(b"\x3b\x80")
    with pytest.raises(BadAtr, match="too long"):
        while True:
            raw += b"\x80"
            atr_more(raw)
    assert len(raw) <= 34
