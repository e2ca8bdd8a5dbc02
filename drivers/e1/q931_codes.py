"""Q.931 code points and the typed error: element identifiers, Q.850 causes and locations,
number types and plans, presentation and screening, call states, and ``Q931Error``.

Values are those of Q.931 (05/98) and Q.850; the IntEnums name the usual
ones and compare equal to plain integers, so an unusual value in a message is
kept as an int rather than refused.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Q931Problem(StrEnum):
    TRUNCATED_MESSAGE = "truncated_message"  # no protocol discriminator / CR / type
    BAD_PROTOCOL_DISCRIMINATOR = "bad_protocol_discriminator"
    BAD_CALL_REFERENCE = "bad_call_reference"  # length octet spare bits / too long
    TRUNCATED_IE = "truncated_ie"  # a variable-length IE without its length octet
    BAD_IE_LENGTH = "bad_ie_length"  # the length runs past the end of the message
    BAD_IE_CONTENTS = "bad_ie_contents"  # a known IE whose contents do not parse
    FIELD_OUT_OF_RANGE = "field_out_of_range"  # only when building a message


class Q931Error(ValueError):
    """Malformed Q.931; ``problem`` says what, ``offset`` where (octet in the message)."""

    def __init__(self, problem: Q931Problem, detail: str, offset: int | None = None) -> None:
        where = f" at octet {offset}" if offset is not None else ""
        super().__init__(f"{problem.value}{where}: {detail}")
        self.problem = problem
        self.offset = offset


# -- names for the usual values -----------------------------------------------------------


class IeIdentifier(IntEnum):
    """Variable-length information elements of codeset 0 (Q.931 Table 4-3)."""

    SEGMENTED_MESSAGE = 0x00
    BEARER_CAPABILITY = 0x04
    CAUSE = 0x08
    CALL_IDENTITY = 0x10
    CALL_STATE = 0x14
    CHANNEL_IDENTIFICATION = 0x18
    FACILITY = 0x1C
    PROGRESS_INDICATOR = 0x1E
    NETWORK_SPECIFIC_FACILITIES = 0x20
    NOTIFICATION_INDICATOR = 0x27
    DISPLAY = 0x28
    DATE_TIME = 0x29
    KEYPAD_FACILITY = 0x2C
    SIGNAL = 0x34
    CONNECTED_NUMBER = 0x4C
    CALLING_PARTY_NUMBER = 0x6C
    CALLING_PARTY_SUBADDRESS = 0x6D
    CALLED_PARTY_NUMBER = 0x70
    CALLED_PARTY_SUBADDRESS = 0x71
    REDIRECTING_NUMBER = 0x74
    REDIRECTION_NUMBER = 0x76
    TRANSIT_NETWORK_SELECTION = 0x78
    RESTART_INDICATOR = 0x79
    LOW_LAYER_COMPATIBILITY = 0x7C
    HIGH_LAYER_COMPATIBILITY = 0x7D
    USER_USER = 0x7E
    ESCAPE = 0x7F


class CodingStandard(IntEnum):
    ITU_T = 0
    ISO_IEC = 1
    NATIONAL = 2
    NETWORK_SPECIFIC = 3


class Location(IntEnum):
    """Q.850 location (cause and progress indicator)."""

    USER = 0
    PRIVATE_NETWORK_LOCAL_USER = 1
    PUBLIC_NETWORK_LOCAL_USER = 2
    TRANSIT_NETWORK = 3
    PUBLIC_NETWORK_REMOTE_USER = 4
    PRIVATE_NETWORK_REMOTE_USER = 5
    INTERNATIONAL_NETWORK = 7
    BEYOND_INTERWORKING_POINT = 10


class CauseValue(IntEnum):
    """Q.850 cause values a call centre sees most."""

    UNALLOCATED_NUMBER = 1
    NO_ROUTE_TO_DESTINATION = 3
    CHANNEL_UNACCEPTABLE = 6
    NORMAL_CLEARING = 16
    USER_BUSY = 17
    NO_USER_RESPONDING = 18
    NO_ANSWER = 19
    CALL_REJECTED = 21
    NUMBER_CHANGED = 22
    DESTINATION_OUT_OF_ORDER = 27
    INVALID_NUMBER_FORMAT = 28
    FACILITY_REJECTED = 29
    RESPONSE_TO_STATUS_ENQUIRY = 30
    NORMAL_UNSPECIFIED = 31
    NO_CIRCUIT_AVAILABLE = 34
    NETWORK_OUT_OF_ORDER = 38
    TEMPORARY_FAILURE = 41
    SWITCHING_EQUIPMENT_CONGESTION = 42
    REQUESTED_CHANNEL_NOT_AVAILABLE = 44
    RESOURCE_UNAVAILABLE = 47
    BEARER_CAPABILITY_NOT_AVAILABLE = 58
    SERVICE_NOT_AVAILABLE = 63
    BEARER_CAPABILITY_NOT_IMPLEMENTED = 65
    INVALID_CALL_REFERENCE = 81
    IDENTIFIED_CHANNEL_DOES_NOT_EXIST = 82
    INCOMPATIBLE_DESTINATION = 88
    INVALID_MESSAGE = 95
    MANDATORY_IE_MISSING = 96
    MESSAGE_TYPE_NONEXISTENT = 97
    MESSAGE_NOT_COMPATIBLE_WITH_CALL_STATE = 101
    IE_NONEXISTENT = 99
    INVALID_IE_CONTENTS = 100
    RECOVERY_ON_TIMER_EXPIRY = 102
    PROTOCOL_ERROR = 111
    INTERWORKING = 127


class TypeOfNumber(IntEnum):
    UNKNOWN = 0
    INTERNATIONAL = 1
    NATIONAL = 2
    NETWORK_SPECIFIC = 3
    SUBSCRIBER = 4
    ABBREVIATED = 6


class NumberingPlan(IntEnum):
    UNKNOWN = 0
    ISDN = 1  # E.164
    DATA = 3
    TELEX = 4
    NATIONAL = 8
    PRIVATE = 9


class Presentation(IntEnum):
    ALLOWED = 0
    RESTRICTED = 1
    NOT_AVAILABLE = 2  # number not available due to interworking


class Screening(IntEnum):
    USER_PROVIDED_NOT_SCREENED = 0
    USER_PROVIDED_VERIFIED_PASSED = 1
    USER_PROVIDED_VERIFIED_FAILED = 2
    NETWORK_PROVIDED = 3


class TransferCapability(IntEnum):
    SPEECH = 0x00
    UNRESTRICTED_DIGITAL = 0x08
    RESTRICTED_DIGITAL = 0x09
    AUDIO_3_1_KHZ = 0x10
    UNRESTRICTED_DIGITAL_WITH_TONES = 0x11
    VIDEO = 0x18


class Layer1Protocol(IntEnum):
    V110 = 0x01
    G711_MU_LAW = 0x02
    G711_A_LAW = 0x03
    G721 = 0x04


class ChannelSelection(IntEnum):
    """Octet 3 bits 2-1 of channel identification (PRI meaning; on BRI 1 = B1, 2 = B2)."""

    NO_CHANNEL = 0
    AS_INDICATED = 1
    RESERVED = 2
    ANY_CHANNEL = 3


class ProgressDescription(IntEnum):
    NOT_END_TO_END_ISDN = 1
    DESTINATION_NOT_ISDN = 2
    ORIGINATION_NOT_ISDN = 3
    RETURNED_TO_ISDN = 4
    INTERWORKING_CHANGED_SERVICE = 5
    IN_BAND_INFORMATION = 8


class RestartClass(IntEnum):
    INDICATED_CHANNELS = 0
    SINGLE_INTERFACE = 6
    ALL_INTERFACES = 7


class CallStateValue(IntEnum):
    NULL = 0
    CALL_INITIATED = 1
    OVERLAP_SENDING = 2
    OUTGOING_CALL_PROCEEDING = 3
    CALL_DELIVERED = 4
    CALL_PRESENT = 6
    CALL_RECEIVED = 7
    CONNECT_REQUEST = 8
    INCOMING_CALL_PROCEEDING = 9
    ACTIVE = 10
    DISCONNECT_REQUEST = 11
    DISCONNECT_INDICATION = 12
    SUSPEND_REQUEST = 15
    RESUME_REQUEST = 17
    RELEASE_REQUEST = 19
    OVERLAP_RECEIVING = 25
    RESTART_REQUEST = 61  # global call reference states
    RESTART = 62
