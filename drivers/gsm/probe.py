"""What a GSM modem says about itself and its line: one ``ModemReport``, and whether it is ready.

One set of queries, used by the driver's periodic health poll
(``drivers.gsm.readiness``), ``edge112 modem probe`` and ``edge112 doctor``::

    identity  AT+CGMI, AT+CGMM, AT+CGMR, AT+CGSN          (read_identity; probe_port only)
    SIM       AT+CPIN?   READY | SIM PIN | SIM PUK | +CME ERROR: 10 (not inserted)
              ICCID per dialect (AT+QCCID, AT+CICCID, AT^ICCID?, AT+CCID), IMSI AT+CIMI
    network   AT+CREG? AT+CGREG? AT+CEREG?   (<stat>: home, roaming, searching, denied...)
              AT+COPS=3,2 / AT+COPS? / AT+COPS=3,0 / AT+COPS?   numeric and name, AcT
              vendor RAT: Quectel AT+QNWINFO, Huawei AT^SYSINFOEX
    signal    AT+CSQ; Quectel AT+QENG="servingcell", SIMCom AT+CPSI? (RSRP, RSRQ, SINR)
    IMS       Quectel AT+QCFG="ims", AT+CIREG?

Every query is optional: a modem that refuses one (``ERROR``, ``COMMAND NOT
SUPPORT``) leaves that field None. ``readiness(report)`` folds the report
into ``ready`` plus machine-readable ``reasons`` (``sim_pin_required``,
``not_registered:denied``, ``no_signal``, ``ims_not_registered``...).

Voice on a line registered on LTE alone (no CS registration on GSM: an
LTE-only modem, or a network without 2G) needs VoLTE, so there the IMS
registration counts; a line with CS service takes calls without it.

``probe_port(url, baudrate, timeout)`` opens any pyserial URL exclusively,
and returns a report even for a port that is not an AT port (``error`` says
why) or cannot be opened (``present`` False).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from drivers.at_channel import PORT_ERRORS, AtChannel, AtCommandError, AtError, AtTimeoutError
from drivers.gsm.dialects import GenericDialect, ModemIdentity, pick_dialect
from drivers.gsm.responses import (
    REGISTRATION_NAMES,
    ServingCell,
    parse_cireg,
    parse_cops,
    parse_cpin,
    parse_cpsi,
    parse_csq_dbm,
    parse_qeng_servingcell,
    parse_qnwinfo,
    parse_quectel_ims,
    parse_registration_read,
    parse_sysinfoex,
    sim_state_from_error,
)

PROBE_TIMEOUT_S = 1.0  # for AT: a modem answers in milliseconds, a non-AT port never
QUERY_TIMEOUT_S = 3.0  # at least this for the queries once it answered (AT+CPIN? after a boot)
PING_ATTEMPTS = 2
REGISTERED = frozenset({"home", "roaming"})
EPS_TECHNOLOGIES = frozenset({"CEREG", "C5GREG"})
# Worst first: the reason a line that is not registered gives.
_NOT_REGISTERED_ORDER = ("denied", "searching", "not_searching", "emergency_only", "unknown")


class Commander(Protocol):
    """What a report needs of a channel: one command, its information lines (AtChannel)."""

    def command(self, command: str, timeout: float = ...) -> list[str]: ...


@dataclass
class ModemReport:
    """One modem's identity, SIM, network, signal and IMS state; None where unknown."""

    port: str = ""
    present: bool = False  # the port opened
    identified: bool = False  # it answered AT
    manufacturer: str | None = None
    model: str | None = None
    revision: str | None = None
    imei: str | None = None
    dialect: str | None = None
    sim_state: str | None = None  # ready, pin_required, puk_required, not_inserted, ...
    iccid: str | None = None
    imsi: str | None = None
    registration: str | None = None  # home, roaming, searching, denied, not_searching, unknown
    registrations: dict[str, str] = field(default_factory=dict)  # CREG/CGREG/CEREG -> state
    operator: str | None = None  # name
    operator_code: str | None = None  # MCC+MNC
    rat: str | None = None  # gsm, umts, lte, nr
    signal_dbm: int | None = None  # from +CSQ
    rsrp_dbm: float | None = None
    rsrq_db: float | None = None
    sinr_db: float | None = None
    ims: str | None = None  # registered, not_registered, disabled
    error: str | None = None  # why the port gave no report (not an AT port, busy, gone)

    @property
    def ready(self) -> bool:
        return not readiness_reasons(self)

    @property
    def reasons(self) -> list[str]:
        return readiness_reasons(self)

    @property
    def ims_required(self) -> bool:
        """Registered on LTE (or NR) but not on GSM/UMTS: voice only through IMS (VoLTE)."""
        eps = any(self.registrations.get(name) in REGISTERED for name in EPS_TECHNOLOGIES)
        return eps and self.registrations.get("CREG") not in REGISTERED

    def as_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["ready"] = self.ready
        document["reasons"] = self.reasons
        return document


