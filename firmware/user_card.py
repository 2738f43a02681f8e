"""User card operations for the terminal (security profile, card side).

Takes a T=0 reader (anything with `async transmit(apdu) -> (data, sw)`),
and the card master key MK_C. Reading a card proves it genuine (internal
authenticate under K_c = KDF(MK_C, serial): clones carry the files, not the
key) and its purse untampered (sale MAC S); every status word becomes a typed
error, so callers never look at raw SW values.
"""
import os

from micropython import const

import card_files as cf
import common
import sm4

_SW_OK = const(0x9000)
_SELECT_DF01 = b"\x00\xa4\x00\x00\x02\xdf\x01"
_GET_CHALLENGE = b"\x00\x84\x00\x00\x04"
_WRITE_CLA = const(0x04)
_UPDATE_BINARY = const(0xD6)


class CardError(Exception):
    """Base of every card refusal the terminal reports."""


class CardStatusError(CardError):
    """The card answered a status word other than 9000."""

    def __init__(self, sw, what=""):
        super().__init__("%s: SW %04X" % (what or "card", sw))
        self.sw = sw


class FileNotFound(CardStatusError):
    pass


class SecurityNotSatisfied(CardStatusError):
    pass


class MacWrong(CardStatusError):
    """6988: the card refused a secure-messaging MAC (or a used challenge)."""


class Unissued(CardStatusError):
    """6B00: a blank card the sales office never issued."""


class UnknownInstruction(CardStatusError):
    pass


class NotAuthentic(CardError):
    """The card does not hold K_c for its serial: a clone."""


class ForgedPurse(CardError):
    """The purse's sale MAC S does not match: amount or count altered."""


class BadCardData(CardError):
    """A file's bytes break the profile (type, BCD, length)."""


class PinWrong(CardError):
    """63Cx: the card refused the PIN; `tries` are left before it blocks."""

    def __init__(self, tries):
        super().__init__("PIN wrong, %d tries left" % tries)
        self.tries = tries


class PinBlocked(CardError):
    """6983: the card blocked its PIN (too many wrong); only the office unblocks it."""


_SW_ERRORS = {0x6A82: FileNotFound, 0x6982: SecurityNotSatisfied, 0x6988: MacWrong,
              0x6B00: Unissued, 0x6D00: UnknownInstruction}
_SW_PIN_BLOCKED = const(0x6983)


def check_sw(sw, what=""):
    if sw != _SW_OK:
        raise _SW_ERRORS.get(sw, CardStatusError)(sw, what)


class CardInfo:
    """What the terminal knows about the inserted card after read()."""

    def __init__(self, card_type, meter, customer, amount, count, serial):
        self.card_type = card_type
        self.kind = cf.TYPE_NAMES[card_type]
        self.meter = meter
        self.customer = customer
        self.amount = amount
        self.count = count
        self.serial = serial
        self.last_return = None

    def lines(self):
        s = ["card: %s" % self.kind, "serial: %s" % self.serial.hex(),
             "customer: %s" % self.customer, "meter: %s" % self.meter,
             "amount: %s" % common.money(self.amount),
             "count: %d" % self.count]
        return s


class UserCard:
    """`keys` is the terminal's key store (anything with card_key(serial)),
    or MK_C itself as 16 bytes (tests, tools)."""

    def __init__(self, reader, keys):
        self._reader = reader
        self._keys = keys
        self._kc = None
        self.info = None

    async def _apdu(self, apdu, what):
        data, sw = await self._reader.transmit(apdu)
        check_sw(sw, what)
        return data

    async def read_file(self, sfi, n, what):
        data = await self._apdu(bytes((0x00, 0xB0, 0x80 | sfi, 0, n)), what)
        if len(data) != n:
            raise BadCardData("%s: %d bytes, want %d" % (what, len(data), n))
        return data

    async def authenticate(self, serial):
        """Internal authenticate with a fresh RT; raises NotAuthentic."""
        rt = os.urandom(8)
        got = await self._apdu(b"\x00\x88\x00\x01\x08" + rt, "internal authenticate")
        want = sm4.encrypt(self._kc, rt + common.inverted(rt))[0:8]
        if not common.same(got, want):
            raise NotAuthentic("card serial %s failed internal authenticate" % serial.hex())

    async def read(self, with_return=False):
        """Select, read parameter/purse/serial, authenticate, check S.
        Returns CardInfo; raises a CardError subclass (or the reader's
        CardRemoved/CardMute) on anything else."""
        await self._apdu(_SELECT_DF01, "select DF01")
        param = await self.read_file(cf.SFI_PARAM, cf.PARAM_LEN, "parameter")
        purse = await self.read_file(cf.SFI_PURSE, cf.PURSE_LEN, "purse")
        serial = bytes(await self.read_file(cf.SFI_SERIAL, cf.SERIAL_LEN, "serial"))
        try:
            card_type, meter, customer = cf.parse_param(param)
            amount, count, mac_s = cf.parse_purse(purse)
        except cf.CardDataError as e:
            raise BadCardData(str(e))
        if hasattr(self._keys, "card_key"):
            self._kc = self._keys.card_key(serial)
        else:
            self._kc = sm4.kdf(self._keys, serial)
        await self.authenticate(serial)
        if card_type == cf.TECHNICIAN:
            # no sale, no MAC: a technician card's purse is all zeros
            if any(purse):
                raise ForgedPurse("technician card with a purse")
        elif not common.same(sm4.mac(self._kc, cf.sale_mac_input(param, amount, count)), mac_s):
            raise ForgedPurse("sale MAC S does not match the purse")
        info = CardInfo(card_type, meter, customer, amount, count, serial)
        if with_return:
            ret = await self.read_file(cf.SFI_RETURN, cf.RETURN_LEN, "return")
            try:
                info.last_return = cf.parse_return(ret)
            except cf.CardDataError as e:
                raise BadCardData(str(e))
        self.info = info
        return info

    async def verify_pin(self, pin):
        """VERIFY 00 20 00 01 06 PIN: the card checks a technician's PIN
        itself (the terminal holds none). pin: 6 digits (str). Returns on
        9000; raises PinWrong (.tries left), PinBlocked, or the status
        word's error."""
        if not isinstance(pin, str) or len(pin) != 6 or not pin.isdigit():
            raise ValueError("a PIN is 6 digits")
        _, sw = await self._reader.transmit(b"\x00\x20\x00\x01\x06" + pin.encode())
        if sw >> 4 == 0x63C:
            raise PinWrong(sw & 0x0F)
        if sw == _SW_PIN_BLOCKED:
            raise PinBlocked("technician card blocked: PIN entered wrong too often")
        check_sw(sw, "verify PIN")

    async def write_file(self, sfi, data, what):
        """UPDATE BINARY with secure messaging: GET CHALLENGE, then
        04 D6 (80|SFI) 00 Lc data M, M = MAC(K_c, RC || header || data)."""
        if self._kc is None:
            raise SecurityNotSatisfied(0x6982, "write before read")
        rc = await self._apdu(_GET_CHALLENGE, "get challenge")
        if len(rc) != 4:
            raise BadCardData("challenge of %d bytes" % len(rc))
        hdr = bytes((_WRITE_CLA, _UPDATE_BINARY, 0x80 | sfi, 0, len(data) + 4))
        m = sm4.mac(self._kc, bytes(rc) + hdr + data)
        await self._apdu(hdr + data + m, what)

    async def write_return(self, balance, count, result, terminal, when):
        """Write-back: the meter's answer onto the card's return file."""
        data = cf.pack_return(balance, count, result, terminal, when)
        await self.write_file(cf.SFI_RETURN, data, "write-back")

