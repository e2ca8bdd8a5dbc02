"""Modem power control for the GSM recovery ladder: power key, reset, power cut, USB port.

The GSM driver decides *when* a modem is hung (it answers nothing); this
module does *what* the board can do about it, for one line at a time::

    ladder step           needs                       ModemPowerControl method
    soft (AT+CFUN=1,1)    nothing: the driver's own   -
    power key off + on    power_key_<line>            power_key(line, on=False/True)
    reset line            reset_<line>                reset(line)
    power cut             power_enable_<line>         power_cut(line)
    USB port power        [board.modems.<line>]       usb_power_cycle(line)
                          usb_port
    strongest available   any of the above            power_cycle(line)

    what the GSM ladder calls (drivers.gsm.power.ModemPower), through BoardModemPower:
    step 3 power_key_cycle  power_key_<line>          power_key_cycle(line): off pulse, the
                                                      model's shut-down wait, on pulse
    step 4 power_cut        the strongest of          cut_power(line): power cut, else USB
                            power_enable / usb_port   port power cycle, else reset pulse
                            / reset

Events, one per action, never two: an action asked for directly (the
methods above with ``report=True``, the default: ``edge112 board``, a
site script) is reported here as a ``line.recovery`` event with the board's
``action`` (``power_key_off``, ``power_key_on``, ``reset``, ``power_cut``,
``usb_power_cycle``). An action the GSM ladder takes through
:class:`BoardModemPower` is *not* reported here (``report=False``): the
ladder reports it as its step (``power_key_cycle`` or ``power_cut``, with
``step``, ``reason``, ``attempt``), with this module's outcome and detail
(which pins, which timing, or why it was refused). The rate limit counts
both kinds alike.

Power-key timings (how long to hold the key *active*, i.e. PWRKEY pulled
low, usually through an NPN transistor driven high by the GPIO) are per
model, from the vendors' hardware design manuals where they could be
checked (see :data:`POWER_PROFILES`; ``source`` says what was verified and
what was not). A pulse is held a margin above the documented minimum and
below any documented maximum (holding a SIM800's key past 33 s turns it on
again).

Rate limit (a broken modem cannot be power-cycled in a loop): per line, at
most :data:`RECOVERY_MAX_PER_HOUR` actions in any hour, and after each
action a pause before the next that starts at :data:`RECOVERY_PAUSE_INITIAL_S`
and doubles up to :data:`RECOVERY_PAUSE_MAX_S`; an hour without actions
starts the pause over. A refused action is reported (outcome
``rate_limited``) and returns at once.

Blocking: each method runs in the caller's thread (the line's worker) and
blocks for the pulses and pauses, at most about 35 s (SIM7600: 3 s off
pulse, 28 s shut-down, 0.6 s on pulse); ``on_progress`` is called at least
every second meanwhile (pass the driver's ``_note_progress`` so the daemon
does not take the worker for stuck), and ``stop`` cuts the waits short.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from firmware_py import usb_power
from firmware_py.board import Board, BoardError
from firmware_py.board_settings import ModemWiring
from gateway.events import Event, LineRecovery, RecoveryAction, RecoveryOutcome

log = logging.getLogger("edge112.recovery")

Progress = Callable[[], None]  # as drivers.gsm.power.Progress (the board imports no driver)

RECOVERY_MAX_PER_HOUR = 4  # actions per line in any rolling hour
RECOVERY_WINDOW_S = 3600.0
RECOVERY_PAUSE_INITIAL_S = 60.0  # after an action, the next one waits at least this long
RECOVERY_PAUSE_MAX_S = 1800.0  # ... doubling after each action up to this
PROGRESS_STEP_S = 1.0  # on_progress is called at least this often while waiting


@dataclass(frozen=True)
class PowerProfile:
    """How one modem model is powered by its key and reset lines (seconds)."""

    model: str
    on_pulse_s: float  # power key held active to switch the module on
    off_pulse_s: float  # ... to switch it off (it logs off the network, then shuts down)
    off_settle_s: float  # after the off pulse, before the on pulse: the shut-down takes this
    reset_pulse_s: float  # reset line held active
    power_off_s: float  # supply off this long on a power cut (rails drain)
    source: str  # where the numbers come from, and what was not verified


POWER_PROFILES: dict[str, PowerProfile] = {
    profile.model: profile
    for profile in (
        PowerProfile(
            "quectel-ec25",
            on_pulse_s=0.6,
            off_pulse_s=0.8,
            off_settle_s=15.0,
            reset_pulse_s=0.3,
            power_off_s=2.0,
            source="Quectel EC25 Hardware Design: PWRKEY low >= 500 ms turns on, >= 650 ms "
            "turns off (values as specified for this project; the EC25 manual itself was not "
            "at hand to check; the sibling Quectel BG77 Hardware Design 3.6.2.1 gives "
            "650-1500 ms for power-off, so 800 ms sits inside both). Shut-down wait: Quectel "
            "modules log off the network for up to ~12 s (M66/MC20 Hardware Design notes).",
        ),
        PowerProfile(
            "quectel-eg25",
            on_pulse_s=0.6,
            off_pulse_s=0.8,
            off_settle_s=15.0,
            reset_pulse_s=0.3,
            power_off_s=2.0,
            source="as quectel-ec25 (the EG25-G shares the EC25 power interface; not verified)",
        ),
        PowerProfile(
            "simcom-sim7600",
            on_pulse_s=0.6,
            off_pulse_s=3.0,
            off_settle_s=28.0,
            reset_pulse_s=0.3,
            power_off_s=2.0,
            source="SIMCom SIM7600 Hardware Design: PWRKEY low >= 500 ms (typ.) turns on, "
            ">= 2.5 s turns off (as specified for this project; the SIM7600 manual was not at "
            "hand; SIMCom SIM7912/SIM7906 Hardware Design V1.02 Table 11 gives Toff 2.5-5 s and "
            "USB off 27-28 s after it, hence 3 s and a 28 s wait).",
        ),
        PowerProfile(
            "simcom-sim800",
            on_pulse_s=1.2,
            off_pulse_s=2.0,
            off_settle_s=5.0,
            reset_pulse_s=0.2,
            power_off_s=2.0,
            source="SIMCom SIM800 Hardware Design V1.09/V1.10 4.2.2.1: power off by pulling "
            "PWRKEY low for at least 1.5 s (1.5 s < t < 33 s; past 33 s it powers up again; "
            "V1.05 said 1 s); power on: low for at least 1 s (as specified for this project; "
            "the figure's on-pulse label was not legible in the copy found). Reset pulse: not "
            "verified.",
        ),
        PowerProfile(
            "simulated",
            on_pulse_s=0.1,
            off_pulse_s=0.2,
            off_settle_s=0.3,
            reset_pulse_s=0.1,
            power_off_s=0.3,
            source="the simulated modem (drivers.simulated.gsm_modem) on the simulated board: "
            "it follows its pins at once, so the pulses only need to be seen",
        ),
        PowerProfile(
            "generic",
            on_pulse_s=1.0,
            off_pulse_s=2.0,
            off_settle_s=15.0,
            reset_pulse_s=0.3,
            power_off_s=2.0,
            source="a conservative default for an unlisted module: check its hardware design",
        ),
    )
}


class RecoveryLimiter:
    """Per-line rate limit: :data:`RECOVERY_MAX_PER_HOUR` and a doubling pause (see module doc)."""

    def __init__(
        self,
        *,
        max_per_window: int = RECOVERY_MAX_PER_HOUR,
        window_s: float = RECOVERY_WINDOW_S,
        pause_initial_s: float = RECOVERY_PAUSE_INITIAL_S,
        pause_max_s: float = RECOVERY_PAUSE_MAX_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_per_window = max_per_window
        self.window_s = window_s
        self.pause_initial_s = pause_initial_s
        self.pause_max_s = pause_max_s
        self.clock = clock
        self._done: collections.deque[float] = collections.deque()
        self._pause_s = 0.0

    def recent(self) -> int:
        """Actions in the last window."""
        now = self.clock()
        while self._done and now - self._done[0] >= self.window_s:
            self._done.popleft()
        return len(self._done)

    def refusal(self) -> str | None:
        """Why an action now would be refused, or None when it may run."""
        recent = self.recent()
        if recent >= self.max_per_window:
            wait = self._done[0] + self.window_s - self.clock()
            return (
                f"{recent} actions in the last {self.window_s / 60:g} min (at most "
                f"{self.max_per_window}); next possible in {wait:.0f} s"
            )
        if self._done:
            since = self.clock() - self._done[-1]
            if since < self._pause_s:
                return f"pausing {self._pause_s:.0f} s after the last action ({since:.0f} s ago)"
        return None

    def record(self) -> None:
        """An action ran: count it and lengthen the pause before the next."""
        now = self.clock()
        quiet = not self._done or now - self._done[-1] >= self.window_s
        self._pause_s = self.pause_initial_s if quiet else min(self._pause_s * 2, self.pause_max_s)
        self._done.append(now)


class ActionResult(NamedTuple):
    """What one board action did: the contract's outcome and a line saying what, or why not."""

    outcome: RecoveryOutcome
    detail: str


