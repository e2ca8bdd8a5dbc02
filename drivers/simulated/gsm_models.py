"""The modem models the simulator plays: what differs between vendors, as data.

Each ``ModemModel`` holds the shapes a real modem of that model shows on its
AT port: identity, the reply to an unknown command, the ``+CLIP`` layout, URC
framing (SIM7600 ``\\r\\r\\n``), how calls end, the boot banner it prints
after a reset, its call-state URC (EC25 ``+QIND: "ccinfo"``, SIM7600
``+CLCC`` after ``AT+CLCC=1``), where it stores SMS status reports (EC25:
"SR" although it announces them as "SM"), and whether a reset makes it
re-enumerate on USB (Huawei sticks: the port vanishes and returns).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum


class Chunking(StrEnum):
    LINE = "line"
    BYTE = "byte"
    RANDOM = "random"


class CallEndStyle(Enum):
    NO_CARRIER = "no_carrier"  # 3GPP: NO CARRIER
    SIMCOM = "simcom"  # VOICE CALL: END: <hhmmss> / MISSED_CALL: <time> <number>
    HUAWEI = "huawei"  # ^CEND:<id>,<duration>,<end status>,<cc cause>


class ClipShape(Enum):
    FULL = "full"  # +CLIP: "<n>",145,"",0,"",0  (SIM800, EC25, SIM7600)
    HUAWEI = "huawei"  # +CLIP: "<n>",145,,,,0


@dataclass(frozen=True)
class ModemModel:
    key: str
    manufacturer: str
    model: str
    revision: str
    ati_lines: tuple[str, ...]  # "{imei}" is filled in
    operator_line: str
    unknown_command_reply: str = "ERROR"
    urc_frame: tuple[bytes, bytes] = (b"\r\n", b"\r\n")
    clip_shape: ClipShape = ClipShape.FULL
    call_end_style: CallEndStyle = CallEndStyle.NO_CARRIER
    lists_data_session: bool = False
    answer_urc: str | None = None  # sent after the OK to ATA
    extra_commands: frozenset[str] = frozenset()  # answered with a plain OK
    supports_cereg: bool = False
    boot_lines: tuple[str, ...] = ()
    periodic_urc: str | None = None  # "{rssi}" is filled in
    audio_on_command: str | None = None  # switches call audio on (answered OK)
    audio_off_command: str | None = None
    audio_per_call: bool = False  # True: audio switches itself off when a call ends
    # Call-state URCs once enabled: "ccinfo" (Quectel AT+QINDCFG="ccinfo",1 ->
    # +QIND: "ccinfo",<id>,<dir>,<stat>,<mode>,<mpty>,<number>,<type>), "clcc"
    # (SIMCom AT+CLCC=1 -> +CLCC: ... on every change), None: only AT+CLCC.
    call_state_urc: str | None = None
    status_report_storage: str = "SM"  # where +CDSI reports land (EC25: "SR")
    reset_replugs: bool = False  # a reset re-enumerates on USB: the port vanishes and returns
    iccid_query: tuple[str, str] = ("AT+CCID", "+CCID")  # command, answer prefix
    # Vendor readiness queries it answers (gsm_network): cireg, qcfg_ims, qnwinfo, qeng,
    # cpsi, sysinfoex. Every model answers AT+CPIN?, AT+CIMI, AT+CCID, AT+CGREG?, AT+COPS.
    network_queries: frozenset[str] = frozenset()


MODELS: dict[str, ModemModel] = {
    "quectel_ec25": ModemModel(
        key="quectel_ec25",
        manufacturer="Quectel",
        model="EC25",
        revision="EC25EFAR06A06M4G",
        ati_lines=("Quectel", "EC25", "Revision: EC25EFAR06A06M4G"),
        operator_line='+COPS: 0,0,"Telkomsel",7',
        lists_data_session=True,
        extra_commands=frozenset({"AT+CVHU=0"}),
        supports_cereg=True,
        boot_lines=("RDY", "+CFUN: 1", "+CPIN: READY", "+QIND: SMS DONE", "+QIND: PB DONE"),
        audio_on_command="AT+QPCMV=1,0",
        audio_off_command="AT+QPCMV=0",
        call_state_urc="ccinfo",
        status_report_storage="SR",
        iccid_query=("AT+QCCID", "+QCCID"),
        network_queries=frozenset({"cireg", "qcfg_ims", "qnwinfo", "qeng"}),
    ),
    "simcom_sim7600": ModemModel(
        key="simcom_sim7600",
        manufacturer="SIMCOM INCORPORATED",
        model="SIMCOM_SIM7600E-H",
        revision="LE20B04SIM7600M22",
        ati_lines=(
            "Manufacturer: SIMCOM INCORPORATED",
            "Model: SIMCOM_SIM7600E-H",
            "Revision: LE20B04SIM7600M22",
            "IMEI: {imei}",
            "+GCAP: +CGSM",
        ),
        operator_line='+COPS: 0,0,"Telkomsel",7',
        urc_frame=(b"\r\r\n", b"\r\r\n"),
        call_end_style=CallEndStyle.SIMCOM,
        answer_urc="VOICE CALL: BEGIN",
        extra_commands=frozenset({"AT+CVHU=0"}),
        supports_cereg=True,
        boot_lines=("RDY", "+CPIN: READY", "SMS DONE", "PB DONE"),
        audio_on_command="AT+CPCMREG=1",
        audio_off_command="AT+CPCMREG=0",
        audio_per_call=True,
        call_state_urc="clcc",
        iccid_query=("AT+CICCID", "+ICCID"),
        network_queries=frozenset({"cireg", "cpsi"}),
    ),
    "simcom_sim800": ModemModel(
        key="simcom_sim800",
        manufacturer="SIMCOM_Ltd",
        model="SIMCOM_SIM800L",
        revision="Revision:1418B04SIM800L24",
        ati_lines=("SIM800 R14.18",),
        operator_line='+COPS: 0,0,"TELKOMSEL"',
        extra_commands=frozenset({"AT+CVHU=0"}),
        boot_lines=("RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"),
    ),
    "huawei_e173": ModemModel(
        key="huawei_e173",
        manufacturer="huawei",
        model="E173",
        revision="11.126.85.00.209",
        ati_lines=(
            "Manufacturer: huawei",
            "Model: E173",
            "Revision: 11.126.85.00.209",
            "IMEI: {imei}",
            "+GCAP: +CGSM,+DS,+ES",
        ),
        operator_line='+COPS: 0,0,"TELKOMSEL",0',
        unknown_command_reply="COMMAND NOT SUPPORT",
        clip_shape=ClipShape.HUAWEI,
        call_end_style=CallEndStyle.HUAWEI,
        answer_urc="^CONN:1,0",
        boot_lines=("^SIMST:1",),
        periodic_urc="^RSSI:{rssi}",
        audio_on_command="AT^DDSETEX=2",
        audio_per_call=True,
        reset_replugs=True,
        iccid_query=("AT^ICCID?", "^ICCID"),
        network_queries=frozenset({"sysinfoex"}),
    ),
}
