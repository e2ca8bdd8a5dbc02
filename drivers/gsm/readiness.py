"""Line readiness for the GSM driver: signal, registration, SIM and IMS, polled and by URC.

``Readiness`` is the half of ``drivers.gsm.modem.GsmModemDriver`` that says
whether the line can take calls. Every health poll reads one
``drivers.gsm.probe.ModemReport`` (SIM, registration, operator, RAT, signal,
IMS: the same queries as ``edge112 modem probe``) and reports it three ways:

* ``line.status`` (up/down, signal) as before: up while registered;
* ``line.readiness`` when ``ready``/``reasons`` or the SIM, network or IMS
  state change (the forwarder also keeps it retained per line); a lost
  modem makes it ``ready: false``, ``reasons: ["modem_unreachable"]``;
* ``line.metrics`` (CSQ dBm, RSRP, RSRQ, SINR) every ``metrics_interval_s``.

The ``+CREG``/``+CEREG`` URCs (``AT+CREG=2``) come as they happen, so a lost
network shows within a second: line.status at once, then a fresh report::

    +CREG: <stat>   1 home, 5 roaming -> up "registered"
                    0 not searching, 2 searching, 3 denied, 4 unknown
                                      -> down "not registered on the network (<why>)"
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from drivers.at_channel import AtChannel
from drivers.gsm.dialects import GenericDialect, ModemIdentity
from drivers.gsm.probe import REGISTERED, ModemReport, read_report
from drivers.gsm.responses import REGISTERED_STATES, REGISTRATION_STATES
from drivers.gsm.sms.inbox import SmsInbox
from gateway.events import LineMetrics, LineReadiness
from gateway.lines import LINE_DOWN, LINE_UP

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.lines import LineDriverBase

    _Base = LineDriverBase[AtChannel]
else:
    _Base = object

METRICS_INTERVAL_S = 300.0  # line.metrics: radio measurements, telemetry
UNREACHABLE = "modem_unreachable"
_STAT_OF = {"not_searching": 0, "searching": 2, "denied": 3, "unknown": 4}  # 27.007 <stat>


class _DriverCommands:
    """``probe.Commander`` over the driver's ``_command`` (which counts timeouts)."""

    def __init__(self, command: Callable[[AtChannel, str], list[str]], channel: AtChannel) -> None:
        self._command = command
        self._channel = channel

    def command(self, command: str, timeout: float = 0.0) -> list[str]:
        return self._command(self._channel, command)


