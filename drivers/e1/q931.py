"""Q.931 messages (ISDN call control, layer 3): decoder and encoder, ETSI EuroISDN by default.

A message, the information field of a LAPD I frame on SAPI 0::

    octet  8   7   6   5   4   3   2   1
      1  | protocol discriminator 0x08 (Q.931)     |
      2  | 0   0   0   0 | call reference length  |   0: dummy, else 1 (BRI) or 2 (PRI)
      3  |flag| call reference value ...         |   flag 0: sent from the side that
     (4) |     ... call reference value          |   allocated the value; 1: sent to it
      n  | 0 | message type                        |   SETUP 0x05, CONNECT 0x07, ...
    n+1..| information elements, in order          |   see q931_ie.py

Codesets (Q.931 4.5.2-4.5.3): elements are read in codeset 0 until a shift.
A *locking* shift (``1001 0ccc``) moves every following element to codeset
ccc; a *non-locking* shift (``1001 1ccc``) only the next one, after which the
locked codeset applies again. Every element is kept with the codeset it was
read in, and only codeset 0 elements become typed ones: an element of
codeset 6 with identifier 0x28 is ``RawIe(6, 0x28, ...)``, never a Display.

``decode_message`` raises ``Q931Error`` (naming the problem and the octet)
when the framing is broken: too short, protocol discriminator not 0x08, a
bad call reference, an element without its length octet or longer than the
message. A known element whose contents do not parse is kept as a ``RawIe``
with ``problem`` set (a tap should still see the rest of the SETUP), unless
``strict=True``. No other exception type escapes.

Variants: ETSI (EN 300 403 / ETS 300 102, the EuroISDN used in Indonesia)
and ITU-T (Q.931 05/98) decode the elements implemented here identically;
the variant is the hook where a dialect's element table extends the base
one (``ELEMENT_TABLES``), as later dialects will need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import TypeVar

from drivers.e1.q931_ie import (
    VARIABLE_CODESET_0,
    BearerCapability,
    CalledPartyNumber,
    CallingPartyNumber,
    CallState,
    Cause,
    ChannelIdentification,
    CongestionLevel,
    DateTime,
    Display,
    InformationElement,
    MoreData,
    ProgressIndicator,
    Q931Error,
    Q931Problem,
    RawIe,
    RedirectingNumber,
    RepeatIndicator,
    RestartIndicator,
    SendingComplete,
    Shift,
)

PROTOCOL_DISCRIMINATOR = 0x08
MAX_CALL_REFERENCE_OCTETS = 2  # a PRI uses 2 (a BRI 1); 0 is the dummy call reference


class Variant(StrEnum):
    ETSI = "etsi"  # EuroISDN: EN 300 403-1 / ETS 300 102-1 (default)
    ITU_T = "itu-t"  # Q.931 (05/98)


ELEMENT_TABLES: dict[Variant, dict[int, type[InformationElement]]] = {
    Variant.ITU_T: dict(VARIABLE_CODESET_0),
    Variant.ETSI: dict(VARIABLE_CODESET_0),  # ETSI adds no element the tap decodes (yet)
}


class MessageType(IntEnum):
    """Q.931 Table 4-2 (and the Q.932 supplementary ones a trunk may carry)."""

    ESCAPE = 0x00  # a national message type follows in the next octet
    ALERTING = 0x01
    CALL_PROCEEDING = 0x02
    PROGRESS = 0x03
    SETUP = 0x05
    CONNECT = 0x07
    SETUP_ACKNOWLEDGE = 0x0D
    CONNECT_ACKNOWLEDGE = 0x0F
    USER_INFORMATION = 0x20
    SUSPEND_REJECT = 0x21
    RESUME_REJECT = 0x22
    HOLD = 0x24
    SUSPEND = 0x25
    RESUME = 0x26
    HOLD_ACKNOWLEDGE = 0x28
    SUSPEND_ACKNOWLEDGE = 0x2D
    RESUME_ACKNOWLEDGE = 0x2E
    HOLD_REJECT = 0x30
    RETRIEVE = 0x31
    RETRIEVE_ACKNOWLEDGE = 0x33
    RETRIEVE_REJECT = 0x37
    DISCONNECT = 0x45
    RESTART = 0x46
    RELEASE = 0x4D
    RESTART_ACKNOWLEDGE = 0x4E
    RELEASE_COMPLETE = 0x5A
    SEGMENT = 0x60
    FACILITY = 0x62
    REGISTER = 0x64
    NOTIFY = 0x6E
    STATUS_ENQUIRY = 0x75
    CONGESTION_CONTROL = 0x79
    INFORMATION = 0x7B
    STATUS = 0x7D


_KNOWN_TYPES = frozenset(int(member) for member in MessageType)


def message_type_name(value: int) -> str:
    try:
        return MessageType(value).name.replace("_", " ")
    except ValueError:
        return f"unknown message type 0x{value:02X}"


@dataclass(frozen=True)
class CallReference:
    value: int = 0
    flag: int = 0  # 0: from the side that allocated the value; 1: to it
    length: int = 2  # octets; 0 is the dummy call reference

    def __post_init__(self) -> None:
        if not 0 <= self.length <= MAX_CALL_REFERENCE_OCTETS:
            raise Q931Error(Q931Problem.FIELD_OUT_OF_RANGE, f"call reference length {self.length}")
        if self.flag not in (0, 1):
            raise Q931Error(Q931Problem.FIELD_OUT_OF_RANGE, f"call reference flag {self.flag}")
        top = (1 << (8 * self.length - 1)) - 1 if self.length else 0
        if not 0 <= self.value <= top:
            raise Q931Error(
                Q931Problem.FIELD_OUT_OF_RANGE,
                f"call reference {self.value} does not fit {self.length} octets",
            )

    @property
    def is_dummy(self) -> bool:
        return self.length == 0

    @property
    def is_global(self) -> bool:
        """The global call reference 0: the whole interface (RESTART), never a call."""
        return self.length > 0 and self.value == 0

    @property
    def from_originator(self) -> bool:
        return self.flag == 0

    def to_bytes(self) -> bytes:
        if not self.length:
            return b"\x00"
        value = self.value | (self.flag << (8 * self.length - 1))
        return bytes((self.length,)) + value.to_bytes(self.length, "big")


Element = TypeVar("Element", bound=InformationElement)


@dataclass(frozen=True)
class Q931Message:
    message_type: int  # a MessageType where known
    call_reference: CallReference = field(default_factory=CallReference)
    information_elements: tuple[InformationElement, ...] = ()
    national_message_type: int | None = None  # after message type ESCAPE (0x00)
    protocol_discriminator: int = PROTOCOL_DISCRIMINATOR

    @property
    def name(self) -> str:
        return message_type_name(self.message_type)

    def elements(self, kind: type[Element]) -> list[Element]:
        """Every codeset 0 element of ``kind``, in message order."""
        return [
            element
            for element in self.information_elements
            if type(element) is kind and element.codeset == 0
        ]

    def element(self, kind: type[Element]) -> Element | None:
        """The first codeset 0 element of ``kind``."""
        found = self.elements(kind)
        return found[0] if found else None

    @property
    def bearer_capability(self) -> BearerCapability | None:
        return self.element(BearerCapability)

    @property
    def cause(self) -> Cause | None:
        return self.element(Cause)

    @property
    def call_state(self) -> CallState | None:
        return self.element(CallState)

    @property
    def channel_identification(self) -> ChannelIdentification | None:
        return self.element(ChannelIdentification)

    @property
    def progress_indicator(self) -> ProgressIndicator | None:
        return self.element(ProgressIndicator)

    @property
    def display(self) -> Display | None:
        return self.element(Display)

    @property
    def date_time(self) -> DateTime | None:
        return self.element(DateTime)

    @property
    def calling_party_number(self) -> CallingPartyNumber | None:
        return self.element(CallingPartyNumber)

    @property
    def called_party_number(self) -> CalledPartyNumber | None:
        return self.element(CalledPartyNumber)

    @property
    def redirecting_number(self) -> RedirectingNumber | None:
        return self.element(RedirectingNumber)

    @property
    def restart_indicator(self) -> RestartIndicator | None:
        return self.element(RestartIndicator)

    @property
    def sending_complete(self) -> bool:
        return self.element(SendingComplete) is not None

    def to_bytes(self) -> bytes:
        """The message; an element whose codeset is not the one in force at its place gets
        a non-locking shift in front of it (explicit ``Shift`` elements are kept)."""
        if not 0 <= self.message_type <= 0xFF:
            raise Q931Error(Q931Problem.FIELD_OUT_OF_RANGE, f"message type {self.message_type}")
        out = bytearray((self.protocol_discriminator,))
        out += self.call_reference.to_bytes()
        out.append(self.message_type)
        if self.message_type == MessageType.ESCAPE:
            out.append(self.national_message_type or 0)
        locked = 0
        pending: int | None = None
        for element in self.information_elements:
            if isinstance(element, Shift):
                if element.locking:
                    locked, pending = element.target_codeset, None
                else:
                    pending = element.target_codeset
                out += element.to_bytes()
                continue
            current = locked if pending is None else pending
            if element.codeset != current:
                out += Shift(element.codeset, locking=False).to_bytes()
            out += element.to_bytes()
            pending = None
        return bytes(out)

    @classmethod
    def from_bytes(
        cls, data: bytes | bytearray | memoryview, variant: Variant = Variant.ETSI
    ) -> Q931Message:
        return decode_message(data, variant)


def decode_message(
    data: bytes | bytearray | memoryview,
    variant: Variant = Variant.ETSI,
    *,
    strict: bool = False,
) -> Q931Message:
    """Parse one Q.931 message; ``Q931Error`` for broken framing (see the module doc)."""
    raw = bytes(data)
    if not raw:
        raise Q931Error(Q931Problem.TRUNCATED_MESSAGE, "empty message", 0)
    if raw[0] != PROTOCOL_DISCRIMINATOR:
        raise Q931Error(
            Q931Problem.BAD_PROTOCOL_DISCRIMINATOR, f"0x{raw[0]:02X}, not Q.931 (0x08)", 0
        )
    if len(raw) < 2:
        raise Q931Error(Q931Problem.TRUNCATED_MESSAGE, "no call reference", 1)
    if raw[1] & 0xF0:
        raise Q931Error(
            Q931Problem.BAD_CALL_REFERENCE, f"length octet 0x{raw[1]:02X} has spare bits set", 1
        )
    length = raw[1]
    if length > MAX_CALL_REFERENCE_OCTETS:
        raise Q931Error(
            Q931Problem.BAD_CALL_REFERENCE,
            f"call reference of {length} octets, at most {MAX_CALL_REFERENCE_OCTETS}",
            1,
        )
    if len(raw) < 2 + length:
        raise Q931Error(Q931Problem.TRUNCATED_MESSAGE, "call reference cut short", len(raw))
    value = int.from_bytes(raw[2 : 2 + length], "big")
    flag = value >> (8 * length - 1) if length else 0
    reference = CallReference(value & ~(1 << (8 * length - 1)) if length else 0, flag, length)
    offset = 2 + length
    if len(raw) <= offset:
        raise Q931Error(Q931Problem.TRUNCATED_MESSAGE, "no message type", offset)
    message_type = raw[offset]
    offset += 1
    national = None
    if message_type == MessageType.ESCAPE:
        if len(raw) <= offset:
            raise Q931Error(Q931Problem.TRUNCATED_MESSAGE, "escape without a message type", offset)
        national = raw[offset]
        offset += 1
    elements = _decode_elements(raw, offset, ELEMENT_TABLES[variant], strict)
    return Q931Message(
        MessageType(message_type) if message_type in _KNOWN_TYPES else message_type,
        reference,
        tuple(elements),
        national,
    )


def _decode_elements(
    raw: bytes, offset: int, table: dict[int, type[InformationElement]], strict: bool
) -> list[InformationElement]:
    elements: list[InformationElement] = []
    locked = 0
    pending: int | None = None  # codeset of the next element only (non-locking shift)
    while offset < len(raw):
        octet = raw[offset]
        codeset = locked if pending is None else pending
        if octet & 0xF0 == 0x90:  # shift: the same in every codeset
            shift = Shift(octet & 0x07, locking=not octet & 0x08)
            if shift.locking:
                locked, pending = shift.target_codeset, None
            else:
                pending = shift.target_codeset
            elements.append(shift)
            offset += 1
            continue
        pending = None
        if octet & 0x80:
            elements.append(_single_octet(octet, codeset))
            offset += 1
            continue
        if offset + 1 >= len(raw):
            raise Q931Error(
                Q931Problem.TRUNCATED_IE, f"element 0x{octet:02X} without its length octet", offset
            )
        length = raw[offset + 1]
        end = offset + 2 + length
        if end > len(raw):
            raise Q931Error(
                Q931Problem.BAD_IE_LENGTH,
                f"element 0x{octet:02X} of {length} octets, {len(raw) - offset - 2} left",
                offset + 1,
            )
        contents = raw[offset + 2 : end]
        elements.append(_variable(codeset, octet, contents, table, strict, offset))
        offset = end
    return elements


def _single_octet(octet: int, codeset: int) -> InformationElement:
    if codeset == 0:
        if octet == SendingComplete.IDENTIFIER:
            return SendingComplete()
        if octet == MoreData.IDENTIFIER:
            return MoreData()
        if octet & 0xF0 == CongestionLevel.IDENTIFIER:
            return CongestionLevel(octet & 0x0F)
        if octet & 0xF0 == RepeatIndicator.IDENTIFIER:
            return RepeatIndicator(octet & 0x0F)
    return RawIe(raw_codeset=codeset, raw_identifier=octet)


def _variable(
    codeset: int,
    identifier: int,
    contents: bytes,
    table: dict[int, type[InformationElement]],
    strict: bool,
    offset: int,
) -> InformationElement:
    kind = table.get(identifier) if codeset == 0 else None
    if kind is None:
        return RawIe(codeset, identifier, contents)
    try:
        return kind.from_contents(contents)  # type: ignore[attr-defined]
    except Q931Error as error:
        if strict:
            raise Q931Error(error.problem, str(error), offset) from None
        return RawIe(codeset, identifier, contents, error.problem)
    except (IndexError, ValueError) as error:  # a contents parser missed a case
        if strict:
            raise Q931Error(Q931Problem.BAD_IE_CONTENTS, str(error), offset) from None
        return RawIe(codeset, identifier, contents, Q931Problem.BAD_IE_CONTENTS)
