"""Line readiness for the GSM driver: signal and registration, polled and by URC.

``Readiness`` is the half of ``drivers.gsm.modem.GsmModemDriver`` that says
whether the line can take calls, as ``line.status``: ``AT+CSQ`` and the
dialect's registration queries now and then, and the ``+CREG``/``+CEREG``
URCs (``AT+CREG=2``) as they come, so a lost network shows within a second::

    +CREG: <stat>   1 home, 5 roaming -> up "registered"
                    0 not searching, 2 searching, 3 denied, 4 unknown
                                      -> down "not registered on the network (<why>)"
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from drivers.at_channel import AtChannel, AtCommandError
from drivers.gsm.dialects import GenericDialect, ModemIdentity
from drivers.gsm.responses import (
    REGISTERED_STATES,
    REGISTRATION_STATES,
    parse_csq_dbm,
    parse_registration,
)
from drivers.gsm.sms.inbox import SmsInbox
from gateway.lines import LINE_DOWN, LINE_UP

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.lines import LineDriverBase

    _Base = LineDriverBase[AtChannel]
else:
    _Base = object


class Readiness(_Base):
    """Mixed into ``GsmModemDriver``, which sets these attributes up."""

    _dialect: GenericDialect
    _identity: ModemIdentity | None
    _registration: dict[str, int]  # technology ("CREG", "CEREG") -> <stat>, from URCs
    _sms: SmsInbox

    if TYPE_CHECKING:

        def _command(self, channel: AtChannel, command: str) -> list[str]: ...

        def _guarded(self, work: Callable[[AtChannel], None], channel: AtChannel) -> None: ...

    _last_signal_dbm: int | None = None

    def _poll_health(self, channel: AtChannel) -> None:
        """Storage, signal, registration; then line.status (the last step of a set-up)."""
        self._guarded(self._sms.poll_storage, channel)
        self._last_signal_dbm = self._read_signal_dbm(channel)
        registered = self._read_registration(channel)
        if registered is None and self._registration:
            self._report_registration(self._last_signal_dbm)
            return
        modem = self._identity.describe() if self._identity else "modem"
        if registered is False:
            self._report_health(
                LINE_DOWN, f"{modem}: not registered on the network", self._last_signal_dbm
            )
        else:
            state = "registered" if registered else "registration unknown"
            self._report_health(LINE_UP, f"{modem}: {state}", self._last_signal_dbm)

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

    def _read_signal_dbm(self, channel: AtChannel) -> int | None:
        try:
            lines = self._command(channel, "AT+CSQ")
        except AtCommandError:
            return None
        for line in lines:
            if line.startswith("+CSQ:"):
                try:
                    return parse_csq_dbm(line)
                except ValueError:
                    return None
        return None

    def _read_registration(self, channel: AtChannel) -> bool | None:
        """True if any registration query says registered; None if none answered."""
        answered = False
        for query in self._dialect.registration_queries:
            try:
                lines = self._command(channel, query)
            except AtCommandError:
                continue
            for line in lines:
                try:
                    if parse_registration(line):
                        return True
                    answered = True
                except ValueError:
                    continue
        return False if answered else None
