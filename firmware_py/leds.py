"""LEDs: what the box shows at a glance, driven by one thread from the gateway's state.

One controller thread ("edge112-leds") owns every ``led_*`` pin. Each tick
(:data:`TICK_S`) it asks the gateway for a :class:`BoardView` (cheap: no I/O),
picks each LED's pattern and writes only the LEDs whose level changed. All
LEDs blink in phase (the pattern is a function of the monotonic clock), so
two LEDs on the same pattern flash together.

Patterns (period in brackets)::

    pattern      looks like                          used for
    off          dark
    on           steady
    slow         0.5 s on, 0.5 s off       [1 s]     in a call; broker unreachable;
                                                     backlog above board.backlog_warn;
                                                     a warning alarm
    fast         0.125 s on, 0.125 s off   [0.25 s]  ringing; storage fault (disk refuses
                                                     writes); locate (edge112 board blink)
    flash        0.1 s on, 1.9 s off       [2 s]     line fault (modem down); gateway
                                                     unhealthy (a thread stuck)
    heartbeat    0.1 on, 0.1 off, 0.1 on, 1.7 off    gateway starting

LED meanings::

    LED            off              on            slow           fast           flash
    led_<line>     not started      ready (up)    in a call      ringing        fault (down)
    led_ready      stopped          healthy       -              -              unhealthy
                                                                 (heartbeat: starting)
    led_broker     no broker set    connected     unreachable    -              -
    led_backlog    backlog small    -             >= backlog_warn  storage fault -
    led_alarm      no alarm         critical      warning        -              -

Locate (``edge112 board blink --seconds 30``, or :meth:`LedController.locate`):
every LED on ``fast`` together. Lamp test (the ``button`` pressed): every LED
on for :data:`LAMP_TEST_S`, so a technician sees a dead LED at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from firmware_py.board import Board

log = logging.getLogger("edge112.leds")

TICK_S = 0.05  # the fastest pattern step is 0.1 s
LAMP_TEST_S = 3.0
BUTTON_DEBOUNCE_S = 0.05


@dataclass(frozen=True)
class Pattern:
    """Steps of ``(lit, seconds)`` repeated forever; ``lit_at(t)`` is its level at time t."""

    name: str
    steps: tuple[tuple[bool, float], ...]

    @property
    def period_s(self) -> float:
        return sum(seconds for _, seconds in self.steps)

    def lit_at(self, moment: float) -> bool:
        phase = moment % self.period_s
        for lit, seconds in self.steps:
            if phase < seconds:
                return lit
            phase -= seconds
        return self.steps[-1][0]


OFF = Pattern("off", ((False, 1.0),))
ON = Pattern("on", ((True, 1.0),))
SLOW = Pattern("slow", ((True, 0.5), (False, 0.5)))
FAST = Pattern("fast", ((True, 0.125), (False, 0.125)))
FLASH = Pattern("flash", ((True, 0.1), (False, 1.9)))
HEARTBEAT = Pattern("heartbeat", ((True, 0.1), (False, 0.1), (True, 0.1), (False, 1.7)))
PATTERNS = {p.name: p for p in (OFF, ON, SLOW, FAST, FLASH, HEARTBEAT)}


class LineLed(StrEnum):
    """What a line's LED shows."""

    OFF = "off"  # not started
    READY = "ready"  # up, idle
    RINGING = "ringing"
    IN_CALL = "in_call"
    FAULT = "fault"  # down


class GatewayLed(StrEnum):
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    STOPPED = "stopped"


LINE_PATTERNS = {
    LineLed.OFF: OFF,
    LineLed.READY: ON,
    LineLed.RINGING: FAST,
    LineLed.IN_CALL: SLOW,
    LineLed.FAULT: FLASH,
}
GATEWAY_PATTERNS = {
    GatewayLed.STARTING: HEARTBEAT,
    GatewayLed.HEALTHY: ON,
    GatewayLed.UNHEALTHY: FLASH,
    GatewayLed.STOPPED: OFF,
}


