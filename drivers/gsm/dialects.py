"""GSM modem dialects: what each vendor adds to 3GPP TS 27.007, chosen by probing identity.

A dialect is a class with a command table (class constants) and a URC parser
that turns modem lines into typed call signals. ``GenericDialect`` speaks
plain 27.007; vendors subclass it, inherit its tables and extend them, as
bellows does for EZSP versions. ``pick_dialect`` maps the identity read with
``AT+CGMI``/``AT+CGMM`` to a dialect; an unknown modem gets the generic one.

How calls end, by vendor::

    3GPP      NO CARRIER | BUSY | NO ANSWER
    SIMCom    VOICE CALL: END: <hhmmss>      (answered call, SIM7600)
              MISSED_CALL: <hh:mmAM> <number> (unanswered call, SIM7600)
    Huawei    ^CEND:<call id>,<duration s>,<end status>,<cc cause>   (no NO CARRIER)

How call audio (8 kHz PCM16 on a second serial port, ``drivers.audio_port``)
is switched on after each answer and off after each call::

    3GPP      (nothing: a modem without a voice port command streams or has no audio)
    Quectel   AT+QPCMV=1,0       voice on the USB NMEA port; stays on
    SIMCom    AT+CPCMREG=1       needed on every call; AT+CPCMREG=0 when it ends
    Huawei    AT^DDSETEX=2       voice on the "voice" port, every call
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from drivers.gsm.responses import CallerId, parse_clip
from gateway.events import EndCause

# 3GPP TS 24.008 cause values seen in ^CEND.
_HUAWEI_CC_CAUSES = {
    16: EndCause.REMOTE_HANGUP,  # normal call clearing
    17: EndCause.BUSY,  # user busy
    18: EndCause.NO_ANSWER,  # no user responding
    19: EndCause.NO_ANSWER,  # no answer from user (user alerted)
    31: EndCause.REMOTE_HANGUP,  # normal, unspecified
}


@dataclass(frozen=True)
class ModemIdentity:
    manufacturer: str
    model: str
    imei: str

    def describe(self) -> str:
        return f"{self.manufacturer} {self.model}".strip()


@dataclass(frozen=True)
class Ring:
    """RING or +CRING: VOICE: the incoming call alerts (again)."""


@dataclass(frozen=True)
class CallEnd:
    cause: EndCause


CallSignal = Ring | CallerId | CallEnd


class GenericDialect:
    """Plain 3GPP TS 27.007."""

    name: ClassVar[str] = "3gpp"
    identity_markers: ClassVar[tuple[str, ...]] = ()
    # Must succeed, in order, after ATE0 and AT+CMEE=1.
    setup_commands: ClassVar[tuple[str, ...]] = ("AT+CLIP=1", "AT+CRC=1")
    # Tried after setup; a modem that refuses one still works.
    optional_setup_commands: ClassVar[tuple[str, ...]] = ()
    registration_queries: ClassVar[tuple[str, ...]] = ("AT+CREG?",)
    # Sent after each answer, before audio is read; an error means no audio this call.
    audio_on_commands: ClassVar[tuple[str, ...]] = ()
    # Sent after each answered call ended; errors are only logged.
    audio_off_commands: ClassVar[tuple[str, ...]] = ()
    call_end_lines: ClassVar[dict[str, EndCause]] = {
        "NO CARRIER": EndCause.REMOTE_HANGUP,
        "BUSY": EndCause.BUSY,
        "NO ANSWER": EndCause.NO_ANSWER,
    }

    @classmethod
    def matches(cls, identity: ModemIdentity) -> bool:
        text = f"{identity.manufacturer} {identity.model}".lower()
        return any(marker in text for marker in cls.identity_markers)

    def parse_call_signal(self, line: str) -> CallSignal | None:
        """The call signal ``line`` carries, or None for anything else."""
        if line == "RING":
            return Ring()
        if line.startswith("+CRING:"):
            # VOICE, or REL VOICE etc.; data and fax calls are not ours
            return Ring() if "VOICE" in line[len("+CRING:") :].upper() else None
        if line.startswith("+CLIP:"):
            return parse_clip(line)
        if line in self.call_end_lines:
            return CallEnd(self.call_end_lines[line])
        return None


class QuectelDialect(GenericDialect):
    """Quectel EC25/EG25: ATH hangs up voice calls only after AT+CVHU=0; LTE needs +CEREG."""

    name = "quectel"
    identity_markers = ("quectel",)
    optional_setup_commands = ("AT+CVHU=0",)
    registration_queries = ("AT+CREG?", "AT+CEREG?")
    audio_on_commands = ("AT+QPCMV=1,0",)


class SimcomDialect(GenericDialect):
    """SIMCom SIM7600/SIM800: SIM7600 ends calls with VOICE CALL: END / MISSED_CALL."""

    name = "simcom"
    identity_markers = ("simcom",)
    optional_setup_commands = ("AT+CVHU=0",)
    registration_queries = ("AT+CREG?", "AT+CEREG?")
    audio_on_commands = ("AT+CPCMREG=1",)
    audio_off_commands = ("AT+CPCMREG=0",)

    def parse_call_signal(self, line: str) -> CallSignal | None:
        if line.startswith(("VOICE CALL: END", "MISSED_CALL:")):
            return CallEnd(EndCause.REMOTE_HANGUP)
        return super().parse_call_signal(line)


class HuaweiDialect(GenericDialect):
    """Huawei E173 and kin: ^CEND instead of NO CARRIER, COMMAND NOT SUPPORT for errors."""

    name = "huawei"
    identity_markers = ("huawei",)
    audio_on_commands = ("AT^DDSETEX=2",)

    def parse_call_signal(self, line: str) -> CallSignal | None:
        if line.startswith("^CEND:"):
            return CallEnd(_huawei_end_cause(line))
        return super().parse_call_signal(line)


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
