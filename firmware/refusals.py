"""Why a card gets no credit, and the resident's screen for it: one table.

Every refusal is a typed error somewhere below (the card reader, the card,
the meter's security session, the bus); this is the one place that says
which screen each one gets. The first matching row wins, so a subclass
that needs its own screen comes before its base class.
"""
import card_files as cf
import card_reader
import dlt645
import meter_security as ms
import recovery
import user_card

_TABLE = (
    # the card
    (card_reader.CardRemoved, "card_pulled"),
    (user_card.NotAuthentic, "card_invalid"),  # a clone
    (user_card.ForgedPurse, "card_invalid"),  # amount or count altered
    (user_card.MacWrong, "card_invalid"),
    (user_card.Unissued, "card_invalid"),
    (user_card.PinBlocked, "tech_card_blocked"),  # only the office unblocks it
    (user_card.PinWrong, "tech_pin_wrong"),
    (user_card.CardError, "card_unreadable"),
    (card_reader.CardMute, "card_unreadable"),
    (card_reader.BadAtr, "card_unreadable"),
    (card_reader.ProtocolError, "card_unreadable"),
    # the meter, in the order it checks a top-up
    (ms.AuthFailed, "meter_auth_failed"),
    (ms.NotAuthenticated, "meter_auth_failed"),
    (ms.NotOpened, "meter_not_opened"),
    (ms.CustomerMismatch, "card_mismatch"),
    (ms.CountError, "count_error"),
    (ms.OverLimit, "hoarding_limit"),
    (recovery.MeterMoved, "meter_replaced"),  # its count went back: not our meter
    (dlt645.DLTError, "meter_no_answer"),
)


def screen_for(error):
    """The screen for a refusal (an exception instance or class)."""
    cls = error if isinstance(error, type) else type(error)
    for kind, name in _TABLE:
        if issubclass(cls, kind):
            return name
    return "out_of_service"  # not a refusal we know: the terminal's own fault


def card_refusal(info, meters):
    """The screen refusing this card before any meter is asked, or None.
    `meters`: the meter numbers this terminal manages (anything with `in`)."""
    if info.card_type == cf.OPENING:
        return "opening_card"  # a first purchase is made at the meter
    if info.card_type not in (cf.PURCHASE, cf.REISSUED):
        return "card_invalid"
    if info.meter not in meters:
        return "meter_unknown"
    if info.count == 0:
        return "count_error"  # a purchase card's count is never 0
    if info.amount == 0:
        return "nothing_to_credit"  # would use up a purchase count for nothing
    return None