def readiness_reasons(report: ModemReport) -> list[str]:
    """Why the line cannot take calls now; empty when it can."""
    if not report.present:
        return ["port_unavailable"]
    if not report.identified:
        return ["modem_not_answering"]
    reasons = []
    if report.sim_state is not None and report.sim_state != "ready":
        reasons.append(f"sim_{report.sim_state}")
    if report.registration not in REGISTERED:
        reasons.append(f"not_registered:{report.registration or 'unknown'}")
    elif report.signal_dbm is None and report.rsrp_dbm is None:
        reasons.append("no_signal")
    if report.registration in REGISTERED and report.ims_required and report.ims != "registered":
        reasons.append("ims_not_registered")
    return reasons


def _ask(channel: Commander, command: str, timeout: float) -> list[str] | None:
    """The information lines, or None when the modem refuses the command."""
    try:
        return channel.command(command, timeout)
    except AtCommandError:
        return None


def _value(lines: list[str] | None, prefix: str = "") -> str | None:
    """The first non-empty information line without ``prefix``, quotes and a label."""
    for line in lines or []:
        value = line
        if prefix and value.upper().startswith(prefix.upper()):
            value = value[len(prefix) :]
        value = value.strip().strip('"').strip()
        if value:
            return value
    return None


def read_identity(channel: Commander, timeout: float = PROBE_TIMEOUT_S) -> ModemIdentity:
    return ModemIdentity(
        manufacturer=_value(_ask(channel, "AT+CGMI", timeout), "+CGMI:") or "",
        model=_value(_ask(channel, "AT+CGMM", timeout), "+CGMM:") or "",
        imei=_value(_ask(channel, "AT+CGSN", timeout), "+CGSN:") or "",
    )


def read_report(
    channel: Commander,
    dialect: GenericDialect,
    *,
    report: ModemReport | None = None,
    timeout: float = PROBE_TIMEOUT_S,
) -> ModemReport:
    """Fill ``report`` (a new one if None) with SIM, network, signal and IMS state.

    Raises only what the channel raises for a lost port or a silent modem
    (``AtTimeoutError``, ``AtChannelClosedError``); refusals leave fields None.
    """
    report = report or ModemReport(present=True, identified=True)
    report.dialect = dialect.name
    _read_sim(channel, dialect, report, timeout)
    _read_registration(channel, dialect, report, timeout)
    _read_operator(channel, report, timeout)
    _read_radio(channel, dialect, report, timeout)
    if report.ims_required or report.rat in ("lte", "nr"):
        _read_ims(channel, dialect, report, timeout)
    return report


def _read_sim(
    channel: Commander, dialect: GenericDialect, report: ModemReport, timeout: float
) -> None:
    try:
        lines = channel.command("AT+CPIN?", timeout)
    except AtCommandError as exc:
        report.sim_state = sim_state_from_error(exc.final) or "error"
        return
    for line in lines:
        with contextlib.suppress(ValueError):
            report.sim_state = parse_cpin(line)
    if report.sim_state in (None, "not_inserted"):
        return
    for query in dialect.iccid_queries:
        iccid = _value(_ask(channel, query, timeout))
        if iccid:
            iccid = iccid.split(":", 1)[-1].strip().strip('"').rstrip("Ff")
            if iccid.isdigit():
                report.iccid = iccid
                break
    imsi = _value(_ask(channel, "AT+CIMI", timeout), "+CIMI:")
    report.imsi = imsi if imsi and imsi.isdigit() else None


def combined_registration(states: dict[str, str]) -> str | None:
    """One state from several technologies: registered if any is, else the most telling."""
    values = set(states.values())
    for state in ("home", "roaming", *_NOT_REGISTERED_ORDER):
        if state in values:
            return state
    return None


def _read_registration(
    channel: Commander, dialect: GenericDialect, report: ModemReport, timeout: float
) -> None:
    for query in dialect.readiness_registration_queries:
        for line in _ask(channel, query, timeout) or []:
            with contextlib.suppress(ValueError):
                technology, status, _act = parse_registration_read(line)
                report.registrations[technology] = REGISTRATION_NAMES[status]
    report.registration = combined_registration(report.registrations)


