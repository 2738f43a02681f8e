"""card_files / user_card on the shared helpers (common.py): return-file
result codes named RET_*, the technician card type, 32-bit fields whose
range errors stay CardDataError, money shown by common.money."""
import pytest

import card_files as cf
import common
import meter_security as ms
import user_card as uc
from card_sim_ctl import CUSTOMER, MK_C, SERIAL, make_card, run_with_card

WHEN = (26, 11, 24, 19, 30)


def test_return_results_are_ret_names_and_no_longer_clash_with_the_meters():
    assert (cf.RET_CREDITED, cf.RET_ALREADY, cf.RET_COUNT_ERROR, cf.RET_REFUSED) == (0, 1, 2, 3)
    for old in ("CREDITED", "ALREADY_CREDITED", "COUNT_ERROR", "REFUSED"):
        assert not hasattr(cf, old)
    assert ms.CREDITED == "credited"  # the meter's answer, a different thing
    assert cf.RESULT_NAMES[cf.RET_ALREADY] == "already credited"
    for r in (cf.RET_CREDITED, cf.RET_ALREADY, cf.RET_COUNT_ERROR, cf.RET_REFUSED):
        ret = cf.parse_return(cf.pack_return(-5, 9, r, "000000000099", WHEN))
        assert (ret["balance"], ret["count"], ret["result"]) == (-5, 9, r)
    with pytest.raises(cf.CardDataError, match="result"):
        cf.pack_return(0, 1, 4, "000000000099", WHEN)


def test_technician_card_type():
    assert cf.TECHNICIAN == 4 and cf.TYPE_NAMES[cf.TECHNICIAN] == "technician"
    p = cf.pack_param(cf.TECHNICIAN, "000000000000", "000012345678")
    assert p == bytes.fromhex("04" "000000000000" "785634120000" "000000")
    assert cf.parse_param(p) == (4, "000000000000", "000012345678")
    for t in (cf.OPENING, cf.PURCHASE, cf.REISSUED):
        assert cf.parse_param(cf.pack_param(t, "000000000001", CUSTOMER))[0] == t
    with pytest.raises(cf.CardDataError, match="card type 05"):
        cf.parse_param(b"\x05" + p[1:])


@pytest.mark.parametrize("fn,v", [(cf.u32, -1), (cf.u32, 1 << 32), (cf.u32, True), (cf.u32, 1.0),
                                  (cf.s32, 1 << 31), (cf.s32, -(1 << 31) - 1)])
def test_out_of_range_fields_are_card_data_errors(fn, v):
    with pytest.raises(cf.CardDataError):
        fn(v)


def test_fields_name_what_is_out_of_range():
    with pytest.raises(cf.CardDataError, match="amount"):
        cf.pack_purse(-1, 1, bytes(4))
    with pytest.raises(cf.CardDataError, match="count"):
        cf.sale_mac_input(bytes(16), 1, 1 << 32)
    with pytest.raises(cf.CardDataError, match="balance"):
        cf.pack_return(1 << 31, 1, cf.RET_CREDITED, "000000000099", WHEN)


def test_32_bit_fields_are_commons():
    assert cf.get_u32 is common.get_u32 and cf.get_s32 is common.get_s32
    assert cf.u32(0xFFFFFFFF) == common.u32(0xFFFFFFFF) == b"\xff\xff\xff\xff"
    assert cf.s32(-2) == common.s32(-2) == b"\xfe\xff\xff\xff"
    assert cf.get_s32(cf.s32(-0x80000000), 0) == -0x80000000
    for name in ("_same", "_inverted"):
        assert not hasattr(uc, name)


def test_authentication_compares_with_common_same(monkeypatch):
    # the card's answer and the sale MAC go through common.same (constant time)
    seen = []
    real = common.same

    def spy(a, b):
        seen.append((bytes(a), bytes(b)))
        return real(a, b)

    monkeypatch.setattr(common, "same", spy)

    async def fn(reader, sim):
        await reader.power_up()
        return await uc.UserCard(reader, MK_C).read()

    run_with_card(make_card(), fn)
    assert [len(a) for a, _ in seen] == [8, 4] and all(a == b for a, b in seen)


@pytest.mark.parametrize("amount,shown", [(12345, "123.45"), (5, "0.05"), (0, "0.00"),
                                          (-5, "-0.05"), (-12345, "-123.45")])
def test_card_info_lines_show_money(amount, shown):
    info = uc.CardInfo(cf.PURCHASE, "000000000001", CUSTOMER, amount, 2, SERIAL)
    assert "amount: %s" % shown in info.lines()


def test_card_info_refuses_a_float_amount():
    with pytest.raises(TypeError):
        uc.CardInfo(cf.PURCHASE, "000000000001", CUSTOMER, 1.5, 2, SERIAL).lines()


async def _read(reader, sim):
    await reader.power_up()
    return await uc.UserCard(reader, MK_C).read()


def test_technician_card_read_over_t0():
    card = make_card(card_type=cf.TECHNICIAN, meter="000000000000", customer="000012345678",
                     amount=0, count=0)
    assert card.files[cf.SFI_PURSE] == bytes(12)
    info = run_with_card(card, _read)
    assert (info.kind, info.meter, info.customer, info.amount, info.count) == (
        "technician", "000000000000", "000012345678", 0, 0)
    assert "card: technician" in info.lines()


def test_technician_card_with_money_on_it_is_forged():
    card = make_card(card_type=cf.TECHNICIAN, meter="000000000000", customer="000012345678")
    card.files[cf.SFI_PURSE] = cf.u32(10000) + bytes(8)
    with pytest.raises(uc.ForgedPurse):
        run_with_card(card, _read)