@dataclass(frozen=True)
class BoardView:
    """The gateway's state as the LEDs need it (built often: keep it cheap)."""

    gateway: GatewayLed = GatewayLed.STARTING
    broker_configured: bool = True
    broker_connected: bool = False
    backlog: int = 0
    storage_fault: bool = False
    alarm: str | None = None  # None, "warning" or "critical"
    lines: Mapping[str, LineLed] = field(default_factory=dict)


def patterns_for(view: BoardView, backlog_warn: int) -> dict[str, Pattern]:
    """Each LED's pattern for ``view`` (LED names as in ``[board.pins]``)."""
    backlog = SLOW if view.backlog >= backlog_warn else OFF
    backlog = FAST if view.storage_fault else backlog
    broker = ON if view.broker_connected else SLOW
    broker = broker if view.broker_configured else OFF
    alarm = {None: OFF, "warning": SLOW, "critical": ON}.get(view.alarm, ON)
    result = {
        "led_ready": GATEWAY_PATTERNS[view.gateway],
        "led_broker": broker,
        "led_backlog": backlog,
        "led_alarm": alarm,
    }
    for line, state in view.lines.items():
        result[f"led_{line}"] = LINE_PATTERNS[state]
    return result


class LedController:
    """The one owner of the ``led_*`` pins: a thread that shows ``view()`` on them."""

    def __init__(
        self,
        board: Board,
        view: Callable[[], BoardView],
        *,
        backlog_warn: int = 100,
        on_button: Callable[[], None] | None = None,
        tick_s: float = TICK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.board = board
        self.view = view
        self.backlog_warn = backlog_warn
        self.on_button = on_button
        self.tick_s = tick_s
        self.clock = clock
        self.leds = [name for name in board.pins if name.startswith("led_")]
        self.shown: dict[str, str] = {}  # led -> pattern name now shown (for status)
        self._written: dict[str, bool] = {}
        self._override: tuple[Pattern, float] | None = None  # locate / lamp test, until
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._button_was = False
        self._view_failed = False

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="edge112-leds", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for led in self.leds:
            self._write(led, False)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def locate(self, seconds: float) -> None:
        """Every LED on ``fast`` for ``seconds`` (find the box in a rack)."""
        with self._lock:
            self._override = (FAST, self.clock() + seconds)

    def lamp_test(self, seconds: float = LAMP_TEST_S) -> None:
        with self._lock:
            self._override = (ON, self.clock() + seconds)

    def step(self) -> None:
        """One tick: read the button, pick patterns, write the LEDs that change."""
        now = self.clock()
        self._poll_button()
        with self._lock:
            override = self._override
            if override is not None and now >= override[1]:
                self._override = override = None
        chosen = self._patterns() if override is None else dict.fromkeys(self.leds, override[0])
        for led in self.leds:
            pattern = chosen.get(led, OFF)
            self.shown[led] = pattern.name
            self._write(led, pattern.lit_at(now))

    def _patterns(self) -> dict[str, Pattern]:
        try:
            view = self.view()
        except Exception:
            if not self._view_failed:
                log.exception("reading the gateway state for the LEDs failed")
                self._view_failed = True
            view = BoardView(gateway=GatewayLed.UNHEALTHY, alarm="critical")
        else:
            self._view_failed = False
        return patterns_for(view, self.backlog_warn)

    def _poll_button(self) -> None:
        if not self.board.has("button"):
            return
        try:
            pressed = self.board.get("button")
        except Exception:
            return
        if pressed and not self._button_was:
            log.info("button pressed: lamp test")
            self.lamp_test()
            if self.on_button is not None:
                try:
                    self.on_button()
                except Exception:
                    log.exception("button handler failed")
        self._button_was = pressed

    def _write(self, led: str, lit: bool) -> None:
        if self._written.get(led) == lit:
            return
        try:
            self.board.set(led, lit)
        except Exception:  # a LED never takes the gateway down
            log.debug("setting %s failed", led, exc_info=True)
            return
        self._written[led] = lit

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.step()
            except Exception:
                log.exception("LED step failed")
