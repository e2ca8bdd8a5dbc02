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


# Line readiness (drivers.gsm.probe) -------------------------------------------------
#
#     +CPIN: READY | SIM PIN | SIM PUK | ...     AT+CPIN?; no SIM: +CME ERROR: 10 (or text)
#     +COPS: <mode>[,<format>,"<oper>"[,<AcT>]]  <format> 0 long name, 2 numeric MCC+MNC
#         <AcT> 0 GSM, 1 GSM compact, 2 UTRAN, 3 EGPRS, 4-6 HSPA, 7 E-UTRAN, 8 EC-GSM-IoT,
#         9 E-UTRAN NB-S1, 10 E-UTRA 5GCN, 11 NR 5GCN, 12 NG-RAN, 13 E-UTRA-NR
#     +CIREG: <n>,<reg_info>[,<ext_info>]        IMS registration: 0 not registered, 1 registered
#     Quectel  +QNWINFO: "<act>","<oper>","<band>",<channel>      "FDD LTE", "GSM", "No Service"
#              +QENG: "servingcell","<state>","LTE","<FDD|TDD>",<mcc>,<mnc>,<cellid>,<pcid>,
#                     <earfcn>,<band>,<ul bw>,<dl bw>,<tac>,<rsrp>,<rsrq>,<rssi>,<sinr>,...
#                     (EC25 <sinr> in 1/5 dB from -20: dB = sinr / 5 - 20)
#              +QCFG: "ims",<mode>[,<volte ready>]    <mode> 0 per MBN, 1 on, 2 off
#     SIMCom   +CPSI: LTE,Online,<mcc>-<mnc>,<tac>,<cell>,<pcid>,<band>,<earfcn>,<dlbw>,<ulbw>,
#                     <rsrq>,<rsrp>,<rssi>,<rssnr>      rsrq/rsrp/rssi in 1/10 dB, rssnr dB
#              +CPSI: GSM,Online,<mcc>-<mnc>,<lac>,<cell>,...     +CPSI: NO SERVICE,Online
#     Huawei   ^SYSINFOEX: <srv>,<domain>,<roam>,<sim>,<lock>,<sysmode>,"<name>",<sub>,"<name>"
#              <sysmode> 0 none, 1 GSM, 3 WCDMA, 4 TD-SCDMA, 6 LTE, 7 NR

CME_SIM_STATES = {
    10: "not_inserted",
    11: "pin_required",
    12: "puk_required",
    13: "failure",
    14: "busy",
    15: "wrong",
}
_CME_TEXT_SIM_STATES = {
    "sim not inserted": "not_inserted",
    "sim pin required": "pin_required",
    "sim puk required": "puk_required",
    "sim failure": "failure",
    "sim busy": "busy",
    "sim wrong": "wrong",
}
CPIN_STATES = {
    "READY": "ready",
    "SIM PIN": "pin_required",
    "SIM PUK": "puk_required",
    "SIM PIN2": "pin2_required",
    "SIM PUK2": "puk2_required",
    "PH-SIM PIN": "phone_lock",
    "NOT INSERTED": "not_inserted",  # some firmware answers so instead of +CME ERROR: 10
    "NOT READY": "busy",
}
REGISTRATION_NAMES = {
    0: "not_searching",
    1: "home",
    2: "searching",
    3: "denied",
    4: "unknown",
    5: "roaming",
    6: "home",  # SMS only (LTE); 27.007 6..10 are registered variants
    7: "roaming",
    8: "emergency_only",
    9: "home",
    10: "roaming",
}
_COPS_RATS = {0: "gsm", 1: "gsm", 2: "umts", 3: "gsm", 4: "umts", 5: "umts", 6: "umts"}
_COPS_RATS |= {7: "lte", 8: "gsm", 9: "lte", 10: "lte", 11: "nr", 12: "nr", 13: "lte"}
_SYSINFOEX_RATS = {1: "gsm", 2: "cdma", 3: "umts", 4: "umts", 6: "lte", 7: "nr"}


def sim_state_from_error(final: str) -> str | None:
    """The SIM state an error to a SIM query names (+CME ERROR: 10 -> not_inserted)."""
    if not final.startswith("+CME ERROR:"):
        return None
    detail = final[len("+CME ERROR:") :].strip()
    code = _int_or_none(detail)
    if code is not None:
        return CME_SIM_STATES.get(code)
    return _CME_TEXT_SIM_STATES.get(detail.lower())


def parse_cpin(line: str) -> str:
    """``+CPIN: READY`` -> "ready", ``SIM PIN`` -> "pin_required"; unknown codes lowercased."""
    code = _fields(line, "+CPIN:")[0].upper()
    return CPIN_STATES.get(code, code.lower().replace(" ", "_") or "unknown")


def parse_registration_read(line: str) -> tuple[str, int, int | None]:
    """(technology, <stat>, <AcT> or None) of a ``+CREG?``/``+CGREG?``/``+CEREG?`` answer."""
    prefix = line.split(":", 1)[0] + ":"
    fields = _fields(line, prefix)
    status = _int_or_none(fields[1]) if len(fields) > 1 else None
    if status is None or status not in REGISTRATION_NAMES:
        raise ValueError(f"registration answer without a valid <stat>: {line!r}")
    act = _int_or_none(fields[4]) if len(fields) > 4 else None
    return prefix[1:-1], status, act