class ModemPowerControl:
    """Power actions on modem lines through a :class:`Board`, rate-limited and reported."""

    def __init__(
        self,
        board: Board,
        modems: Mapping[str, ModemWiring],
        emit: Callable[[Event], None],
        *,
        profiles: Mapping[str, PowerProfile] = POWER_PROFILES,
        limiter: Callable[[], RecoveryLimiter] = RecoveryLimiter,
        sysfs_root: Path = usb_power.SYSFS_ROOT,
        stop: threading.Event | None = None,
    ) -> None:
        self.board = board
        self.modems = dict(modems)
        self.emit = emit
        self.profiles = profiles
        self.sysfs_root = sysfs_root
        self._stop = stop or threading.Event()
        self._limiter_factory = limiter
        self._limiters: dict[str, RecoveryLimiter] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    # ------------------------------------------------------------ what the ladder asks

    def profile(self, line: str) -> PowerProfile:
        wiring = self.modems.get(line)
        return self.profiles[wiring.model if wiring else "generic"]

    def capabilities(self, line: str) -> list[RecoveryAction]:
        """The actions this board can take on ``line``, weakest first."""
        actions = []
        if self.board.has(f"power_key_{line}"):
            actions += [RecoveryAction.POWER_KEY_OFF, RecoveryAction.POWER_KEY_ON]
        if self.board.has(f"reset_{line}"):
            actions.append(RecoveryAction.RESET)
        wiring = self.modems.get(line)
        if wiring and wiring.usb_port:
            actions.append(RecoveryAction.USB_POWER_CYCLE)
        if self.board.has(f"power_enable_{line}"):
            actions.append(RecoveryAction.POWER_CUT)
        return actions

    def power_key(
        self,
        line: str,
        *,
        on: bool,
        on_progress: Progress | None = None,
        report: bool = True,
    ) -> RecoveryOutcome:
        """One power-key pulse with the model's on (True) or off timing."""
        action = RecoveryAction.POWER_KEY_ON if on else RecoveryAction.POWER_KEY_OFF
        profile = self.profile(line)
        seconds = profile.on_pulse_s if on else profile.off_pulse_s
        return self._act(
            line,
            action,
            f"power_key_{line}",
            lambda: self._pulse(f"power_key_{line}", seconds, on_progress),
            f"{profile.model}: power key held {seconds:g} s",
            report=report,
        ).outcome

    def reset(
        self, line: str, on_progress: Progress | None = None, *, report: bool = True
    ) -> RecoveryOutcome:
        return self._reset(line, on_progress, report).outcome

    def power_cut(
        self, line: str, on_progress: Progress | None = None, *, report: bool = True
    ) -> RecoveryOutcome:
        """Supply off (``power_enable_<line>`` inactive) for the model's time, then on."""
        return self._power_cut(line, on_progress, report).outcome

    def usb_power_cycle(
        self, line: str, on_progress: Progress | None = None, *, report: bool = True
    ) -> RecoveryOutcome:
        return self._usb_power_cycle(line, on_progress, report).outcome

    def power_key_cycle(
        self, line: str, on_progress: Progress | None = None, *, report: bool = True
    ) -> ActionResult:
        """Restart the modem with its key: off pulse, the model's shut-down wait, on pulse.

        One rate-limit slot for the whole cycle; with ``report``, one event per pulse.
        """
        profile, pin = self.profile(line), f"power_key_{line}"
        off = self._act(
            line,
            RecoveryAction.POWER_KEY_OFF,
            pin,
            lambda: self._pulse(pin, profile.off_pulse_s, on_progress),
            f"{profile.model}: power key held {profile.off_pulse_s:g} s",
            report=report,
        )
        if off.outcome is not RecoveryOutcome.DONE:
            return off
        self._wait(profile.off_settle_s, on_progress)
        if self._stop.is_set():
            return ActionResult(RecoveryOutcome.FAILED, "stopped during the shut-down wait")
        on = self._act(
            line,
            RecoveryAction.POWER_KEY_ON,
            pin,
            lambda: self._pulse(pin, profile.on_pulse_s, on_progress),
            f"{profile.model}: power key held {profile.on_pulse_s:g} s "
            f"after {profile.off_settle_s:g} s off",
            counted=False,
            report=report,
        )
        if on.outcome is not RecoveryOutcome.DONE:
            return on
        return ActionResult(
            RecoveryOutcome.DONE,
            f"board {pin}: {profile.model}, off pulse {profile.off_pulse_s:g} s, "
            f"{profile.off_settle_s:g} s shut-down, on pulse {profile.on_pulse_s:g} s",
        )

    def cut_power(
        self, line: str, on_progress: Progress | None = None, *, report: bool = True
    ) -> ActionResult:
        """The strongest way to remove the modem's power that is wired: a power cut, else a
        USB port power cycle, else a reset pulse (else ``not_wired``)."""
        actions = self.capabilities(line)
        if RecoveryAction.POWER_CUT in actions:
            return self._power_cut(line, on_progress, report)
        if RecoveryAction.USB_POWER_CYCLE in actions:
            return self._usb_power_cycle(line, on_progress, report)
        if RecoveryAction.RESET in actions:
            return self._reset(line, on_progress, report)
        return self._report(
            line,
            RecoveryAction.POWER_CUT,
            ActionResult(
                RecoveryOutcome.NOT_WIRED,
                f"no power_enable_{line}, board.modems.{line}.usb_port or reset_{line}",
            ),
            0,
            report=report,
        )

    def power_cycle(
        self, line: str, on_progress: Progress | None = None, *, report: bool = True
    ) -> RecoveryOutcome:
        """The strongest action wired: power cut, else power key off + on, else USB port, else
        reset. One rate-limit slot for the whole cycle; one event per step."""
        actions = self.capabilities(line)
        if RecoveryAction.POWER_CUT not in actions and RecoveryAction.POWER_KEY_OFF in actions:
            return self.power_key_cycle(line, on_progress, report=report).outcome
        if not actions:
            return self._report(
                line,
                RecoveryAction.POWER_CUT,
                ActionResult(
                    RecoveryOutcome.NOT_WIRED,
                    "no power key, reset, power enable or USB port for this line",
                ),
                0,
                report=report,
            ).outcome
        return self.cut_power(line, on_progress, report=report).outcome

    # ------------------------------------------------------------ internals

    def _reset(self, line: str, on_progress: Progress | None, report: bool) -> ActionResult:
        profile = self.profile(line)
        return self._act(
            line,
            RecoveryAction.RESET,
            f"reset_{line}",
            lambda: self._pulse(f"reset_{line}", profile.reset_pulse_s, on_progress),
            f"board reset_{line}: {profile.model}, held {profile.reset_pulse_s:g} s",
            report=report,
        )

    def _power_cut(self, line: str, on_progress: Progress | None, report: bool) -> ActionResult:
        profile, pin = self.profile(line), f"power_enable_{line}"

        def run() -> None:
            self.board.set(pin, False)
            try:
                self._wait(profile.power_off_s, on_progress)
            finally:
                self.board.set(pin, True)

        return self._act(
            line,
            RecoveryAction.POWER_CUT,
            pin,
            run,
            f"board {pin}: supply off {profile.power_off_s:g} s",
            report=report,
        )

    def _usb_power_cycle(
        self, line: str, on_progress: Progress | None, report: bool
    ) -> ActionResult:
        wiring = self.modems.get(line)
        port = wiring.usb_port if wiring else None

        def run() -> None:
            assert port is not None
            usb_power.cycle_port(
                port,
                usb_power.USB_OFF_S,
                sysfs_root=self.sysfs_root,
                wait=lambda s: self._wait(s, on_progress),
            )

        return self._act(
            line,
            RecoveryAction.USB_POWER_CYCLE,
            None if port is None else "usb",
            run,
            f"USB port {port} off {usb_power.USB_OFF_S:g} s",
            report=report,
        )

    def _limiter(self, line: str) -> tuple[RecoveryLimiter, threading.Lock]:
        with self._guard:
            if line not in self._limiters:
                self._limiters[line] = self._limiter_factory()
                self._locks[line] = threading.Lock()
            return self._limiters[line], self._locks[line]

    def _act(
        self,
        line: str,
        action: RecoveryAction,
        needs: str | None,
        run: Callable[[], object],
        detail: str,
        *,
        counted: bool = True,
        report: bool = True,
    ) -> ActionResult:
        if needs is None or (needs != "usb" and not self.board.has(needs)):
            what = needs or f"board.modems.{line}.usb_port"
            result = ActionResult(RecoveryOutcome.NOT_WIRED, f"no {what}")
            return self._report(line, action, result, 0, report=report)
        limiter, lock = self._limiter(line)
        with lock:
            if counted:
                refusal = limiter.refusal()
                if refusal is not None:
                    result = ActionResult(RecoveryOutcome.RATE_LIMITED, f"board: {refusal}")
                    return self._report(line, action, result, 0, report=report)
            before = limiter.recent()
            started = time.monotonic()
            try:
                run()
            except (BoardError, OSError, KeyError, ValueError) as error:
                result = ActionResult(RecoveryOutcome.FAILED, str(error))
            else:
                result = ActionResult(RecoveryOutcome.DONE, detail)
            finally:
                if counted:
                    limiter.record()
            elapsed = int((time.monotonic() - started) * 1000)
            return self._report(line, action, result, elapsed, before, report=report)

    def _report(
        self,
        line: str,
        action: RecoveryAction,
        result: ActionResult,
        duration_ms: int,
        actions_last_hour: int | None = None,
        *,
        report: bool = True,
    ) -> ActionResult:
        if not report:  # the caller (the GSM ladder) reports it as its step
            return result
        if actions_last_hour is None:
            actions_last_hour = self._limiter(line)[0].recent()
        outcome, detail = result
        level = logging.WARNING if outcome is RecoveryOutcome.DONE else logging.ERROR
        log.log(level, "%s: %s %s: %s", line, action.value, outcome.value, detail)
        event = LineRecovery(
            line=line,
            action=action,
            outcome=outcome,
            detail=detail,
            duration_ms=duration_ms,
            actions_last_hour=actions_last_hour,
        )
        try:
            self.emit(event)
        except Exception:
            log.exception("%s: reporting %s failed", line, action.value)
        return result

    def _pulse(self, pin: str, seconds: float, on_progress: Progress | None) -> None:
        self.board.set(pin, True)
        try:
            self._wait(seconds, on_progress)
        finally:
            self.board.set(pin, False)

    def _wait(self, seconds: float, on_progress: Progress | None) -> None:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stop.wait(min(remaining, PROGRESS_STEP_S)):
                return
            if on_progress is not None:
                on_progress()


class BoardModemPower:
    """``drivers.gsm.power.ModemPower`` for one line, through the board's power control
    (structurally: ``ActionResult`` is a ``drivers.gsm.power.PowerReport``).

    Built by the daemon for every GSM line and handed to its driver's ladder
    (``gateway.families.LineFamily.build_driver``'s ``power``). Step 3 is the
    power-key restart, step 4 the strongest supply action wired; neither
    emits an event (the ladder reports the step with this outcome and detail).
    """

    def __init__(self, control: ModemPowerControl, line: str) -> None:
        self.control = control
        self.line = line

    def pulse_power_key(self, on_progress: Progress) -> ActionResult:
        return self.control.power_key_cycle(self.line, on_progress, report=False)

    def cut_power(self, on_progress: Progress) -> ActionResult:
        return self.control.cut_power(self.line, on_progress, report=False)
