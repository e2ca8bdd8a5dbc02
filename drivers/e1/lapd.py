"""Q.921 LAPD frames (the ISDN D-channel data link layer) as dataclasses.

A LAPD frame, as the HDLC deframer hands it over (flags and FCS removed)::

    octet  8   7   6   5   4   3   2   1
      1  | SAPI (6 bits)           |C/R|EA0=0|   address
      2  | TEI (7 bits)                |EA1=1|
      3  | control: I  N(S)            | 0 |   modulo 128 (LAPD on ISDN always is)
      4  |          I  N(R)            | P |
      3  |          S  0 0 0 0 S S     | 0 1 | RR 0x01, RNR 0x05, REJ 0x09
      4  |          S  N(R)            |P/F|
      3  |          U  M M M P/F M M   | 1 1 | SABME 0x6F, DM 0x0F, UI 0x03, DISC 0x43,
         |                                   | UA 0x63, FRMR 0x87, XID 0xAF (P/F = 0x10)
     4.. | information (I, UI, FRMR, XID only; Q.931 for SAPI 0)

C/R (Q.921 Table 1): a command from the network side has C/R = 1, from the
user side C/R = 0; a response the opposite. I frames are always commands,
SABME, DISC and UI commands, UA, DM and FRMR responses; RR, RNR, REJ and
XID can be either, so the direction of those cannot be inferred.

TEI management (Q.921 5.3) runs in UI frames on SAPI 63, TEI 127::

    | management entity 0x0F | Ri (2 octets) | message type | Ai: TEI << 1 | E |

``LapdFrame.from_bytes`` returns an ``IFrame``, ``SFrame`` or ``UFrame`` and
raises ``LapdError`` (naming the problem) for anything malformed; ``to_bytes``
is its inverse. The passive link tracker is in ``lapd_monitor.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

# -- Q.921 parameters (section 5.9) -------------------------------------------------------
T200 = 1.0  # s: retransmission timer (a command waits this long for its response)
T203 = 10.0  # s: longest time without frames on an established link (then RR polls)
N200 = 3  # retransmissions before the link is given up
N201 = 260  # maximum octets in an information field
K_WINDOW = 7  # outstanding I frames, SAPI 0 on a primary rate interface
MODULUS = 128

SAPI_CALL_CONTROL = 0  # Q.931
SAPI_PACKET_MODE = 16  # X.25
SAPI_MANAGEMENT = 63  # TEI management
TEI_GROUP = 127  # broadcast / "any TEI"
MANAGEMENT_ENTITY = 0x0F

_POLL_FINAL = 0x10  # in a U frame's control octet


class Direction(StrEnum):
    """Who sent a frame; values as in ``edge112 e1 decode --json`` (``dir``)."""

    NETWORK_TO_USER = "n2u"
    USER_TO_NETWORK = "u2n"

    @property
    def reverse(self) -> Direction:
        if self is Direction.NETWORK_TO_USER:
            return Direction.USER_TO_NETWORK
        return Direction.NETWORK_TO_USER


class Supervisory(IntEnum):
    """S frame functions: the first control octet."""

    RR = 0x01  # receive ready
    RNR = 0x05  # receive not ready
    REJ = 0x09  # reject


class Unnumbered(IntEnum):
    """U frame functions: the control octet with P/F cleared."""

    SABME = 0x6F  # set asynchronous balanced mode extended: link establishment
    DM = 0x0F  # disconnected mode
    UI = 0x03  # unnumbered information
    DISC = 0x43  # disconnect
    UA = 0x63  # unnumbered acknowledgement
    FRMR = 0x87  # frame reject
    XID = 0xAF  # exchange identification


UNNUMBERED_COMMANDS = frozenset({Unnumbered.SABME, Unnumbered.DISC, Unnumbered.UI})
UNNUMBERED_RESPONSES = frozenset({Unnumbered.UA, Unnumbered.DM, Unnumbered.FRMR})
UNNUMBERED_WITH_INFORMATION = frozenset({Unnumbered.UI, Unnumbered.FRMR, Unnumbered.XID})


class TeiMessageType(IntEnum):
    """TEI management messages (Q.921 Table 8)."""

    IDENTITY_REQUEST = 1
    IDENTITY_ASSIGNED = 2
    IDENTITY_DENIED = 3
    IDENTITY_CHECK_REQUEST = 4
    IDENTITY_CHECK_RESPONSE = 5
    IDENTITY_REMOVE = 6
    IDENTITY_VERIFY = 7


class LapdProblem(StrEnum):
    """Why a frame is not valid LAPD."""

    TOO_SHORT = "too_short"
    ADDRESS_EXTENSION = "address_extension"  # EA bits: not a two-octet address
    CONTROL_TRUNCATED = "control_truncated"
    UNKNOWN_SUPERVISORY = "unknown_supervisory"
    UNKNOWN_UNNUMBERED = "unknown_unnumbered"
    INFORMATION_NOT_ALLOWED = "information_not_allowed"
    BAD_TEI_MANAGEMENT = "bad_tei_management"
    FIELD_OUT_OF_RANGE = "field_out_of_range"  # only when building a frame


class LapdError(ValueError):
    """A malformed LAPD frame; ``problem`` says what is wrong with it."""

    def __init__(self, problem: LapdProblem, detail: str) -> None:
        super().__init__(f"{problem.value}: {detail}")
        self.problem = problem


def _check_range(name: str, value: int, top: int) -> None:
    if not 0 <= value <= top:
        raise LapdError(LapdProblem.FIELD_OUT_OF_RANGE, f"{name} {value} not in 0..{top}")


# -- frames ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LapdFrame:
    """The address common to all frames; ``from_bytes`` returns the concrete kind."""

    sapi: int
    cr: int  # the C/R bit as sent (0 or 1)
    tei: int

    def __post_init__(self) -> None:
        _check_range("SAPI", self.sapi, 63)
        _check_range("C/R", self.cr, 1)
        _check_range("TEI", self.tei, 127)

    @property
    def information(self) -> bytes:
        return b""

    @property
    def is_command_kind(self) -> bool | None:
        """True for a command, False for a response, None when the kind can be either."""
        return None

    def is_command(self, direction: Direction) -> bool:
        """Q.921 Table 1: whether this frame, sent in ``direction``, is a command."""
        return self.cr == (1 if direction is Direction.NETWORK_TO_USER else 0)

    def direction(self) -> Direction | None:
        """The sender inferred from C/R when the frame kind fixes command or response."""
        command = self.is_command_kind
        if command is None:
            return None
        return infer_direction(self.cr, command=command)

    def _address(self) -> bytes:
        return bytes(((self.sapi << 2) | (self.cr << 1), (self.tei << 1) | 1))

    def to_bytes(self) -> bytes:
        raise NotImplementedError

    @staticmethod
    def from_bytes(data: bytes | bytearray | memoryview) -> IFrame | SFrame | UFrame:
        raw = bytes(data)
        if len(raw) < 3:
            raise LapdError(LapdProblem.TOO_SHORT, f"{len(raw)} octets, at least 3 needed")
        if raw[0] & 0x01:
            raise LapdError(LapdProblem.ADDRESS_EXTENSION, "EA0 is 1: one-octet address")
        if not raw[1] & 0x01:
            raise LapdError(LapdProblem.ADDRESS_EXTENSION, "EA1 is 0: address longer than 2")
        sapi, cr, tei = raw[0] >> 2, (raw[0] >> 1) & 1, raw[1] >> 1
        control = raw[2]
        if control & 0x01 == 0:
            if len(raw) < 4:
                raise LapdError(LapdProblem.CONTROL_TRUNCATED, "I frame without N(R) octet")
            return IFrame(sapi, cr, tei, control >> 1, raw[3] >> 1, bool(raw[3] & 1), raw[4:])
        if control & 0x03 == 0x01:
            if len(raw) < 4:
                raise LapdError(LapdProblem.CONTROL_TRUNCATED, "S frame without N(R) octet")
            try:
                function = Supervisory(control)
            except ValueError:
                raise LapdError(
                    LapdProblem.UNKNOWN_SUPERVISORY, f"S frame control 0x{control:02X}"
                ) from None
            if len(raw) > 4:
                raise LapdError(
                    LapdProblem.INFORMATION_NOT_ALLOWED,
                    f"{function.name} with {len(raw) - 4} information octets",
                )
            return SFrame(sapi, cr, tei, function, raw[3] >> 1, bool(raw[3] & 1))
        try:
            unnumbered = Unnumbered(control & ~_POLL_FINAL)
        except ValueError:
            raise LapdError(
                LapdProblem.UNKNOWN_UNNUMBERED, f"U frame control 0x{control:02X}"
            ) from None
        if len(raw) > 3 and unnumbered not in UNNUMBERED_WITH_INFORMATION:
            raise LapdError(
                LapdProblem.INFORMATION_NOT_ALLOWED,
                f"{unnumbered.name} with {len(raw) - 3} information octets",
            )
        return UFrame(sapi, cr, tei, unnumbered, bool(control & _POLL_FINAL), raw[3:])


@dataclass(frozen=True)
class IFrame(LapdFrame):
    """Numbered information (a Q.931 message on SAPI 0)."""

    ns: int = 0
    nr: int = 0
    poll: bool = False
    payload: bytes = b""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range("N(S)", self.ns, MODULUS - 1)
        _check_range("N(R)", self.nr, MODULUS - 1)

    @property
    def information(self) -> bytes:
        return self.payload

    @property
    def is_command_kind(self) -> bool | None:
        return True

    def to_bytes(self) -> bytes:
        return self._address() + bytes((self.ns << 1, (self.nr << 1) | self.poll)) + self.payload


@dataclass(frozen=True)
class SFrame(LapdFrame):
    """Supervisory: RR, RNR, REJ acknowledging up to N(R) - 1."""

    function: Supervisory = Supervisory.RR
    nr: int = 0
    poll_final: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range("N(R)", self.nr, MODULUS - 1)

    def to_bytes(self) -> bytes:
        return self._address() + bytes((self.function, (self.nr << 1) | self.poll_final))


@dataclass(frozen=True)
class UFrame(LapdFrame):
    """Unnumbered: link set-up and release, UI information, FRMR, XID."""

    function: Unnumbered = Unnumbered.UI
    poll_final: bool = False
    payload: bytes = b""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.payload and self.function not in UNNUMBERED_WITH_INFORMATION:
            raise LapdError(
                LapdProblem.INFORMATION_NOT_ALLOWED, f"{self.function.name} carries no information"
            )

    @property
    def information(self) -> bytes:
        return self.payload

    @property
    def is_command_kind(self) -> bool | None:
        if self.function in UNNUMBERED_COMMANDS:
            return True
        if self.function in UNNUMBERED_RESPONSES:
            return False
        return None

    def to_bytes(self) -> bytes:
        control = self.function | (_POLL_FINAL if self.poll_final else 0)
        return self._address() + bytes((control,)) + self.payload


def infer_direction(cr: int, *, command: bool) -> Direction:
    """Q.921 Table 1: network-side commands and user-side responses carry C/R = 1."""
    if command:
        return Direction.NETWORK_TO_USER if cr else Direction.USER_TO_NETWORK
    return Direction.USER_TO_NETWORK if cr else Direction.NETWORK_TO_USER


def cr_bit(direction: Direction, *, command: bool) -> int:
    """The C/R bit of a command (or response) sent in ``direction``."""
    network = direction is Direction.NETWORK_TO_USER
    return 1 if network == command else 0


# -- TEI management (SAPI 63) -----------------------------------------------------------


@dataclass(frozen=True)
class TeiManagement:
    """A TEI management message, the information field of a UI frame on SAPI 63."""

    message_type: TeiMessageType
    reference: int  # Ri: matches an assignment to its request
    tei: int  # Ai: the TEI (127: any / all)
    more_teis: tuple[int, ...] = field(default=())  # further Ai in an identity check response

    def to_bytes(self) -> bytes:
        teis = (self.tei, *self.more_teis)
        action = bytes(
            (tei << 1) | (1 if index == len(teis) - 1 else 0) for index, tei in enumerate(teis)
        )
        return (
            bytes((MANAGEMENT_ENTITY,))
            + self.reference.to_bytes(2, "big")
            + bytes((self.message_type,))
            + action
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> TeiManagement:
        raw = bytes(data)
        if len(raw) < 5:
            raise LapdError(LapdProblem.BAD_TEI_MANAGEMENT, f"{len(raw)} octets, at least 5 needed")
        if raw[0] != MANAGEMENT_ENTITY:
            raise LapdError(
                LapdProblem.BAD_TEI_MANAGEMENT, f"management entity 0x{raw[0]:02X}, not 0x0F"
            )
        try:
            message_type = TeiMessageType(raw[3])
        except ValueError:
            raise LapdError(
                LapdProblem.BAD_TEI_MANAGEMENT, f"unknown message type {raw[3]}"
            ) from None
        teis = tuple(octet >> 1 for octet in raw[4:])
        return cls(message_type, int.from_bytes(raw[1:3], "big"), teis[0], teis[1:])
