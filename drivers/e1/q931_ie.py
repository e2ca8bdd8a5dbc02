"""Q.931 information elements: frozen dataclasses with ``from_contents`` / ``contents``.

Two formats (Q.931 4.5.1)::

    single octet   | 1 | identifier (3 bits) | contents (4 bits) |   shift, congestion
                   | 1 | 0 1 0 | type (4 bits) |                    more data, sending complete
    variable       | 0 | identifier (7 bits) |
                   | length of contents      |
                   | contents: octet groups, bit 8 of an octet = 1 ends its group (3, 3a, 3b...)

The typed elements here are those of codeset 0 a tap needs (bearer
capability, cause, call state, channel identification, progress indicator,
display, date/time, calling, called and redirecting party numbers, restart
indicator, and the single-octet ones). ``RawIe`` keeps every other element,
and every element of another codeset, with its codeset: an IE of codeset 6
is never read as codeset 0. The message codec (shifts included) is in
``q931.py``.

Field values are plain integers from the IE (the IntEnums of
``q931_codes.py`` name the usual ones and compare equal to them), so an
unusual value is kept, not refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from drivers.e1.q931_codes import (
    CallStateValue,
    CauseValue,
    ChannelSelection,
    CodingStandard,
    IeIdentifier,
    Layer1Protocol,
    Location,
    NumberingPlan,
    ProgressDescription,
    Q931Error,
    Q931Problem,
    RestartClass,
    TransferCapability,
    TypeOfNumber,
)


def _contents_error(name: str, detail: str) -> Q931Error:
    return Q931Error(Q931Problem.BAD_IE_CONTENTS, f"{name}: {detail}")


# -- helpers --------------------------------------------------------------------------


def octet_groups(contents: bytes) -> list[bytes]:
    """Split contents into octet groups (3, 3a, 3b... end at the octet with bit 8 = 1)."""
    groups: list[bytes] = []
    start = 0
    for index, octet in enumerate(contents):
        if octet & 0x80:
            groups.append(contents[start : index + 1])
            start = index + 1
    if start < len(contents):
        groups.append(contents[start:])  # a last group with no ending octet
    return groups


def _check(name: str, value: int, bits: int) -> None:
    if not 0 <= value < (1 << bits):
        raise Q931Error(Q931Problem.FIELD_OUT_OF_RANGE, f"{name} {value} does not fit {bits} bits")


def _text(contents: bytes) -> str:
    return contents.decode("latin-1")


# -- the element types ------------------------------------------------------------------


@dataclass(frozen=True)
class InformationElement:
    """Base of every element; ``codeset`` and ``identifier`` say what it is."""

    IDENTIFIER: ClassVar[int] = -1
    NAME: ClassVar[str] = "information element"

    @property
    def codeset(self) -> int:
        return 0

    @property
    def identifier(self) -> int:
        return self.IDENTIFIER

    @property
    def single_octet(self) -> bool:
        return False

    def contents(self) -> bytes:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        if self.single_octet:
            return bytes((self.identifier,))
        body = self.contents()
        if len(body) > 255:
            raise Q931Error(Q931Problem.FIELD_OUT_OF_RANGE, f"{self.NAME}: {len(body)} octets")
        return bytes((self.identifier, len(body))) + body


@dataclass(frozen=True)
class RawIe(InformationElement):
    """An element kept as it came: unknown, of another codeset, or not parseable."""

    raw_codeset: int = 0
    raw_identifier: int = 0
    raw_contents: bytes = b""  # for a single-octet element: empty
    problem: Q931Problem | None = None  # why a known element was not parsed

    @property
    def codeset(self) -> int:
        return self.raw_codeset

    @property
    def identifier(self) -> int:
        return self.raw_identifier

    @property
    def single_octet(self) -> bool:
        return bool(self.raw_identifier & 0x80)

    def contents(self) -> bytes:
        return self.raw_contents


@dataclass(frozen=True)
class Shift(InformationElement):
    """Locking (the rest of the message) or non-locking (the next element) codeset shift."""

    target_codeset: int = 0
    locking: bool = True

    @property
    def identifier(self) -> int:
        return 0x90 | (0 if self.locking else 0x08) | self.target_codeset

    @property
    def single_octet(self) -> bool:
        return True

    def __post_init__(self) -> None:
        _check("codeset", self.target_codeset, 3)


@dataclass(frozen=True)
class SendingComplete(InformationElement):
    IDENTIFIER: ClassVar[int] = 0xA1
    NAME: ClassVar[str] = "sending complete"

    @property
    def single_octet(self) -> bool:
        return True


@dataclass(frozen=True)
class MoreData(InformationElement):
    IDENTIFIER: ClassVar[int] = 0xA0
    NAME: ClassVar[str] = "more data"

    @property
    def single_octet(self) -> bool:
        return True


@dataclass(frozen=True)
class CongestionLevel(InformationElement):
    IDENTIFIER: ClassVar[int] = 0xB0
    NAME: ClassVar[str] = "congestion level"
    level: int = 0  # 0 receiver ready, 15 receiver not ready

    @property
    def identifier(self) -> int:
        return 0xB0 | self.level

    @property
    def single_octet(self) -> bool:
        return True

    def __post_init__(self) -> None:
        _check("congestion level", self.level, 4)


@dataclass(frozen=True)
class RepeatIndicator(InformationElement):
    IDENTIFIER: ClassVar[int] = 0xD0
    NAME: ClassVar[str] = "repeat indicator"
    indication: int = 2  # 2: prioritized list for selecting one possibility

    @property
    def identifier(self) -> int:
        return 0xD0 | self.indication

    @property
    def single_octet(self) -> bool:
        return True

    def __post_init__(self) -> None:
        _check("repeat indication", self.indication, 4)


@dataclass(frozen=True)
class BearerCapability(InformationElement):
    """Octets 3 (capability), 4 (mode, rate), 4.1 (multiplier), 5/6/7 (layers 1/2/3)."""

    IDENTIFIER: ClassVar[int] = IeIdentifier.BEARER_CAPABILITY
    NAME: ClassVar[str] = "bearer capability"
    transfer_capability: int = TransferCapability.SPEECH
    transfer_mode: int = 0  # 0 circuit, 2 packet
    transfer_rate: int = 0x10  # 64 kbit/s (0x18: multirate, with rate_multiplier)
    coding_standard: int = CodingStandard.ITU_T
    rate_multiplier: int | None = None
    layer1_protocol: int | None = Layer1Protocol.G711_A_LAW
    layer1_extra: bytes = b""  # octets 5a-5d as sent
    layer2_protocol: int | None = None
    layer3_protocol: int | None = None
    layer3_extra: bytes = b""  # octets 7a-7b as sent

    def contents(self) -> bytes:
        _check("transfer capability", self.transfer_capability, 5)
        _check("transfer rate", self.transfer_rate, 5)
        _check("transfer mode", self.transfer_mode, 2)
        _check("coding standard", self.coding_standard, 2)
        if self.rate_multiplier is not None:
            _check("rate multiplier", self.rate_multiplier, 7)
        out = bytearray(
            (
                0x80 | self.coding_standard << 5 | self.transfer_capability,
                0x80 | self.transfer_mode << 5 | self.transfer_rate,
            )
        )
        if self.rate_multiplier is not None:
            out.append(0x80 | self.rate_multiplier)
        for layer, protocol, extra in (
            (1, self.layer1_protocol, self.layer1_extra),
            (2, self.layer2_protocol, b""),
            (3, self.layer3_protocol, self.layer3_extra),
        ):
            if protocol is not None:
                _check(f"layer {layer} protocol", protocol, 5)
                out.append((0 if extra else 0x80) | layer << 5 | protocol)
                out += extra
        return bytes(out)

    @classmethod
    def from_contents(cls, contents: bytes) -> BearerCapability:
        groups = octet_groups(contents)
        if len(groups) < 2:
            raise _contents_error(cls.NAME, f"{len(contents)} octets, octets 3 and 4 needed")
        capability, mode = groups[0][0], groups[1][0]
        rest = groups[2:]
        multiplier = None
        if mode & 0x1F == 0x18 and rest and rest[0][0] & 0x60 == 0:  # 4.1 has no layer id
            multiplier = rest.pop(0)[0] & 0x7F
        layers: dict[int, bytes] = {}
        for group in rest:
            layers.setdefault(group[0] >> 5 & 0x03, group)
        layer1, layer2, layer3 = (layers.get(layer) for layer in (1, 2, 3))
        return cls(
            transfer_capability=capability & 0x1F,
            transfer_mode=mode >> 5 & 0x03,
            transfer_rate=mode & 0x1F,
            coding_standard=capability >> 5 & 0x03,
            rate_multiplier=multiplier,
            layer1_protocol=layer1[0] & 0x1F if layer1 else None,
            layer1_extra=layer1[1:] if layer1 else b"",
            layer2_protocol=layer2[0] & 0x1F if layer2 else None,
            layer3_protocol=layer3[0] & 0x1F if layer3 else None,
            layer3_extra=layer3[1:] if layer3 else b"",
        )


@dataclass(frozen=True)
class Cause(InformationElement):
    """Q.850: coding standard, location (octet 3), recommendation (3a), value (4), diagnostics."""

    IDENTIFIER: ClassVar[int] = IeIdentifier.CAUSE
    NAME: ClassVar[str] = "cause"
    value: int = CauseValue.NORMAL_CLEARING
    location: int = Location.USER
    coding_standard: int = CodingStandard.ITU_T
    recommendation: int | None = None
    diagnostics: bytes = b""

    def contents(self) -> bytes:
        _check("cause value", self.value, 7)
        _check("location", self.location, 4)
        _check("coding standard", self.coding_standard, 2)
        if self.recommendation is not None:
            _check("recommendation", self.recommendation, 7)
        octet3 = self.coding_standard << 5 | self.location
        if self.recommendation is None:
            head = bytes((0x80 | octet3,))
        else:
            head = bytes((octet3, 0x80 | self.recommendation))
        return head + bytes((0x80 | self.value,)) + self.diagnostics

    @classmethod
    def from_contents(cls, contents: bytes) -> Cause:
        if len(contents) < 2:
            raise _contents_error(cls.NAME, f"{len(contents)} octets, at least 2 needed")
        octet3 = contents[0]
        index = 1
        recommendation = None
        if not octet3 & 0x80:
            recommendation = contents[1] & 0x7F
            index = 2
            if len(contents) < 3:
                raise _contents_error(cls.NAME, "octet 3a but no cause value")
        return cls(
            value=contents[index] & 0x7F,
            location=octet3 & 0x0F,
            coding_standard=octet3 >> 5 & 0x03,
            recommendation=recommendation,
            diagnostics=contents[index + 1 :],
        )


@dataclass(frozen=True)
class CallState(InformationElement):
    IDENTIFIER: ClassVar[int] = IeIdentifier.CALL_STATE
    NAME: ClassVar[str] = "call state"
    state: int = CallStateValue.NULL
    coding_standard: int = CodingStandard.ITU_T

    def contents(self) -> bytes:
        _check("call state", self.state, 6)
        _check("coding standard", self.coding_standard, 2)
        return bytes((self.coding_standard << 6 | self.state,))

    @classmethod
    def from_contents(cls, contents: bytes) -> CallState:
        if not contents:
            raise _contents_error(cls.NAME, "empty")
        return cls(state=contents[0] & 0x3F, coding_standard=contents[0] >> 6)


@dataclass(frozen=True)
class ChannelIdentification(InformationElement):
    """Which B-channel: octet 3 (interface type, exclusive, D-channel, selection), 3.1
    (interface identifier), 3.2 (number or map, channel type), 3.3 (numbers or map)."""

    IDENTIFIER: ClassVar[int] = IeIdentifier.CHANNEL_IDENTIFICATION
    NAME: ClassVar[str] = "channel identification"
    channels: tuple[int, ...] = ()  # channel numbers (on an E1: the timeslots)
    exclusive: bool = False  # False: only preferred
    primary_rate: bool = True  # interface type: 1 = other (primary rate), 0 = basic
    d_channel: bool = False
    selection: int = ChannelSelection.AS_INDICATED
    interface_identifier: bytes | None = None  # octets 3.1, ext bits as sent
    coding_standard: int = CodingStandard.ITU_T
    slot_map: bytes | None = None  # number/map = 1: a slot map instead of numbers
    channel_type: int = 3  # B-channel units

    @property
    def channel(self) -> int | None:
        """The (first) channel: a PRI channel number, or 1/2 for B1/B2 on a BRI."""
        if not self.primary_rate:
            return self.selection if self.selection in (1, 2) else None
        return self.channels[0] if self.channels else None

    def _follows(self) -> bool:
        return self.primary_rate and self.selection == ChannelSelection.AS_INDICATED

    def contents(self) -> bytes:
        _check("selection", self.selection, 2)
        _check("coding standard", self.coding_standard, 2)
        _check("channel type", self.channel_type, 4)
        out = bytearray(
            (
                0x80
                | (0x40 if self.interface_identifier is not None else 0)
                | (0x20 if self.primary_rate else 0)
                | (0x08 if self.exclusive else 0)
                | (0x04 if self.d_channel else 0)
                | self.selection,
            )
        )
        if self.interface_identifier is not None:
            out += self.interface_identifier
        if self._follows():
            is_map = self.slot_map is not None
            out.append(
                0x80 | self.coding_standard << 5 | (0x10 if is_map else 0) | self.channel_type
            )
            if self.slot_map is not None:
                out += self.slot_map
            else:
                for index, number in enumerate(self.channels):
                    _check("channel number", number, 7)
                    out.append(number | (0x80 if index == len(self.channels) - 1 else 0))
        return bytes(out)

    @classmethod
    def from_contents(cls, contents: bytes) -> ChannelIdentification:
        if not contents:
            raise _contents_error(cls.NAME, "empty")
        octet3 = contents[0]
        index = 1
        interface_identifier = None
        if octet3 & 0x40:
            end = index
            while end < len(contents) and not contents[end] & 0x80:
                end += 1
            if end >= len(contents):
                raise _contents_error(cls.NAME, "interface identifier runs past the end")
            interface_identifier = contents[index : end + 1]
            index = end + 1
        fields = {
            "exclusive": bool(octet3 & 0x08),
            "primary_rate": bool(octet3 & 0x20),
            "d_channel": bool(octet3 & 0x04),
            "selection": octet3 & 0x03,
            "interface_identifier": interface_identifier,
        }
        if not (fields["primary_rate"] and fields["selection"] == ChannelSelection.AS_INDICATED):
            return cls(**fields)  # type: ignore[arg-type]
        if index >= len(contents):
            raise _contents_error(cls.NAME, "channel indicated but octet 3.2 missing")
        octet32 = contents[index]
        following = contents[index + 1 :]
        if not following:
            raise _contents_error(cls.NAME, "channel indicated but no channel number")
        if octet32 & 0x10:
            return cls(
                coding_standard=octet32 >> 5 & 0x03,
                slot_map=following,
                channel_type=octet32 & 0x0F,
                **fields,  # type: ignore[arg-type]
            )
        return cls(
            channels=tuple(octet & 0x7F for octet in following),
            coding_standard=octet32 >> 5 & 0x03,
            channel_type=octet32 & 0x0F,
            **fields,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class ProgressIndicator(InformationElement):
    IDENTIFIER: ClassVar[int] = IeIdentifier.PROGRESS_INDICATOR
    NAME: ClassVar[str] = "progress indicator"
    description: int = ProgressDescription.IN_BAND_INFORMATION
    location: int = Location.USER
    coding_standard: int = CodingStandard.ITU_T

    def contents(self) -> bytes:
        _check("progress description", self.description, 7)
        _check("location", self.location, 4)
        _check("coding standard", self.coding_standard, 2)
        return bytes((0x80 | self.coding_standard << 5 | self.location, 0x80 | self.description))

    @classmethod
    def from_contents(cls, contents: bytes) -> ProgressIndicator:
        if len(contents) < 2:
            raise _contents_error(cls.NAME, f"{len(contents)} octets, 2 needed")
        return cls(
            description=contents[1] & 0x7F,
            location=contents[0] & 0x0F,
            coding_standard=contents[0] >> 5 & 0x03,
        )


@dataclass(frozen=True)
class Display(InformationElement):
    """IA5 text for the user's display (ETSI: characters only, no display type octet)."""

    IDENTIFIER: ClassVar[int] = IeIdentifier.DISPLAY
    NAME: ClassVar[str] = "display"
    text: str = ""

    def contents(self) -> bytes:
        return self.text.encode("latin-1")

    @classmethod
    def from_contents(cls, contents: bytes) -> Display:
        return cls(text=_text(contents))


