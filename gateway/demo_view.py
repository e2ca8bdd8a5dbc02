"""What ``edge112 demo`` prints while it runs: one line per event received, and the LEDs.

* :func:`describe`: one line of the live view for an event as the subscriber
  received it (caller numbers masked).
* :class:`LedWatcher`: the gateway's line LEDs as the simulated board shows them
  (``[board] backend = "simulated"``). It only reads: every tick it looks at the
  pattern the LED controller put on each ``led_<line>`` pin
  (``LedController.shown``) and prints a line when one changes, so a newcomer
  sees ``gsm0`` go from ready (steady) to ringing (fast blink) to in a call
  (slow blink) and back, beside the events that caused it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from gateway.privacy import mask_number

LED_POLL_S = 0.05  # the LED controller's own tick (firmware_py.leds.TICK_S)
LINE_LED_MEANINGS = {  # pattern name -> what a line LED in that pattern says (firmware_py.leds)
    "off": "off",
    "on": "ready",
    "fast": "ringing",
    "slow": "in call",
    "flash": "fault",
    "heartbeat": "starting",
}
BUSY = ("ringing", "in call")


def describe(event: dict[str, Any]) -> str:
    """One line of the live view for an event as received."""
    data = event.get("data", {})
    kind = event.get("type", "?")
    detail = ""
    if kind == "call.offered":
        detail = f"{mask_number(data.get('number')):>16} {data.get('presentation')}"
    elif kind == "call.answered":
        detail = f"after {data.get('ring_count')} ring(s), {data.get('ring_time_ms')} ms"
    elif kind == "call.ended":
        detail = f"{data.get('duration_ms', 0) / 1000:.1f} s, {data.get('cause')}"
    elif kind == "call.abandoned":
        detail = f"terputus after {data.get('ring_count')} ring(s), {data.get('cause')}"
        if data.get("outcome") is not None:  # a span: abandoned by the caller, or refused
            detail = f"{data['outcome']} after {data.get('ring_time_ms')} ms, {data.get('cause')}"
    if data.get("b_channel") is not None:  # span calls: the B-channel, the Q.850 cause
        detail += f", B-channel {data['b_channel']}"
    if data.get("q850_cause") is not None:
        detail += f", Q.850 cause {data['q850_cause']} from the {data.get('cleared_by')} side"
    elif kind == "call.dtmf":
        detail = f"digit {data.get('digit')} at {data.get('offset_ms', 0) / 1000:.1f} s"
    elif kind == "call.audio_summary":
        first = data.get("first_speech_ms")
        silent_call = data.get("silent_call") or {}
        detail = (
            f"speech {data.get('speech_ratio', 0):.0%}"
            + (f", first at {first / 1000:.1f} s" if first is not None else ", nobody spoke")
            + (f", digits {data['digits']}" if data.get("digits") else "")
            + (f", category {data['category']}" if data.get("category") else "")
            + (", prompted" if silent_call.get("prompted") else "")
            + (", pressed 55" if silent_call.get("pressed_55") else "")
            + (", recorded" if data.get("recording") else "")
        )
    elif kind == "line.status":
        signal = data.get("signal_dbm")
        detail = f"{data.get('state')}: {data.get('detail')}" + (
            f", {signal} dBm" if signal is not None else ""
        )
    elif kind == "gateway.alarm":
        detail = f"{data.get('severity')}: {data.get('message')}"
    call = str(data.get("call_id", ""))[-6:]
    return (
        f"  {event.get('ts', '')[11:23]}  seq {event.get('seq'):>4}  "
        f"{data.get('line', '-'):5} {kind:15} {call:6} {detail}"
    )


class LedWatcher:
    """Prints the line LEDs' meaning whenever one of them changes pattern."""

    def __init__(
        self, shown: Callable[[], Mapping[str, str]], lines: list[str], say: Callable[[str], None]
    ) -> None:
        self._shown = shown
        self.lines = lines
        self._say = say
        self.changes = 0
        self.seen: set[tuple[str, str]] = set()  # (line, meaning) pairs shown at least once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-leds", daemon=True)

    def start(self) -> LedWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no line LED shows a call (ringing or in call); False at the deadline."""
        deadline = time.monotonic() + timeout
        while any(state in BUSY for state in self.states().values()):
            if time.monotonic() > deadline:
                return False
            time.sleep(LED_POLL_S)
        time.sleep(2 * LED_POLL_S)  # let the watcher print the idle state it now sees
        return True

    def states(self) -> dict[str, str]:
        shown = dict(self._shown())
        return {
            line: LINE_LED_MEANINGS.get(shown.get(f"led_{line}", "off"), "?") for line in self.lines
        }

    def _run(self) -> None:
        last: dict[str, str] = {}
        while not self._stop.wait(LED_POLL_S):
            states = self.states()
            if states == last or all(state == "off" for state in states.values()):
                continue
            last = states
            self.changes += 1
            self.seen.update(states.items())
            now = time.time()
            stamp = time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}"
            self._say(
                f"  {stamp}  LEDs      "
                + "  ".join(f"{line} {state}" for line, state in states.items())
            )