@dataclass(frozen=True)
class Operator:
    """``+COPS?``: the operator in the format asked for, and the radio technology."""

    mode: int
    format: int | None
    name: str | None
    rat: str | None


def parse_cops(line: str) -> Operator:
    fields = _fields(line, "+COPS:")
    mode = _int_or_none(fields[0])
    if mode is None:
        raise ValueError("+COPS without a mode")
    form = _int_or_none(fields[1]) if len(fields) > 1 else None
    name = fields[2] if len(fields) > 2 and fields[2] else None
    act = _int_or_none(fields[3]) if len(fields) > 3 else None
    return Operator(mode, form, name, _COPS_RATS.get(act) if act is not None else None)


def parse_cireg(line: str) -> bool:
    """Whether ``+CIREG: <n>,<reg_info>`` says IMS registered."""
    fields = _fields(line, "+CIREG:")
    if len(fields) < 2 or _int_or_none(fields[1]) is None:
        raise ValueError("+CIREG without <reg_info>")
    return fields[1] == "1"


def parse_quectel_ims(line: str) -> tuple[int, bool | None]:
    """(mode, VoLTE ready or None) of ``+QCFG: "ims",<mode>[,<state>]``."""
    fields = _fields(line, "+QCFG:")
    if len(fields) < 2 or fields[0].lower() != "ims":
        raise ValueError('expected +QCFG: "ims",...')
    mode = _int_or_none(fields[1])
    if mode is None:
        raise ValueError("+QCFG ims mode is not a number")
    ready = _int_or_none(fields[2]) if len(fields) > 2 else None
    return mode, None if ready is None else ready == 1


def parse_qnwinfo(line: str) -> tuple[str | None, str | None]:
    """(rat, numeric operator) of ``+QNWINFO: "FDD LTE","51010","LTE BAND 3",1300``."""
    fields = _fields(line, "+QNWINFO:")
    act = fields[0].upper()
    if "NO SERVICE" in act:
        return None, None
    rat = "lte" if "LTE" in act else "nr" if "NR" in act else None
    if rat is None:
        rat = "gsm" if act in ("GSM", "GPRS", "EDGE") else "umts" if act else None
    operator = fields[1] if len(fields) > 1 and fields[1].isdigit() else None
    return rat, operator


@dataclass(frozen=True)
class ServingCell:
    """Radio measurements of the serving cell (None where the answer lacks them)."""

    rat: str | None
    operator_code: str | None = None
    rsrp_dbm: float | None = None
    rsrq_db: float | None = None
    sinr_db: float | None = None
    rssi_dbm: float | None = None


def _float_or_none(value: str, scale: float = 1.0) -> float | None:
    try:
        return round(float(value) * scale, 1)
    except ValueError:
        return None


def parse_qeng_servingcell(line: str) -> ServingCell:
    """A Quectel ``+QENG: "servingcell",...`` answer (LTE measurements; others: the RAT)."""
    fields = _fields(line, "+QENG:")
    if len(fields) < 2 or fields[0].lower() != "servingcell":
        raise ValueError('expected +QENG: "servingcell",...')
    if fields[1].upper() == "SEARCH" or len(fields) < 3:
        return ServingCell(None)
    act = fields[2].upper()
    if act == "LTE" and len(fields) >= 17:
        sinr = _float_or_none(fields[16])
        return ServingCell(
            "lte",
            operator_code=f"{fields[4]}{int(fields[5]):02d}" if fields[5].isdigit() else None,
            rsrp_dbm=_float_or_none(fields[13]),
            rsrq_db=_float_or_none(fields[14]),
            rssi_dbm=_float_or_none(fields[15]),
            sinr_db=None if sinr is None else round(sinr / 5 - 20, 1),
        )
    rat = {"GSM": "gsm", "WCDMA": "umts", "LTE": "lte"}.get(act)
    if rat is None and act.startswith("NR5G"):
        rat = "nr"
    return ServingCell(rat)


def parse_cpsi(line: str) -> ServingCell:
    """A SIMCom ``+CPSI:`` answer."""
    fields = _fields(line, "+CPSI:")
    mode = fields[0].upper()
    if mode.startswith("NO SERVICE"):
        return ServingCell(None)
    operator = fields[2].replace("-", "") if len(fields) > 2 and "-" in fields[2] else None
    if mode == "LTE" and len(fields) >= 14:
        return ServingCell(
            "lte",
            operator_code=operator,
            rsrq_db=_float_or_none(fields[10], 0.1),
            rsrp_dbm=_float_or_none(fields[11], 0.1),
            rssi_dbm=_float_or_none(fields[12], 0.1),
            sinr_db=_float_or_none(fields[13]),
        )
    rat = {"GSM": "gsm", "WCDMA": "umts", "LTE": "lte"}.get(mode)
    return ServingCell(rat, operator_code=operator)


def parse_sysinfoex(line: str) -> tuple[str | None, bool]:
    """(rat, roaming) of a Huawei ``^SYSINFOEX:`` answer."""
    fields = [field.strip('"') for field in line.split(":", 1)[-1].split(",")]
    if not line.startswith("^SYSINFOEX:") or len(fields) < 6:
        raise ValueError("expected ^SYSINFOEX: with at least 6 fields")
    service = _int_or_none(fields[0].strip())
    sysmode = _int_or_none(fields[5].strip())
    rat = _SYSINFOEX_RATS.get(sysmode) if sysmode is not None and service == 2 else None
    return rat, fields[2].strip() == "1"