def _read_operator(channel: Commander, report: ModemReport, timeout: float) -> None:
    for setting in ("AT+COPS=3,2", "AT+COPS=3,0"):  # numeric, then the long name (the default)
        if _ask(channel, setting, timeout) is None:
            continue
        for line in _ask(channel, "AT+COPS?", timeout) or []:
            try:
                operator = parse_cops(line)
            except ValueError:
                continue
            report.rat = operator.rat or report.rat
            if operator.name and operator.format == 2:
                report.operator_code = operator.name
            elif operator.name:
                report.operator = operator.name


def _read_radio(
    channel: Commander, dialect: GenericDialect, report: ModemReport, timeout: float
) -> None:
    for line in _ask(channel, "AT+CSQ", timeout) or []:
        with contextlib.suppress(ValueError):
            report.signal_dbm = parse_csq_dbm(line)
    if dialect.rat_query is not None:
        for line in _ask(channel, dialect.rat_query, timeout) or []:
            with contextlib.suppress(ValueError):
                if line.startswith("+QNWINFO:"):
                    rat, code = parse_qnwinfo(line)
                    report.rat = rat or report.rat
                    report.operator_code = report.operator_code or code
                elif line.startswith("^SYSINFOEX:"):
                    report.rat = parse_sysinfoex(line)[0] or report.rat
    if dialect.serving_cell_query is not None:
        for line in _ask(channel, dialect.serving_cell_query, timeout) or []:
            cell: ServingCell | None = None
            with contextlib.suppress(ValueError, IndexError):
                if line.startswith("+QENG:"):
                    cell = parse_qeng_servingcell(line)
                elif line.startswith("+CPSI:"):
                    cell = parse_cpsi(line)
            if cell is not None:
                report.rat = cell.rat or report.rat
                report.operator_code = report.operator_code or cell.operator_code
                report.rsrp_dbm, report.rsrq_db = cell.rsrp_dbm, cell.rsrq_db
                report.sinr_db = cell.sinr_db


def _read_ims(
    channel: Commander, dialect: GenericDialect, report: ModemReport, timeout: float
) -> None:
    for query in dialect.ims_queries:
        for line in _ask(channel, query, timeout) or []:
            with contextlib.suppress(ValueError):
                if line.startswith("+QCFG:"):
                    mode, volte_ready = parse_quectel_ims(line)
                    if mode == 2:
                        report.ims = "disabled"
                        return
                    if volte_ready is not None:
                        report.ims = "registered" if volte_ready else "not_registered"
                elif line.startswith("+CIREG:"):
                    report.ims = "registered" if parse_cireg(line) else "not_registered"
                    return


def probe_port(url: str, baudrate: int = 115200, timeout: float = PROBE_TIMEOUT_S) -> ModemReport:
    """Open ``url`` (exclusively), ask everything, close; never raises for a bad port.

    ``timeout`` bounds the wait for ``AT`` (twice): a port that is not an AT port
    costs about 2 x ``timeout``. The queries after it wait up to ``QUERY_TIMEOUT_S``.
    """
    report = ModemReport(port=url)
    try:
        channel = AtChannel(url, on_urc=lambda _line: None, baudrate=baudrate, name=url)
    except PORT_ERRORS as exc:
        report.error = f"cannot open: {exc}"
        return report
    except ValueError as exc:  # a malformed URL or setting
        report.error = f"cannot open: {exc}"
        return report
    report.present = True
    try:
        if not _ping(channel, timeout):
            report.error = f"no answer to AT within {timeout:g} s: not an AT port?"
            return report
        report.identified = True
        timeout = max(timeout, QUERY_TIMEOUT_S)
        _ask(channel, "ATE0", timeout)
        _ask(channel, "AT+CMEE=1", timeout)
        identity = read_identity(channel, timeout)
        report.manufacturer = identity.manufacturer or None
        report.model = identity.model or None
        report.imei = identity.imei or None
        revision = _value(_ask(channel, "AT+CGMR", timeout), "+CGMR:")
        report.revision = revision.removeprefix("Revision:").strip() if revision else None
        read_report(channel, pick_dialect(identity), report=report, timeout=timeout)
    except AtError as exc:
        report.error = str(exc)
    finally:
        channel.close()
    return report


def _ping(channel: Commander, timeout: float) -> bool:
    for _ in range(PING_ATTEMPTS):
        try:
            channel.command("AT", timeout)
            return True
        except AtCommandError:
            return True  # it answers
        except AtTimeoutError:
            continue
    return False
