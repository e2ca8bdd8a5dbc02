"""GSM modem dialects: what each vendor adds to 3GPP TS 27.007, chosen by probing identity.

A dialect is a class with a command table (class constants) and a URC parser
that turns modem lines into typed signals (``Urc``). ``GenericDialect``
speaks plain 27.007/27.005; vendors subclass it, inherit its tables and
extend them, as bellows does for EZSP versions. ``pick_dialect`` maps the
identity read with ``AT+CGMI``/``AT+CGMM`` to a dialect; an unknown modem
gets the generic one.

Where the caller's number comes from, by vendor (the first that has it wins)::

    3GPP      +CLIP: "<number>",<type>,...     after each RING (AT+CLIP=1)
              +CRING: VOICE[,"<number>"]        some firmware appends the number
              +CLCC: <id>,1,4,0,0,"<number>"    the answer to AT+CLCC, polled on the first ring
    Quectel   +QIND: "ccinfo",<id>,1,4,0,0,"<number>",<type>   (AT+QINDCFG="ccinfo",1)
    SIMCom    +CLCC: ... as a URC (AT+CLCC=1); MISSED_CALL: <hh:mmAM> <number>

How calls end, by vendor::

    3GPP      NO CARRIER | BUSY | NO ANSWER
    SIMCom    VOICE CALL: END: <hhmmss>      (answered call, SIM7600)
              MISSED_CALL: <hh:mmAM> <number> (unanswered call, SIM7600)
    Huawei    ^CEND:<call id>,<duration s>,<end status>,<cc cause>   (no NO CARRIER)

A data session listed as a call (EC25: ``+CLCC: 1,0,0,1,...``, mode 1) is
never a call: records whose mode is not voice are dropped, polled or not.

Boot banners (the modem reset itself and forgot every setting; the driver
sets it up again)::

    3GPP      RDY, +CFUN: 1, +CPIN: READY          (as URCs, not as answers to a query)
    Quectel   + +QIND: SMS DONE, +QIND: PB DONE
    SIMCom    + Call Ready, SMS Ready, SMS DONE, PB DONE

How call audio (8 kHz PCM16 on a second serial port, ``drivers.audio_port``)
is switched on after each answer and off after each call::

    3GPP      (nothing: a modem without a voice port command streams or has no audio)
    Quectel   AT+QPCMV=1,0       voice on the USB NMEA port; stays on
    SIMCom    AT+CPCMREG=1       needed on every call; AT+CPCMREG=0 when it ends
    Huawei    AT^DDSETEX=2       voice on the "voice" port, every call
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from drivers.gsm.responses import (
    CallerId,
    CallRecord,
    parse_call_record,
    parse_clip,
    parse_message_notice,
    parse_registration_urc,
)
from gateway.events import EndCause, Presentation

# 3GPP TS 24.008 cause values seen in ^CEND.
_HUAWEI_CC_CAUSES = {
    16: EndCause.REMOTE_HANGUP,  # normal call clearing
    17: EndCause.BUSY,  # user busy
    18: EndCause.NO_ANSWER,  # no user responding
    19: EndCause.NO_ANSWER,  # no answer from user (user alerted)
    31: EndCause.REMOTE_HANGUP,  # normal, unspecified
}
_MISSED_CALL = re.compile(r"MISSED_CALL:\s*\S+\s+(\+?\d+)\s*$")
_CRING_NUMBER = re.compile(r'"(\+?\d+)"')


@dataclass(frozen=True)
class ModemIdentity:
    manufacturer: str
    model: str
    imei: str

    def describe(self) -> str:
        return f"{self.manufacturer} {self.model}".strip()


@dataclass(frozen=True)
class Ring:
    """RING or +CRING: VOICE: the incoming call alerts (again); some +CRING carry the number."""

    number: str | None = None


@dataclass(frozen=True)
class CallEnd:
    cause: EndCause
    number: str | None = None  # SIM7600 MISSED_CALL names the caller


@dataclass(frozen=True)
class CallListed:
    """A call-state URC (+CLCC URC, Quectel ccinfo) with one call record."""

    record: CallRecord


@dataclass(frozen=True)
class ResetBanner:
    """A boot banner line: the modem reset itself."""

    line: str


@dataclass(frozen=True)
class RegistrationChanged:
    """+CREG/+CGREG/+CEREG URC with the 27.007 <stat>."""

    technology: str  # "CREG", "CGREG", "CEREG"
    status: int


@dataclass(frozen=True)
class MessageStored:
    """+CMTI (a new message) or +CDSI (a status report) stored at ``memory``/``index``."""

    memory: str
    index: int
    status_report: bool = False


@dataclass(frozen=True)
class StorageFull:
    memory: str


Urc = (
    Ring
    | CallerId
    | CallEnd
    | CallListed
    | ResetBanner
    | RegistrationChanged
    | MessageStored
    | StorageFull
)
CallSignal = Ring | CallerId | CallEnd | CallListed  # the URCs about calls


class GenericDialect:
    """Plain 3GPP TS 27.007 / 27.005."""

    name: ClassVar[str] = "3gpp"
    identity_markers: ClassVar[tuple[str, ...]] = ()
    # Must succeed, in order, after ATE0 and AT+CMEE=1.
    setup_commands: ClassVar[tuple[str, ...]] = ("AT+CLIP=1", "AT+CRC=1")
    # Tried after setup; a modem that refuses one still works (without that feature).
    optional_setup_commands: ClassVar[tuple[str, ...]] = ("AT+CREG=2",)
    # SMS in PDU mode, stored on the SIM and announced with +CMTI (27.005 3.4.1, 3.2.2).
    sms_setup_commands: ClassVar[tuple[str, ...]] = (
        "AT+CMGF=0",
        'AT+CPMS="SM","SM","SM"',
        "AT+CNMI=2,1,0,2,0",
    )
    sms_memory: ClassVar[str] = "SM"
    # Where status reports announced with +CDSI: "<memory>",<index> really are.
    status_report_memory: ClassVar[dict[str, str]] = {}
    registration_queries: ClassVar[tuple[str, ...]] = ("AT+CREG?",)
    # Line readiness (drivers.gsm.probe): each query is optional, an error means "not known".
    iccid_queries: ClassVar[tuple[str, ...]] = ("AT+CCID", "AT+ICCID")
    readiness_registration_queries: ClassVar[tuple[str, ...]] = ("AT+CREG?", "AT+CGREG?")
    rat_query: ClassVar[str | None] = None  # vendor network info beyond +COPS AcT
    serving_cell_query: ClassVar[str | None] = None  # RSRP/RSRQ/SINR
    ims_queries: ClassVar[tuple[str, ...]] = ("AT+CIREG?",)
    reset_command: ClassVar[str] = "AT+CFUN=1,1"
    # Sent after each answer, before audio is read; an error means no audio this call.
    audio_on_commands: ClassVar[tuple[str, ...]] = ()
    # Sent after each answered call ended; errors are only logged.
    audio_off_commands: ClassVar[tuple[str, ...]] = ()
    call_end_lines: ClassVar[dict[str, EndCause]] = {
        "NO CARRIER": EndCause.REMOTE_HANGUP,
        "BUSY": EndCause.BUSY,
        "NO ANSWER": EndCause.NO_ANSWER,
    }
    reset_banners: ClassVar[frozenset[str]] = frozenset({"RDY", "+CFUN: 1", "+CPIN: READY"})

    @classmethod
    def matches(cls, identity: ModemIdentity) -> bool:
        text = f"{identity.manufacturer} {identity.model}".lower()
        return any(marker in text for marker in cls.identity_markers)

    def parse_urc(self, line: str) -> Urc | None:
        """The signal ``line`` carries, or None for anything else; ValueError if garbled."""
        if line == "RING":
            return Ring()
        if line.startswith("+CRING:"):
            # VOICE, or REL VOICE etc.; data and fax calls are not ours
            rest = line[len("+CRING:") :]
            if "VOICE" not in rest.upper():
                return None
            number = _CRING_NUMBER.search(rest)
            return Ring(number.group(1) if number else None)
        if line.startswith("+CLIP:"):
            return parse_clip(line)
        if line.startswith("+CLCC:"):
            return CallListed(parse_call_record(line, "+CLCC:"))
        if line in self.call_end_lines:
            return CallEnd(self.call_end_lines[line])
        if line in self.reset_banners:
            return ResetBanner(line)
        if line.startswith(("+CREG:", "+CGREG:", "+CEREG:")):
            technology = line[1 : line.index(":")]
            return RegistrationChanged(technology, parse_registration_urc(line))
        if line.startswith(("+CMTI:", "+CDSI:")):
            memory, index = parse_message_notice(line)
            report = line.startswith("+CDSI:")
            if report:
                memory = self.status_report_memory.get(memory, memory)
            return MessageStored(memory, index, report)
        return None


class QuectelDialect(GenericDialect):
    """Quectel EC25/EG25: ATH hangs up voice calls only after AT+CVHU=0; LTE needs +CEREG;
    call states as +QIND: "ccinfo"; status reports land in "SR" though announced as "SM"."""

    name = "quectel"
    identity_markers = ("quectel",)
    optional_setup_commands = (
        "AT+CVHU=0",
        "AT+CREG=2",
        "AT+CEREG=2",
        'AT+QINDCFG="ccinfo",1',
    )
    status_report_memory = {"SM": "SR"}
    registration_queries = ("AT+CREG?", "AT+CEREG?")
    iccid_queries = ("AT+QCCID", "AT+CCID")
    readiness_registration_queries = ("AT+CREG?", "AT+CGREG?", "AT+CEREG?")
    rat_query = "AT+QNWINFO"
    serving_cell_query = 'AT+QENG="servingcell"'
    ims_queries = ('AT+QCFG="ims"', "AT+CIREG?")
    audio_on_commands = ("AT+QPCMV=1,0",)
    reset_banners = GenericDialect.reset_banners | {"+QIND: SMS DONE", "+QIND: PB DONE"}

    def parse_urc(self, line: str) -> Urc | None:
        if line.startswith('+QIND: "ccinfo"') or line.startswith("+QIND: ccinfo"):
            fields = line.split(",", 1)
            if len(fields) < 2:
                raise ValueError("ccinfo without a call record")
            return CallListed(parse_call_record("+CLCC: " + fields[1], "+CLCC:"))
        if line.startswith("+QIND:") and "smsfull" in line.lower():
            memory = line.rsplit(",", 1)[-1].strip().strip('"') if "," in line else "SM"
            return StorageFull(memory or "SM")
        return super().parse_urc(line)


class SimcomDialect(GenericDialect):
    """SIMCom SIM7600/SIM800: SIM7600 ends calls with VOICE CALL: END / MISSED_CALL and
    reports call states as +CLCC URCs after AT+CLCC=1."""

    name = "simcom"
    identity_markers = ("simcom",)
    optional_setup_commands = ("AT+CVHU=0", "AT+CREG=2", "AT+CEREG=2", "AT+CLCC=1")
    registration_queries = ("AT+CREG?", "AT+CEREG?")
    iccid_queries = ("AT+CICCID", "AT+CCID")
    readiness_registration_queries = ("AT+CREG?", "AT+CGREG?", "AT+CEREG?")
    serving_cell_query = "AT+CPSI?"  # the RAT too
    audio_on_commands = ("AT+CPCMREG=1",)
    audio_off_commands = ("AT+CPCMREG=0",)
    reset_banners = GenericDialect.reset_banners | {
        "Call Ready",
        "SMS Ready",
        "SMS DONE",
        "PB DONE",
    }

    def parse_urc(self, line: str) -> Urc | None:
        if line.startswith("VOICE CALL: END"):
            return CallEnd(EndCause.REMOTE_HANGUP)
        if line.startswith("MISSED_CALL:"):
            match = _MISSED_CALL.match(line)
            return CallEnd(EndCause.REMOTE_HANGUP, match.group(1) if match else None)
        return super().parse_urc(line)


class HuaweiDialect(GenericDialect):
    """Huawei E173 and kin: ^CEND instead of NO CARRIER, COMMAND NOT SUPPORT for errors;
    a reset re-enumerates the stick on USB (the port vanishes and returns)."""

    name = "huawei"
    identity_markers = ("huawei",)
    iccid_queries = ("AT^ICCID?", "AT+CCID")
    rat_query = "AT^SYSINFOEX"
    audio_on_commands = ("AT^DDSETEX=2",)

    def parse_urc(self, line: str) -> Urc | None:
        if line.startswith("^CEND:"):
            return CallEnd(_huawei_end_cause(line))
        if line.startswith("^SMMEMFULL:"):
            return StorageFull(line.split(":", 1)[1].strip().strip('"') or "SM")
        return super().parse_urc(line)


def _huawei_end_cause(line: str) -> EndCause:
    fields = line[len("^CEND:") :].split(",")
    try:
        cc_cause = int(fields[3])
    except (IndexError, ValueError):
        return EndCause.REMOTE_HANGUP  # ^CEND without a cause: the call cleared normally
    return _HUAWEI_CC_CAUSES.get(cc_cause, EndCause.UNKNOWN)


DIALECTS: tuple[type[GenericDialect], ...] = (QuectelDialect, SimcomDialect, HuaweiDialect)


def pick_dialect(identity: ModemIdentity) -> GenericDialect:
    """The first dialect whose markers appear in the identity; generic 27.007 otherwise."""
    for dialect in DIALECTS:
        if dialect.matches(identity):
            return dialect()
    return GenericDialect()


def caller_from_record(record: CallRecord) -> CallerId | None:
    """The caller id an incoming voice call record gives, if it has a number."""
    if not record.is_voice or record.direction != 1 or not record.number:
        return None
    return CallerId(record.number, Presentation.ALLOWED)