@dataclass(frozen=True)
class DateTime(InformationElement):
    """Year (two digits), month, day, and optionally hour, minute, second, as sent."""

    IDENTIFIER: ClassVar[int] = IeIdentifier.DATE_TIME
    NAME: ClassVar[str] = "date/time"
    year: int = 0
    month: int = 1
    day: int = 1
    hour: int | None = None
    minute: int | None = None
    second: int | None = None

    def contents(self) -> bytes:
        values = [self.year, self.month, self.day, self.hour, self.minute, self.second]
        present = [value for value in values if value is not None]
        for value in present:
            _check("date/time field", value, 8)
        return bytes(present)

    @classmethod
    def from_contents(cls, contents: bytes) -> DateTime:
        if len(contents) < 3:
            raise _contents_error(cls.NAME, f"{len(contents)} octets, at least 3 needed")
        parts: list[int | None] = [*contents[:6], *([None] * (6 - min(6, len(contents))))]
        return cls(*parts)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PartyNumber(InformationElement):
    """Octet 3 (type of number, plan), 3a (presentation, screening), digits (IA5)."""

    digits: str = ""
    type_of_number: int = TypeOfNumber.UNKNOWN
    numbering_plan: int = NumberingPlan.ISDN
    presentation: int | None = None  # octet 3a is sent when either is set
    screening: int | None = None

    HAS_OCTET_3A: ClassVar[bool] = True

    def _octet3a(self) -> bytes:
        if not self.HAS_OCTET_3A or (self.presentation is None and self.screening is None):
            return b""
        return bytes(((self.presentation or 0) << 5 | (self.screening or 0),))

    def _head(self, extra: bytes) -> bytes:
        _check("type of number", self.type_of_number, 3)
        _check("numbering plan", self.numbering_plan, 4)
        octet3 = self.type_of_number << 4 | self.numbering_plan
        if not extra:
            return bytes((0x80 | octet3,))
        return bytes((octet3,)) + extra[:-1] + bytes((extra[-1] | 0x80,))

    def contents(self) -> bytes:
        return self._head(self._octet3a()) + self.digits.encode("latin-1")

    @classmethod
    def _parse(cls, contents: bytes) -> tuple[dict[str, int | None], bytes, str]:
        if not contents:
            raise _contents_error(cls.NAME, "empty")
        head = octet_groups(contents)[0]
        if not head[-1] & 0x80:
            raise _contents_error(cls.NAME, "octet 3 group does not end")
        fields: dict[str, int | None] = {
            "type_of_number": head[0] >> 4 & 0x07,
            "numbering_plan": head[0] & 0x0F,
        }
        extra = head[1:]
        if cls.HAS_OCTET_3A and extra:
            fields["presentation"] = extra[0] >> 5 & 0x03
            fields["screening"] = extra[0] & 0x03
        return fields, extra, _text(contents[len(head) :])

    @classmethod
    def from_contents(cls, contents: bytes) -> Self:
        fields, _, digits = cls._parse(contents)
        return cls(digits, **fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CallingPartyNumber(PartyNumber):
    IDENTIFIER: ClassVar[int] = IeIdentifier.CALLING_PARTY_NUMBER
    NAME: ClassVar[str] = "calling party number"


@dataclass(frozen=True)
class CalledPartyNumber(PartyNumber):
    """Octet 3 only: no presentation or screening."""

    IDENTIFIER: ClassVar[int] = IeIdentifier.CALLED_PARTY_NUMBER
    NAME: ClassVar[str] = "called party number"
    HAS_OCTET_3A: ClassVar[bool] = False


@dataclass(frozen=True)
class RedirectingNumber(PartyNumber):
    """Adds octet 3b: the reason for redirection (1 busy, 2 no reply, 15 unconditional...)."""

    IDENTIFIER: ClassVar[int] = IeIdentifier.REDIRECTING_NUMBER
    NAME: ClassVar[str] = "redirecting number"
    reason: int | None = None

    def contents(self) -> bytes:
        extra = self._octet3a()
        if self.reason is not None:
            _check("reason for redirection", self.reason, 4)
            extra = extra or bytes(((self.presentation or 0) << 5 | (self.screening or 0),))
            extra += bytes((self.reason,))
        return self._head(extra) + self.digits.encode("latin-1")

    @classmethod
    def from_contents(cls, contents: bytes) -> Self:
        fields, extra, digits = cls._parse(contents)
        reason = extra[1] & 0x0F if len(extra) > 1 else None
        return cls(digits, reason=reason, **fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RestartIndicator(InformationElement):
    IDENTIFIER: ClassVar[int] = IeIdentifier.RESTART_INDICATOR
    NAME: ClassVar[str] = "restart indicator"
    restart_class: int = RestartClass.ALL_INTERFACES

    def contents(self) -> bytes:
        _check("restart class", self.restart_class, 3)
        return bytes((0x80 | self.restart_class,))

    @classmethod
    def from_contents(cls, contents: bytes) -> RestartIndicator:
        if not contents:
            raise _contents_error(cls.NAME, "empty")
        return cls(restart_class=contents[0] & 0x07)


VARIABLE_CODESET_0: dict[int, type[InformationElement]] = {
    kind.IDENTIFIER: kind
    for kind in (
        BearerCapability,
        Cause,
        CallState,
        ChannelIdentification,
        ProgressIndicator,
        Display,
        DateTime,
        CallingPartyNumber,
        CalledPartyNumber,
        RedirectingNumber,
        RestartIndicator,
    )
}
