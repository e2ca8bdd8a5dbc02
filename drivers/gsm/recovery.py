"""The GSM recovery ladder: what the driver does, step by step, about a modem that does not answer.

A modem that answers nothing (no reply to three AT pings, found within about
``LIVENESS_S`` + 3 s of the hang, see ``drivers.gsm.modem``) ends its
session; each session that ends so climbs one step, each step reported as
a ``line.recovery`` event (``step``, ``reason``, ``attempt``) and followed by
its own wait before the port is opened again::

    failure  step                      done by                        then wait
    1        1 reopen_port             the base's reopen              base backoff (0.5 s doubling)
    2        2 modem_reset             AT+CFUN=1,1 after the reopen   MODEM_RESET_BOOT_S
    3        3 power_key_cycle         ModemPower.pulse_power_key     POWER_KEY_BOOT_S
                                       (board: key off pulse, shut-down wait, on pulse)
    4        4 power_cut               ModemPower.cut_power           POWER_CUT_BOOT_S
                                       (board: power_enable cut, else USB port, else reset)
    5        alarm                     gateway.alarm modem_unrecoverable (critical), once
    6...     power_cut again           at most every ALARM_REPEAT_S, reopening meanwhile

The ladder is the one place that reports a step: the ``ModemPower``
(``firmware_py.recovery.BoardModemPower`` on the daemon's lines) acts and
returns an outcome and a detail, and emits nothing, so each step is one
``line.recovery`` event. The waits are ``[[modems]]`` keys
(``modem_reset_boot_s``, ``power_key_boot_s``, ``power_cut_boot_s``).

A step the hardware does not have (no ``ModemPower``, or ``not_wired``) or
could not take (``failed``) is reported and the next one follows at once; a
step the board refused for now (``rate_limited``: it allows a few power
actions per hour, with growing pauses) is taken again at the next failure.
While the port cannot even be opened after a failure, every
``OPEN_FAILURES_PER_STEP`` failed opens count as one more failure (a modem
so hung that its USB device is gone). The first session that sets the modem
up again ends the episode; if the alarm was raised, a ``modem_recovered``
warning alarm says it is over.

The ladder runs in the line's worker thread and blocks it during power
actions and waits, noting progress every second and stopping early on stop.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from drivers.gsm.power import ModemPower, NoModemPower, PowerReport
from gateway.events import (
    AlarmSeverity,
    Event,
    GatewayAlarm,
    LineRecovery,
    RecoveryAction,
    RecoveryOutcome,
)

logger = logging.getLogger("edge112.drivers.gsm.recovery")

MODEM_RESET_BOOT_S = 15.0  # after AT+CFUN=1,1: a modem boots in 5-15 s
POWER_KEY_BOOT_S = 30.0  # after a power-key restart (SIM7600: 28 s shut-down alone)
POWER_CUT_BOOT_S = 30.0  # after the supply returns: boot and USB enumeration
ALARM_REPEAT_S = 600.0  # after the alarm, cut the power again at most this often
OPEN_FAILURES_PER_STEP = 3  # failed opens after a failure that count as one more failure
RECOVERY_WINDOW_S = 3600.0  # actions_last_hour counts ladder steps in this window
PROGRESS_STEP_S = 1.0

STEP_ACTIONS = {
    1: RecoveryAction.REOPEN_PORT,
    2: RecoveryAction.MODEM_RESET,
    3: RecoveryAction.POWER_KEY_CYCLE,
    4: RecoveryAction.POWER_CUT,
}
ALARM_STEP = 5


@dataclass(frozen=True)
class LadderTimings:
    """The waits after each step (seconds); tests shorten them."""

    modem_reset_boot_s: float = MODEM_RESET_BOOT_S
    power_key_boot_s: float = POWER_KEY_BOOT_S
    power_cut_boot_s: float = POWER_CUT_BOOT_S
    alarm_repeat_s: float = ALARM_REPEAT_S
    reset_command_timeout_s: float = 1.0


class _Channel(Protocol):
    def command(self, command: str, timeout: float = ...) -> list[str]: ...


class RecoveryLadder:
    """The ladder of one line; every method runs in the line's worker thread."""

    def __init__(
        self,
        line: str,
        emit: Callable[[Event], None],
        power: ModemPower | None,
        timings: LadderTimings,
        on_progress: Callable[[], None],
        stopping: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.line = line
        self._on_progress = on_progress
        self._stopping = stopping
        self._emit = emit
        self._power: ModemPower = power or NoModemPower()
        self._timings = timings
        self._clock = clock
        self._failures = 0  # sessions that ended with the modem silent, this episode
        self._attempts = 0  # ladder steps taken this episode
        self._reason = ""
        self._due: int | None = None  # the step to take next
        self._open_failures = 0
        self._alarmed = False
        self._last_power_at = float("-inf")
        self._steps_done: collections.deque[float] = collections.deque()

    @property
    def active(self) -> bool:
        """Whether an episode is under way (the modem failed and has not come back)."""
        return self._failures > 0

    @property
    def failures(self) -> int:
        return self._failures

    # What the driver tells the ladder ----------------------------------------------

    def failed(self, reason: str) -> None:
        """A session ended with the modem silent: the next step is due."""
        self._failures += 1
        self._reason = reason
        self._open_failures = 0
        self._due = min(self._failures, ALARM_STEP + 1)

    def recovered(self) -> None:
        """The modem was set up again: the episode is over."""
        if not self.active:
            return
        logger.warning("%s: modem answers again after %d ladder step(s)", self.line, self._attempts)
        if self._alarmed:
            self._emit(
                GatewayAlarm(
                    code="modem_recovered",
                    severity=AlarmSeverity.WARNING,
                    message=f"line {self.line}: the modem answers again",
                    detail={"line": self.line, "steps": self._attempts},
                )
            )
        self._failures = self._attempts = self._open_failures = 0
        self._due = None
        self._alarmed = False

    def before_setup(self, channel: _Channel, reset_command: str = "AT+CFUN=1,1") -> None:
        """Right after the port opened: step 2 sends the reset command, then waits for the boot."""
        self._open_failures = 0
        if self._due != 2:
            return
        self._due = None
        started = self._clock()
        outcome, detail = RecoveryOutcome.DONE, f"sent {reset_command}"
        try:
            channel.command(reset_command, self._timings.reset_command_timeout_s)
        except Exception as exc:  # a hung modem does not answer it; it is sent all the same
            detail = f"sent {reset_command} (no answer: {exc})"
        self._report(2, outcome, detail, started)
        self._wait(self._timings.modem_reset_boot_s)

    def between_sessions(self, opened: bool = True) -> None:
        """After a session ended (before the base's backoff): take the power steps due."""
        if not opened and self.active:
            self._open_failures += 1
            if self._open_failures >= OPEN_FAILURES_PER_STEP:
                self.failed(self._reason or "the port cannot be opened")
        step = self._due
        if step is None:
            return
        if step == 1:
            self._due = None
            self._report(1, RecoveryOutcome.DONE, "closing and reopening the port", self._clock())
            return
        if step == 2:
            return  # taken in before_setup, once the port is open again
        self._due = None
        self._climb(step)

    # Steps ------------------------------------------------------------------------

    def _climb(self, step: int) -> None:
        if step > ALARM_STEP:  # after the alarm: cut the power again now and then
            if self._clock() - self._last_power_at >= self._timings.alarm_repeat_s:
                self._power_step(4)
            return
        while step < ALARM_STEP:
            result = self._power_step(step)
            if result.outcome is RecoveryOutcome.DONE or self._stopping.is_set():
                return
            if result.outcome is RecoveryOutcome.RATE_LIMITED:
                self._failures = step - 1  # the board will allow it later: this step again
                return
            step += 1  # not wired or failed: the next step at once
            self._failures = max(self._failures, step)
        self._raise_alarm()

    def _power_step(self, step: int) -> PowerReport:
        started = self._clock()
        if step == 3:
            result = self._power.pulse_power_key(self._on_progress)
            wait_s = self._timings.power_key_boot_s
        else:
            result = self._power.cut_power(self._on_progress)
            wait_s = self._timings.power_cut_boot_s
        self._report(step, result.outcome, result.detail, started)
        if result.outcome is RecoveryOutcome.DONE:
            self._last_power_at = self._clock()
            self._wait(wait_s)
        return result

    def _raise_alarm(self) -> None:
        if self._alarmed:
            return
        self._alarmed = True
        logger.error("%s: modem does not come back; alarm raised", self.line)
        self._emit(
            GatewayAlarm(
                code="modem_unrecoverable",
                severity=AlarmSeverity.CRITICAL,
                message=f"line {self.line}: the modem does not answer after every recovery step",
                detail={"line": self.line, "steps": self._attempts, "reason": self._reason},
            )
        )

    def _report(self, step: int, outcome: RecoveryOutcome, detail: str, started: float) -> None:
        now = self._clock()
        while self._steps_done and now - self._steps_done[0] >= RECOVERY_WINDOW_S:
            self._steps_done.popleft()
        before = len(self._steps_done)
        self._steps_done.append(now)
        self._attempts += 1
        action = STEP_ACTIONS[step]
        level = logging.WARNING if outcome is RecoveryOutcome.DONE else logging.ERROR
        logger.log(level, "%s: recovery step %d %s: %s", self.line, step, action.value, detail)
        self._emit(
            LineRecovery(
                line=self.line,
                action=action,
                outcome=outcome,
                detail=detail,
                duration_ms=max(0, round((now - started) * 1000)),
                actions_last_hour=before,
                step=step,
                reason=self._reason,
                attempt=self._attempts,
            )
        )

    def _wait(self, seconds: float) -> None:
        deadline = self._clock() + seconds
        while (remaining := deadline - self._clock()) > 0:
            if self._stopping.wait(min(remaining, PROGRESS_STEP_S)):
                return
            self._on_progress()
