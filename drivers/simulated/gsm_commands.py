"""The simulated modem's AT command table: settings, identity, calls, registration, SMS.

``SimulatedAtCommands`` is the command half of ``SimulatedGsmModem``: it
turns one command line into a ``Reply`` (information lines, the final result
code, URCs to print after it) and keeps the settings a real modem keeps
until it resets (``AT+CLIP=1``, ``AT+CRC=1``, ``AT+CREG=2``, ``AT+CNMI``...:
all lost on a reset, which is the point of the reset tests). Commands the
model does not know get its own error reply (EC25 ``ERROR``, Huawei
``COMMAND NOT SUPPORT``).

SMS in PDU mode (3GPP TS 27.005)::

    AT+CPMS?           +CPMS: "SM",<used>,<total>,"SM",<used>,<total>,"SM",<used>,<total>
    AT+CPMS="SR"       +CPMS: <used>,<total>,...          (read/delete memory from now on)
    AT+CMGR=<i>        +CMGR: <stat>,,<length>  /  <pdu>
    AT+CMGL=4          +CMGL: <i>,<stat>,,<length>  /  <pdu>   for each message
    AT+CMGD=<i>        OK (also for an empty index, as real modems do)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.simulated.caller_audio import CallerVoice
from drivers.simulated.gsm_calls import CallOutcome, LiveCall, number_and_type
from drivers.simulated.gsm_models import CallEndStyle, ModemModel
from drivers.simulated.gsm_network import SimulatedNetwork, network_reply
from drivers.simulated.gsm_sms import SimStorage

CMS_INVALID_INDEX = "+CMS ERROR: 321"
CMS_INVALID_MEMORY = "+CMS ERROR: 302"
REGISTRATION_LAC = "1A2B"
REGISTRATION_CELL = "01C3D4E5"


@dataclass
class Reply:
    lines: list[str]
    final: str
    urcs_after: list[str] = field(default_factory=list)


@dataclass
class Settings:
    """What a reset forgets."""

    echo: bool = True
    cmee: int = 0
    clip: bool = False
    crc: bool = False
    audio_on: bool = False
    creg: int = 0  # AT+CREG=<n>: 0 no URC, 1 +CREG: <stat>, 2 with location
    cereg: int = 0
    call_state_urcs: bool = False  # AT+CLCC=1 (SIMCom) / AT+QINDCFG="ccinfo",1 (Quectel)
    pdu_mode: bool = False  # AT+CMGF=0
    sms_notify: bool = False  # AT+CNMI=2,1,...
    read_memory: str = "SM"


class SimulatedAtCommands:
    """The command table; ``SimulatedGsmModem`` provides the state it reads."""

    model: ModemModel
    imei: str
    iccid: str
    rssi: int
    registration: int
    sms: SimStorage
    settings: Settings
    _live: LiveCall | None
    _network: SimulatedNetwork | None = None

    @property
    def network(self) -> SimulatedNetwork:
        """SIM, operator, radio and IMS state (``drivers.simulated.gsm_network``)."""
        if self._network is None:
            self._network = SimulatedNetwork.for_model(self.model, self.imei)
        return self._network

    def _end_live_call(self, outcome: CallOutcome) -> None:
        raise NotImplementedError

    def _call_end_lines(self, live: LiveCall) -> list[str]:
        raise NotImplementedError

    def _call_state_urc(self, live: LiveCall, status: int) -> list[str]:
        raise NotImplementedError

    def _reboot(self) -> None:
        raise NotImplementedError

    def respond(self, command: str) -> Reply:
        upper = command.upper()
        fixed = self._fixed_replies().get(upper)
        if fixed is not None:
            return Reply(fixed, "OK")
        for pattern, handler in self._handlers():
            match = pattern.fullmatch(upper)
            if match:
                return handler(match)
        answer = network_reply(
            command, self.model, self.network, self.iccid, self.registration, self.rssi
        )
        if answer is not None:
            return Reply(*answer)
        if upper in self.model.extra_commands:
            return Reply([], "OK")
        if upper in (self.model.audio_on_command, self.model.audio_off_command):
            self.settings.audio_on = upper == self.model.audio_on_command
            return Reply([], "OK")
        return Reply([], self.model.unknown_command_reply)

    def _fixed_replies(self) -> dict[str, list[str]]:
        model, settings = self.model, self.settings
        replies = {
            "AT": [],
            "ATI": [line.format(imei=self.imei) for line in model.ati_lines],
            "AT+CGMI": [model.manufacturer],
            "AT+GMI": [model.manufacturer],
            "AT+CGMM": [model.model],
            "AT+GMM": [model.model],
            "AT+CGMR": [model.revision],
            "AT+CGSN": [self.imei],
            "AT+GSN": [self.imei],
            "AT+CSQ": [f"+CSQ: {self.rssi},99"],
            "AT+CREG?": [f"+CREG: {settings.creg},{self.network.cs_status(self.registration)}"],
            "AT+CFUN?": ["+CFUN: 1"],
            "AT+CMEE?": [f"+CMEE: {settings.cmee}"],
            "AT+CLIP?": [f"+CLIP: {int(settings.clip)},1"],
            "AT+CRC?": [f"+CRC: {int(settings.crc)}"],
            "AT+CLCC": self._clcc_lines(),
            "AT+CPMS?": [self._cpms_query()],
        }
        if model.supports_cereg:
            status = self.network.eps_status(self.registration)
            replies["AT+CEREG?"] = [f"+CEREG: {settings.cereg},{status}"]
        return replies

    def _handlers(self) -> list[tuple[re.Pattern[str], Callable[[re.Match[str]], Reply]]]:
        handlers = [
            (_ECHO, self._set_echo),
            (_CMEE, self._set_cmee),
            (_CLIP, self._set_clip),
            (_CRC, self._set_crc),
            (_CREG, self._set_creg),
            (_ANSWER, self._answer),
            (_HANG_UP, self._hang_up),
            (_REBOOT, self._reboot_command),
            (_CMGF, self._set_cmgf),
            (_CNMI, self._set_cnmi),
            (_CPMS, self._set_cpms),
            (_CMGR, self._read_message),
            (_CMGD, self._delete_message),
            (_CMGL, self._list_messages),
        ]
        if self.model.supports_cereg:
            handlers.append((_CEREG, self._set_cereg))
        if self.model.call_state_urc == "clcc":
            handlers.append((_CLCC_URC, self._set_call_state_urcs))
        if self.model.call_state_urc == "ccinfo":
            handlers.append((_CCINFO, self._set_call_state_urcs))
        return handlers

    # Settings ------------------------------------------------------------------

    def _set_echo(self, match: re.Match[str]) -> Reply:
        self.settings.echo = match.group(1) == "1"
        return Reply([], "OK")

    def _set_cmee(self, match: re.Match[str]) -> Reply:
        self.settings.cmee = int(match.group(1))
        return Reply([], "OK")

    def _set_clip(self, match: re.Match[str]) -> Reply:
        self.settings.clip = match.group(1) == "1"
        return Reply([], "OK")

    def _set_crc(self, match: re.Match[str]) -> Reply:
        self.settings.crc = match.group(1) == "1"
        return Reply([], "OK")

    def _set_creg(self, match: re.Match[str]) -> Reply:
        self.settings.creg = int(match.group(1))
        return Reply([], "OK")

    def _set_cereg(self, match: re.Match[str]) -> Reply:
        self.settings.cereg = int(match.group(1))
        return Reply([], "OK")

    def _set_call_state_urcs(self, match: re.Match[str]) -> Reply:
        self.settings.call_state_urcs = match.group(1) == "1"
        return Reply([], "OK")

    def registration_urcs(self) -> list[str]:
        """The +CREG/+CEREG URCs the current registration makes, as enabled."""
        urcs = []
        cs_status = self.network.cs_status(self.registration)
        for prefix, n, status in (
            ("+CREG", self.settings.creg, cs_status),
            ("+CEREG", self.settings.cereg, self.network.eps_status(self.registration)),
        ):
            if n == 1:
                urcs.append(f"{prefix}: {status}")
            elif n >= 2 and status in (1, 5):
                location = f'"{REGISTRATION_LAC}","{REGISTRATION_CELL}",7'
                urcs.append(f"{prefix}: {status},{location}")
            elif n >= 2:
                urcs.append(f"{prefix}: {status}")
        return urcs

    # Calls ---------------------------------------------------------------------

    def _answer(self, _match: re.Match[str]) -> Reply:
        live = self._live
        if live is None or live.outcome is not None or live.placed.rings == 0:
            return Reply([], "NO CARRIER")
        urcs = [self.model.answer_urc] if self.model.answer_urc else []
        if not live.answered:
            live.answered = True
            live.placed.answered_monotonic = answered = time.monotonic()
            spec = live.placed.spec
            live.voice = CallerVoice(
                spec.audio, spec.respond_to_prompt, live.placed.audio_log, answered
            )
            live.changed.set()
            urcs += self._call_state_urc(live, 0)
        return Reply([], "OK", urcs)

    def _hang_up(self, _match: re.Match[str]) -> Reply:
        live = self._live
        if live is None or live.outcome is not None:
            return Reply([], "OK")
        ending = self._call_end_lines(live) if live.answered else []
        outcome = CallOutcome.ANSWERED if live.answered else CallOutcome.REJECTED
        self._end_live_call(outcome)
        if self.model.call_end_style is CallEndStyle.SIMCOM:
            return Reply(ending, "OK")  # SIM7600: VOICE CALL: END comes before the OK
        if self.model.call_end_style is CallEndStyle.HUAWEI:
            return Reply([], "OK", ending)
        return Reply([], "OK")

    def _reboot_command(self, _match: re.Match[str]) -> Reply:
        self._reboot()
        return Reply([], "OK")

    def _clcc_lines(self) -> list[str]:
        lines = ['+CLCC: 1,0,0,1,0,"",128'] if self.model.lists_data_session else []
        live = self._live
        if live is not None and live.outcome is None and live.placed.rings > 0:
            status = 0 if live.answered else 4
            number, number_type = number_and_type(live.placed.spec)
            lines.append(f'+CLCC: 2,1,{status},0,0,"{number}",{number_type}')
        return lines

    # SMS -----------------------------------------------------------------------

    def _set_cmgf(self, match: re.Match[str]) -> Reply:
        self.settings.pdu_mode = match.group(1) == "0"
        return Reply([], "OK")

    def _set_cnmi(self, match: re.Match[str]) -> Reply:
        self.settings.sms_notify = match.group(1) in ("1", "2") and match.group(2) == "1"
        return Reply([], "OK")

    def _cpms_query(self) -> str:
        read = self.settings.read_memory
        used, total = self.sms.usage(read)
        sm_used, sm_total = self.sms.usage("SM")
        return f'+CPMS: "{read}",{used},{total},"SM",{sm_used},{sm_total},"SM",{sm_used},{sm_total}'

    def _set_cpms(self, match: re.Match[str]) -> Reply:
        memory = match.group(1)
        if not self.sms.knows(memory):
            return Reply([], CMS_INVALID_MEMORY)
        self.settings.read_memory = memory
        used, total = self.sms.usage(memory)
        sm_used, sm_total = self.sms.usage("SM")
        return Reply([f"+CPMS: {used},{total},{sm_used},{sm_total},{sm_used},{sm_total}"], "OK")

    def _read_message(self, match: re.Match[str]) -> Reply:
        if not self.settings.pdu_mode:
            return Reply([], "+CMS ERROR: 303")  # text mode is not simulated
        message = self.sms.read(self.settings.read_memory, int(match.group(1)))
        if message is None:
            return Reply([], "OK")  # an empty index: OK and nothing, as real modems answer
        return Reply([f"+CMGR: {message.status},,{message.tpdu_octets}", message.pdu], "OK")

    def _delete_message(self, match: re.Match[str]) -> Reply:
        self.sms.delete(self.settings.read_memory, int(match.group(1)))
        return Reply([], "OK")

    def _list_messages(self, match: re.Match[str]) -> Reply:
        if not self.settings.pdu_mode:
            return Reply([], "+CMS ERROR: 303")
        wanted = int(match.group(1))
        lines = []
        for message in self.sms.listing(self.settings.read_memory):
            if wanted in (4, message.status):
                status = message.status
                self.sms.read(self.settings.read_memory, message.index)
                lines += [f"+CMGL: {message.index},{status},,{message.tpdu_octets}", message.pdu]
        return Reply(lines, "OK")


_ECHO = re.compile(r"ATE([01]?)")
_CMEE = re.compile(r"AT\+CMEE=([012])")
_CLIP = re.compile(r"AT\+CLIP=([01])")
_CRC = re.compile(r"AT\+CRC=([01])")
_CREG = re.compile(r"AT\+CREG=([012])")
_CEREG = re.compile(r"AT\+CEREG=([0124])")
_CLCC_URC = re.compile(r"AT\+CLCC=([01])")
_CCINFO = re.compile(r'AT\+QINDCFG="CCINFO",([01])(?:,[01])?')
_ANSWER = re.compile(r"ATA")
_HANG_UP = re.compile(r"ATH0?|AT\+CHUP")
_REBOOT = re.compile(r"AT\+CFUN=1,1")
_CMGF = re.compile(r"AT\+CMGF=([01])")
_CNMI = re.compile(r"AT\+CNMI=([0-3]),([0-3])(?:,[0-3]){0,3}")
_CPMS = re.compile(r'AT\+CPMS="([A-Z]{2})"(?:,"[A-Z]{2}"){0,2}')
_CMGR = re.compile(r"AT\+CMGR=(\d{1,3})")
_CMGD = re.compile(r"AT\+CMGD=(\d{1,3})(?:,[0-4])?")
_CMGL = re.compile(r"AT\+CMGL=([0-4])")