class Readiness(_Base):
    """Mixed into ``GsmModemDriver``, which sets these attributes up."""

    _dialect: GenericDialect
    _identity: ModemIdentity | None
    _registration: dict[str, int]  # technology ("CREG", "CEREG") -> <stat>, from URCs
    _sms: SmsInbox
    _metrics_interval_s: float = METRICS_INTERVAL_S

    if TYPE_CHECKING:

        def _command(self, channel: AtChannel, command: str) -> list[str]: ...

        def _guarded(self, work: Callable[[AtChannel], None], channel: AtChannel) -> None: ...

    _last_signal_dbm: int | None = None
    _last_readiness: tuple[object, ...] | None = None
    _next_metrics_at: float = float("-inf")
    last_report: ModemReport | None = None  # the latest report (for a status page)

    def _poll_health(self, channel: AtChannel) -> None:
        """Storage, then one report: line.status, line.readiness, line.metrics."""
        self._guarded(self._sms.poll_storage, channel)
        report = self._read_line_report(channel)
        self._report_status(report)
        self._report_readiness(report)
        now = time.monotonic()
        if now >= self._next_metrics_at:
            self._next_metrics_at = now + self._metrics_interval_s
            self._emit_metrics(report)

    def _report_status(self, report: ModemReport) -> None:
        """line.status: up while registered (the report wins over older URC states)."""
        self._last_signal_dbm = report.signal_dbm
        modem = self._identity.describe() if self._identity else "modem"
        if not report.registrations and self._registration:
            self._report_registration(self._last_signal_dbm)
        elif not report.registrations:
            self._report_health(LINE_UP, f"{modem}: registration unknown", report.signal_dbm)
        elif report.registration in REGISTERED:
            self._report_health(LINE_UP, f"{modem}: registered", report.signal_dbm)
        else:
            why = REGISTRATION_STATES[_STAT_OF.get(report.registration or "unknown", 4)]
            self._report_health(
                LINE_DOWN, f"{modem}: not registered on the network ({why})", report.signal_dbm
            )

    def _emit_metrics(self, report: ModemReport) -> None:
        self._emit_safely(
            LineMetrics(
                line=self.name,
                ready=report.ready,
                registration=report.registration,
                rat=report.rat,
                operator_code=report.operator_code,
                signal_dbm=report.signal_dbm,
                rsrp_dbm=report.rsrp_dbm,
                rsrq_db=report.rsrq_db,
                sinr_db=report.sinr_db,
            )
        )

    def _poll_readiness(self, channel: AtChannel) -> None:
        """A fresh report after a registration URC (which a query in flight may have taken
        as its answer): line.status and line.readiness if anything changed."""
        report = self._read_line_report(channel)
        self._report_status(report)
        self._report_readiness(report)

    def _read_line_report(self, channel: AtChannel) -> ModemReport:
        identity = self._identity
        report = ModemReport(port=getattr(self, "url", ""), present=True, identified=True)
        if identity is not None:
            report.manufacturer = identity.manufacturer or None
            report.model = identity.model or None
            report.imei = identity.imei or None
        read_report(_DriverCommands(self._command, channel), self._dialect, report=report)
        self.last_report = report
        return report

    def _report_readiness(self, report: ModemReport) -> None:
        """line.readiness when the composite changed (not for signal moves: line.metrics)."""
        reasons = report.reasons
        key = (
            not reasons,
            tuple(reasons),
            report.sim_state,
            report.iccid,
            report.registration,
            report.operator,
            report.operator_code,
            report.rat,
            report.ims,
        )
        if key == self._last_readiness:
            return
        self._last_readiness = key
        modem = self._identity.describe() if self._identity else None
        self._emit_safely(
            LineReadiness(
                line=self.name,
                ready=not reasons,
                reasons=reasons,
                modem=modem or None,
                imei=report.imei,
                iccid=report.iccid,
                sim_state=report.sim_state,
                registration=report.registration,
                operator=report.operator,
                operator_code=report.operator_code,
                rat=report.rat,
                ims=report.ims,
            )
        )

    def _report_unreachable(self) -> None:
        """The session ended (port lost, modem silent): not ready, once."""
        if self._last_readiness is None or self._last_readiness[1] == (UNREACHABLE,):
            return  # never reported ready or not: nothing retained to correct
        self._last_readiness = (False, (UNREACHABLE,))
        identity = self._identity
        self._emit_safely(
            LineReadiness(
                line=self.name,
                ready=False,
                reasons=[UNREACHABLE],
                modem=identity.describe() if identity else None,
                imei=identity.imei if identity else None,
                iccid=None,
                sim_state=None,
                registration=None,
                operator=None,
                operator_code=None,
                rat=None,
                ims=None,
            )
        )

    def _report_registration(self, signal_dbm: int | None) -> None:
        """line.status from the registration URCs: up if any technology is registered."""
        states = dict(self._registration)
        if not states:
            return
        modem = self._identity.describe() if self._identity else "modem"
        if any(status in REGISTERED_STATES for status in states.values()):
            self._report_health(LINE_UP, f"{modem}: registered", signal_dbm)
            return
        worst = max(states.values(), key=lambda status: status == 3)  # denied says most
        self._report_health(
            LINE_DOWN,
            f"{modem}: not registered on the network ({REGISTRATION_STATES[worst]})",
            signal_dbm,
        )
