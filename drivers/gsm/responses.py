"""Parsers for the 3GPP TS 27.007 lines a GSM driver reads: +CLIP, +CLCC, +CSQ, +CREG.

Pure functions from one text line to a typed value, so every modem dialect
shares them and tests can feed literal lines. Field layouts::

    +CLIP: <number>,<type>[,<subaddr>,<satype>,<alpha>,<CLI validity>]
        SIM800  +CLIP: "+6281234567890",145,"",0,"",0
        Huawei  +CLIP: "+6281234567890",145,,,,0     withheld: +CLIP: "",128,,,,1
        <CLI validity> 0 number given, 1 withheld by the caller, 2 not available
    +CLCC: <id>,<dir>,<stat>,<mode>,<mpty>[,<number>,<type>[,<alpha>]]
        <dir> 0 outgoing, 1 incoming; <stat> 0 active ... 4 incoming (ringing),
        5 waiting; <mode> 0 voice, 1 data (EC25 lists its data session so), 2 fax
    +CSQ: <rssi>,<ber>        <rssi> 0..31 -> -113..-51 dBm, 99 unknown
    +CREG: <n>,<stat>[,...]   <stat> 1 registered (home), 5 registered (roaming)
    +CREG: <stat>[,<lac>,<ci>[,<AcT>]]        the same as a URC (AT+CREG=1 or 2): no <n>
        <stat> 0 not searching, 1 home, 2 searching, 3 denied, 4 unknown, 5 roaming
    +CMTI: "<mem>",<index>    a new message stored (27.005); +CDSI the same for a status report
    +CMGR: <stat>,[<alpha>],<length>          then the PDU on the next line (PDU mode)
    +CMGL: <index>,<stat>,[<alpha>],<length>  then the PDU, for each message listed
    +CPMS: "<mem1>",<used1>,<total1>,...      the query; after a set: <used1>,<total1>,...
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from enum import IntEnum

from gateway.events import Presentation

INTERNATIONAL_NUMBER_TYPE = 145  # 3GPP TS 24.008 type of number: international, ISDN plan
RSSI_UNKNOWN = 99
REGISTERED_STATES = frozenset({1, 5})

_CLI_VALIDITY = {
    0: Presentation.ALLOWED,
    1: Presentation.RESTRICTED,
    2: Presentation.UNAVAILABLE,
}


class CallDirection(IntEnum):
    OUTGOING = 0
    INCOMING = 1


class CallStatus(IntEnum):
    ACTIVE = 0
    HELD = 1
    DIALING = 2
    ALERTING = 3
    INCOMING = 4
    WAITING = 5


class CallMode(IntEnum):
    VOICE = 0
    DATA = 1
    FAX = 2


@dataclass(frozen=True)
class CallerId:
    number: str | None
    presentation: Presentation


@dataclass(frozen=True)
class CallRecord:
    """One +CLCC line."""

    index: int
    direction: int
    status: int
    mode: int
    number: str | None

    @property
    def is_voice(self) -> bool:
        return self.mode == CallMode.VOICE


def _fields(line: str, prefix: str) -> list[str]:
    """The comma separated fields after ``prefix``, quotes removed; ValueError if absent."""
    if not line.startswith(prefix):
        raise ValueError(f"expected {prefix!r}")
    try:
        fields = next(csv.reader([line[len(prefix) :].strip()]), [])
    except csv.Error as exc:
        raise ValueError(str(exc)) from exc
    if not fields:
        raise ValueError(f"no fields after {prefix!r}")
    return [value.strip() for value in fields]


def _int_or_none(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def international(number: str, number_type: int | None) -> str:
    """Prefix ``+`` to a number of international type that lacks it."""
    if number_type == INTERNATIONAL_NUMBER_TYPE and number and not number.startswith("+"):
        return "+" + number
    return number


def parse_clip(line: str) -> CallerId:
    """A ``+CLIP:`` line; raises ValueError when it is not one."""
    fields = _fields(line, "+CLIP:")
    number = fields[0]
    number_type = _int_or_none(fields[1]) if len(fields) > 1 else None
    validity = _int_or_none(fields[5]) if len(fields) > 5 else None
    if validity is None:
        presentation = Presentation.ALLOWED if number else Presentation.UNAVAILABLE
    else:
        presentation = _CLI_VALIDITY.get(validity, Presentation.UNAVAILABLE)
    if presentation is not Presentation.ALLOWED:
        return CallerId(None, presentation)
    if not number:  # "number given" without a number: nothing to show
        return CallerId(None, Presentation.UNAVAILABLE)
    return CallerId(international(number, number_type), Presentation.ALLOWED)


def parse_clcc(line: str) -> CallRecord:
    """A ``+CLCC:`` line; raises ValueError when it is not one."""
    return parse_call_record(line, "+CLCC:")


def parse_call_record(line: str, prefix: str) -> CallRecord:
    """A call record in the +CLCC layout after ``prefix``; ValueError when it is not one."""
    fields = _fields(line, prefix)
    if len(fields) < 5:
        raise ValueError("a call record has at least 5 fields")
    index, direction, status, mode = (int(value) for value in fields[:4])
    number_type = _int_or_none(fields[6]) if len(fields) > 6 else None
    number = international(fields[5], number_type) if len(fields) > 5 and fields[5] else None
    return CallRecord(index, direction, status, mode, number)


def incoming_voice_calls(lines: list[str]) -> list[CallRecord]:
    """The incoming voice calls in an AT+CLCC response; data sessions and other lines skipped."""
    records = []
    for line in lines:
        try:
            record = parse_clcc(line)
        except ValueError:
            continue
        if record.is_voice and record.direction == CallDirection.INCOMING:
            records.append(record)
    return records


def parse_csq_dbm(line: str) -> int | None:
    """Signal strength in dBm from a ``+CSQ:`` line; None when the modem does not know."""
    rssi = int(_fields(line, "+CSQ:")[0])
    if rssi == RSSI_UNKNOWN or not 0 <= rssi <= 31:
        return None
    return -113 + 2 * rssi


def parse_registration(line: str) -> bool:
    """Whether a ``+CREG:``/``+CGREG:``/``+CEREG:`` read response says registered."""
    prefix = line.split(":", 1)[0] + ":"
    fields = _fields(line, prefix)
    status = _int_or_none(fields[1]) if len(fields) > 1 else None
    return status in REGISTERED_STATES


REGISTRATION_STATES = {
    0: "not registered, not searching",
    1: "registered (home)",
    2: "searching",
    3: "registration denied",
    4: "registration unknown",
    5: "registered (roaming)",
}


def parse_registration_urc(line: str) -> int:
    """The <stat> of a ``+CREG:``/``+CGREG:``/``+CEREG:`` URC (no <n> in front)."""
    prefix = line.split(":", 1)[0] + ":"
    status = _int_or_none(_fields(line, prefix)[0])
    if status is None or status not in REGISTRATION_STATES:
        raise ValueError(f"registration URC without a valid <stat>: {line!r}")
    return status


def parse_message_notice(line: str) -> tuple[str, int]:
    """(memory, index) of a ``+CMTI:`` or ``+CDSI:`` line."""
    prefix = line.split(":", 1)[0] + ":"
    fields = _fields(line, prefix)
    if len(fields) < 2:
        raise ValueError(f"{prefix} needs a memory and an index")
    index = _int_or_none(fields[1])
    if index is None or index < 0:
        raise ValueError(f"{prefix} index is not a number")
    return fields[0] or "SM", index


def parse_storage_usage(line: str) -> tuple[int, int]:
    """(used, total) of the first memory in a ``+CPMS:`` query answer or set answer."""
    fields = _fields(line, "+CPMS:")
    numbers = fields[1:3] if fields and not fields[0].isdigit() else fields[0:2]
    if len(numbers) < 2:
        raise ValueError("+CPMS without used and total")
    used, total = (_int_or_none(value) for value in numbers)
    if used is None or total is None:
        raise ValueError("+CPMS used/total are not numbers")
    return used, total


@dataclass(frozen=True)
class StoredMessageHeader:
    """The line before a PDU in +CMGR/+CMGL answers."""

    index: int | None  # +CMGL only
    status: int
    length: int  # TPDU octets (without the SMSC field)


def parse_message_header(line: str) -> StoredMessageHeader:
    """A ``+CMGR:`` or ``+CMGL:`` header line in PDU mode."""
    prefix = line.split(":", 1)[0] + ":"
    fields = _fields(line, prefix)
    index = None
    if prefix == "+CMGL:":
        index, fields = _int_or_none(fields[0]), fields[1:]
        if index is None:
            raise ValueError("+CMGL without an index")
    if len(fields) < 2:
        raise ValueError(f"{prefix} needs a status and a length")
    status, length = _int_or_none(fields[0]), _int_or_none(fields[-1])
    if status is None or length is None:
        raise ValueError(f"{prefix} status/length are not numbers")
    return StoredMessageHeader(index, status, length)
