"""The simulated modem's SIM, network and radio: what the line-readiness queries read.

``SimulatedNetwork`` is plain state a test or scenario changes at will
(``sim.network.sim_state = "pin_required"``, ``sim.network.ims_registered =
False``); ``network_reply`` answers the queries about it the way the model
does (``ModemModel.network_queries`` lists the vendor ones it knows)::

    AT+CPIN?           +CPIN: READY | SIM PIN | SIM PUK      no SIM: +CME ERROR: 10
    AT+CIMI            <imsi>                                no SIM: +CME ERROR: 10
    AT+CCID (+ model)  +CCID: <iccid>     (EC25 AT+QCCID, E173 AT^ICCID?, SIM7600 AT+CICCID)
    AT+CGREG?          +CGREG: <n>,<stat>
    AT+COPS=3,<f>      the format of the next AT+COPS?: 0 long name, 2 numeric
    AT+COPS?           +COPS: 0,<f>,"<operator>",<AcT>       searching: +COPS: 0
    AT+CIREG?          +CIREG: 0,<0|1>                       (EC25, SIM7600)
    AT+QNWINFO         +QNWINFO: "FDD LTE","51010","LTE BAND 3",1300
    AT+QENG="servingcell"   +QENG: "servingcell","NOCONN","LTE","FDD",510,10,...,<rsrp>,<rsrq>,
                            <rssi>,<sinr as (dB + 20) x 5>,...
    AT+QCFG="ims"      +QCFG: "ims",1,<volte ready>
    AT+CPSI?           +CPSI: LTE,Online,510-10,0x1A2B,...,<rsrq x10>,<rsrp x10>,<rssi x10>,<snr>
    AT^SYSINFOEX       ^SYSINFOEX: 2,3,<roaming>,1,,<sysmode>,"<name>",<sub>,"<name>"

An LTE-only line (``lte_only``) answers ``+CREG`` with 0 (no circuit-switched
service) while ``+CEREG`` carries the registration: such a line takes calls
only with IMS (VoLTE) registered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.simulated.gsm_models import ModemModel

CME_SIM_NOT_INSERTED = "+CME ERROR: 10"
REGISTERED = (1, 5)
_CPIN_TEXT = {"ready": "READY", "pin_required": "SIM PIN", "puk_required": "SIM PUK"}
_COPS_ACT = {"gsm": 0, "umts": 2, "lte": 7}
_SYSINFOEX_MODE = {
    "gsm": (1, "GSM", 3, "EDGE"),
    "umts": (3, "WCDMA", 7, "HSPA"),
    "lte": (6, "LTE", 101, "LTE"),
}
_COPS_FORMAT = re.compile(r"AT\+COPS=3,([02])")


@dataclass
class SimulatedNetwork:
    """SIM and network as the modem sees them (registration itself: ``modem.registration``)."""

    sim_state: str = "ready"  # ready, pin_required, puk_required, not_inserted
    imsi: str = "510101234567890"
    operator_name: str = "Telkomsel"
    operator_code: str = "51010"
    rat: str = "lte"  # gsm, umts, lte
    lte_only: bool = False  # no CS service: +CREG not registered, voice only over IMS
    ims_registered: bool = True
    rsrp_dbm: int = -95
    rsrq_db: int = -10
    sinr_db: int = 12
    rssi_dbm: int = -65
    cops_format: int = 0  # AT+COPS=3,<format>; a reset does not forget it on most modems

    @classmethod
    def for_model(cls, model: ModemModel, imei: str) -> SimulatedNetwork:
        name = re.search(r'"([^"]*)"', model.operator_line)
        act = model.operator_line.rsplit(",", 1)[-1]
        rat = {"0": "gsm", "2": "umts", "7": "lte"}.get(act, "gsm")
        return cls(
            imsi="51010" + imei[-10:],
            operator_name=name.group(1) if name else "Telkomsel",
            rat=rat,
        )

    def cs_status(self, registration: int) -> int:
        """The +CREG <stat>: an LTE-only line has no circuit-switched registration."""
        if self.lte_only and registration in REGISTERED:
            return 0
        return self.eps_status(registration)

    def eps_status(self, registration: int) -> int:
        """The +CEREG <stat>: nothing registers without a usable SIM."""
        return registration if self.sim_state == "ready" else 0


def network_reply(
    command: str,
    model: ModemModel,
    network: SimulatedNetwork,
    iccid: str,
    registration: int,
    rssi: int,
) -> tuple[list[str], str] | None:
    """(information lines, final result) for a readiness query, or None if not one of them."""
    upper = command.upper()
    sim_missing = network.sim_state == "not_inserted"
    sim_locked = network.sim_state != "ready"
    registered = registration in REGISTERED and not sim_locked
    if upper == "AT+CPIN?":
        if sim_missing:
            return [], CME_SIM_NOT_INSERTED
        return [f"+CPIN: {_CPIN_TEXT.get(network.sim_state, 'READY')}"], "OK"
    if upper == "AT+CIMI":
        return ([], CME_SIM_NOT_INSERTED) if sim_missing else ([network.imsi], "OK")
    if upper in ("AT+CCID", model.iccid_query[0]):
        if sim_missing:
            return [], CME_SIM_NOT_INSERTED
        prefix = model.iccid_query[1] if upper == model.iccid_query[0] else "+CCID"
        return [f"{prefix}: {iccid}"], "OK"
    if upper == "AT+CGREG?":
        return [f"+CGREG: 0,{network.cs_status(registration)}"], "OK"
    match = _COPS_FORMAT.fullmatch(upper)
    if match:
        network.cops_format = int(match.group(1))
        return [], "OK"
    if upper == "AT+COPS?":
        if not registered:
            return ["+COPS: 0"], "OK"
        name = network.operator_code if network.cops_format == 2 else network.operator_name
        return [f'+COPS: 0,{network.cops_format},"{name}",{_COPS_ACT[network.rat]}'], "OK"
    return _vendor_reply(upper, model, network, registered, rssi)


def _vendor_reply(
    upper: str, model: ModemModel, network: SimulatedNetwork, registered: bool, rssi: int
) -> tuple[list[str], str] | None:
    known = model.network_queries
    lte = network.rat == "lte" and registered
    if upper == "AT+CIREG?" and "cireg" in known:
        return [f"+CIREG: 0,{int(lte and network.ims_registered)}"], "OK"
    if upper == 'AT+QCFG="IMS"' and "qcfg_ims" in known:
        return [f'+QCFG: "ims",1,{int(lte and network.ims_registered)}'], "OK"
    if upper == "AT+QNWINFO" and "qnwinfo" in known:
        if not registered:
            return ['+QNWINFO: "No Service"'], "OK"
        act = {"gsm": "GSM", "umts": "WCDMA", "lte": "FDD LTE"}[network.rat]
        return [f'+QNWINFO: "{act}","{network.operator_code}","LTE BAND 3",1300'], "OK"
    if upper == 'AT+QENG="SERVINGCELL"' and "qeng" in known:
        return [_qeng_line(network, registered)], "OK"
    if upper == "AT+CPSI?" and "cpsi" in known:
        return [_cpsi_line(network, registered, rssi)], "OK"
    if upper == "AT^SYSINFOEX" and "sysinfoex" in known:
        if not registered:
            return ['^SYSINFOEX: 0,0,0,1,,0,"NO SERVICE",0,"NO SERVICE"'], "OK"
        mode, name, sub, sub_name = _SYSINFOEX_MODE[network.rat]
        return [f'^SYSINFOEX: 2,3,0,1,,{mode},"{name}",{sub},"{sub_name}"'], "OK"
    return None


def _qeng_line(network: SimulatedNetwork, registered: bool) -> str:
    if not registered:
        return '+QENG: "servingcell","SEARCH"'
    mcc, mnc = network.operator_code[:3], network.operator_code[3:]
    if network.rat != "lte":
        return f'+QENG: "servingcell","NOCONN","GSM",{mcc},{mnc},1A2B,C3D4,25,62,0,-70,255,255'
    sinr = (network.sinr_db + 20) * 5  # EC25: 1/5 dB steps from -20 dB
    return (
        f'+QENG: "servingcell","NOCONN","LTE","FDD",{mcc},{mnc},1C3D4E5,123,1300,3,5,5,1A2B,'
        f"{network.rsrp_dbm},{network.rsrq_db},{network.rssi_dbm},{sinr},10,22,-"
    )


def _cpsi_line(network: SimulatedNetwork, registered: bool, rssi: int) -> str:
    if not registered:
        return "+CPSI: NO SERVICE,Online"
    operator = f"{network.operator_code[:3]}-{network.operator_code[3:]}"
    if network.rat != "lte":
        return f"+CPSI: GSM,Online,{operator},0x1a2b,1234,30 EGSM 900,{-113 + 2 * rssi},0,40-40"
    return (
        f"+CPSI: LTE,Online,{operator},0x1A2B,27551021,448,EUTRAN-BAND3,1300,5,5,"
        f"{network.rsrq_db * 10},{network.rsrp_dbm * 10},{network.rssi_dbm * 10},{network.sinr_db}"
    )
