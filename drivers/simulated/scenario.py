"""Scripts for the simulated GSM modem: calls and faults at set times, from TOML or at random.

A scenario file lists what happens, in seconds from the start::

    [modem]                          # optional; command-line options win
    model = "huawei_e173"            # quectel_ec25 | simcom_sim7600 | simcom_sim800 | huawei_e173
    chunking = "random"              # line | byte | random
    seed = 7

    [[calls]]
    at_s = 1.0
    number = "+6281234567890"        # leave out for no caller id (SIM-less 112 call)
    presentation = "allowed"         # allowed | restricted | unavailable (default from number)
    hangup_after_rings = 3           # caller gives up unless answered by then
    talk_s = 20.0                    # after an answer, caller talks this long
    ring_interval_s = 5.0
    announce_end = true              # false: the end URC is lost, only AT+CLCC tells

    [[injections]]
    at_s = 2.5
    text = "garbage\\r\\n"            # or hex = "ff fe 00"; repeat = 600 for over-long lines

    vanish_at_s = 60.0               # optional, top level: the modem is unplugged

Unknown keys are errors, so a typo fails loudly instead of being ignored.
``random_calls`` makes a realistic 112 mix instead. ``play`` runs a scenario
against a modem.
"""

from __future__ import annotations

import random
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.simulated.gsm_modem import (
    MODELS,
    RING_INTERVAL_S,
    Chunking,
    PlacedCall,
    SimulatedCall,
    SimulatedGsmModem,
)
from gateway.events import Presentation

_CALL_KEYS = {
    "at_s",
    "number",
    "presentation",
    "hangup_after_rings",
    "talk_s",
    "ring_interval_s",
    "announce_end",
}
_INJECTION_KEYS = {"at_s", "text", "hex", "repeat"}
_MODEM_KEYS = {"model", "chunking", "seed"}
_TOP_KEYS = {"modem", "calls", "injections", "vanish_at_s"}


class ScenarioError(ValueError):
    """A scenario file that cannot be played; the message says where and why."""


@dataclass(frozen=True)
class ScheduledCall:
    at_s: float
    call: SimulatedCall


@dataclass(frozen=True)
class ScheduledInjection:
    at_s: float
    raw: bytes


@dataclass(frozen=True)
class Scenario:
    calls: tuple[ScheduledCall, ...] = ()
    injections: tuple[ScheduledInjection, ...] = ()
    vanish_at_s: float | None = None
    model: str | None = None
    chunking: str | None = None
    seed: int | None = None


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; ScenarioError on any problem."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc
    return parse_scenario(data, str(path))


def parse_scenario(data: dict[str, Any], source: str = "scenario") -> Scenario:
    _check_keys(data, _TOP_KEYS, source)
    modem = data.get("modem", {})
    if not isinstance(modem, dict):
        raise ScenarioError(f"{source}: [modem] must be a table")
    _check_keys(modem, _MODEM_KEYS, f"{source} [modem]")
    calls = tuple(
        _parse_call(entry, f"{source} calls[{index}]")
        for index, entry in enumerate(_table_list(data, "calls", source))
    )
    injections = tuple(
        _parse_injection(entry, f"{source} injections[{index}]")
        for index, entry in enumerate(_table_list(data, "injections", source))
    )
    vanish_at_s = data.get("vanish_at_s")
    return Scenario(
        calls=tuple(sorted(calls, key=lambda scheduled: scheduled.at_s)),
        injections=tuple(sorted(injections, key=lambda scheduled: scheduled.at_s)),
        vanish_at_s=None if vanish_at_s is None else _seconds(vanish_at_s, f"{source} vanish_at_s"),
        model=_model(modem.get("model"), source),
        chunking=_chunking(modem.get("chunking"), source),
        seed=_optional_int(modem.get("seed"), f"{source} [modem] seed"),
    )


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(unknown)}")


def _table_list(data: dict[str, Any], key: str, source: str) -> list[dict[str, Any]]:
    entries = data.get(key, [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise ScenarioError(f"{source}: {key} must be an array of tables ([[{key}]])")
    return entries


def _parse_call(entry: dict[str, Any], where: str) -> ScheduledCall:
    _check_keys(entry, _CALL_KEYS, where)
    presentation = entry.get("presentation")
    try:
        call = SimulatedCall(
            number=_optional_str(entry.get("number"), f"{where} number"),
            presentation=None if presentation is None else Presentation(presentation),
            hangup_after_rings=_optional_int(
                entry.get("hangup_after_rings"), f"{where} hangup_after_rings"
            ),
            talk_s=_seconds(entry.get("talk_s", 10.0), f"{where} talk_s"),
            ring_interval_s=_seconds(
                entry.get("ring_interval_s", RING_INTERVAL_S), f"{where} ring_interval_s"
            ),
            announce_end=_flag(entry.get("announce_end", True), f"{where} announce_end"),
        )
    except ValueError as exc:
        raise ScenarioError(f"{where}: {exc}") from exc
    return ScheduledCall(_seconds(entry.get("at_s", 0.0), f"{where} at_s"), call)


def _parse_injection(entry: dict[str, Any], where: str) -> ScheduledInjection:
    _check_keys(entry, _INJECTION_KEYS, where)
    if ("text" in entry) == ("hex" in entry):
        raise ScenarioError(f"{where}: give exactly one of text or hex")
    if "text" in entry:
        raw = _optional_str(entry["text"], f"{where} text") or ""
        payload = raw.encode("utf-8")
    else:
        try:
            payload = bytes.fromhex(str(entry["hex"]))
        except ValueError as exc:
            raise ScenarioError(f"{where}: hex: {exc}") from exc
    repeat = _optional_int(entry.get("repeat", 1), f"{where} repeat") or 1
    if repeat < 1:
        raise ScenarioError(f"{where}: repeat must be at least 1")
    return ScheduledInjection(_seconds(entry.get("at_s", 0.0), f"{where} at_s"), payload * repeat)


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ScenarioError(f"{where}: expected a number of seconds >= 0, got {value!r}")
    return float(value)


def _optional_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{where}: expected an integer, got {value!r}")
    return value


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ScenarioError(f"{where}: expected true or false, got {value!r}")
    return value


def _optional_str(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ScenarioError(f"{where}: expected a string, got {value!r}")
    return value


def _model(value: Any, source: str) -> str | None:
    if value is not None and value not in MODELS:
        raise ScenarioError(
            f"{source} [modem] model: unknown {value!r}; known: {', '.join(MODELS)}"
        )
    return value


def _chunking(value: Any, source: str) -> str | None:
    if value is not None and value not in {chunking.value for chunking in Chunking}:
        choices = ", ".join(chunking.value for chunking in Chunking)
        raise ScenarioError(f"{source} [modem] chunking: unknown {value!r}; known: {choices}")
    return value


# A realistic mix for an Indonesian 112 line (shares from KNOWLEDGE.md section 1:
# most calls are prank, ghost or dropped before an answer).
SHARE_NUMBER_SHOWN = 0.75
SHARE_WITHHELD = 0.10  # the rest: no caller id at all (SIM-less)
SHARE_IMPATIENT = 0.45  # hang up after 1-4 rings whatever the gateway does
SHARE_GHOST = 0.55  # of the patient ones: silent or prank, a few seconds
_MOBILE_PREFIXES = ("811", "812", "813", "821", "822", "852", "853", "857", "858", "878", "895")


def random_calls(
    n: int, rate: float, seed: int | None = None, *, ring_interval_s: float = RING_INTERVAL_S
) -> tuple[ScheduledCall, ...]:
    """``n`` calls arriving as a Poisson process at ``rate`` calls per minute."""
    if n < 0 or rate <= 0:
        raise ValueError("need n >= 0 and rate > 0")
    rng = random.Random(seed)
    at_s = 0.0
    calls = []
    for _ in range(n):
        calls.append(ScheduledCall(round(at_s, 3), _random_call(rng, ring_interval_s)))
        at_s += rng.expovariate(rate / 60.0)
    return tuple(calls)


def _random_call(rng: random.Random, ring_interval_s: float) -> SimulatedCall:
    kind = rng.random()
    number: str | None = None
    presentation = Presentation.UNAVAILABLE
    if kind < SHARE_NUMBER_SHOWN:
        subscriber = "".join(str(rng.randrange(10)) for _ in range(rng.randint(6, 9)))
        number = f"+62{rng.choice(_MOBILE_PREFIXES)}{subscriber}"
        presentation = Presentation.ALLOWED
    elif kind < SHARE_NUMBER_SHOWN + SHARE_WITHHELD:
        presentation = Presentation.RESTRICTED
    impatient = rng.random() < SHARE_IMPATIENT
    ghost = rng.random() < SHARE_GHOST
    return SimulatedCall(
        number=number,
        presentation=presentation,
        hangup_after_rings=rng.randint(1, 4) if impatient else None,
        talk_s=round(rng.uniform(2, 8) if ghost else rng.uniform(20, 180), 1),
        ring_interval_s=ring_interval_s,
    )


def play(
    modem: SimulatedGsmModem,
    scenario: Scenario,
    *,
    stop: threading.Event,
    on_call_done: Callable[[PlacedCall], None] | None = None,
) -> list[PlacedCall]:
    """Run ``scenario`` on ``modem`` from now; return when every call is over or on ``stop``.

    ``on_call_done`` is called for each call as it ends, in order (the modem
    plays one call at a time).
    """
    started = time.monotonic()
    placed: list[PlacedCall] = []
    reported = 0

    def report_finished() -> None:
        nonlocal reported
        while reported < len(placed) and placed[reported].done:
            if on_call_done is not None:
                on_call_done(placed[reported])
            reported += 1

    for at_s, action in _timeline(scenario):
        while (remaining := started + at_s - time.monotonic()) > 0:
            if stop.wait(min(remaining, _REPORT_POLL_S)):
                return placed
            report_finished()
        call = action(modem)
        if call is not None:
            placed.append(call)
    while reported < len(placed):
        if stop.wait(_REPORT_POLL_S):
            return placed
        report_finished()
    return placed


_REPORT_POLL_S = 0.05
Action = Callable[[SimulatedGsmModem], PlacedCall | None]


def _timeline(scenario: Scenario) -> list[tuple[float, Action]]:
    events: list[tuple[float, Action]] = []
    for scheduled_call in scenario.calls:
        events.append((scheduled_call.at_s, _placer(scheduled_call.call)))
    for injection in scenario.injections:
        events.append((injection.at_s, _injector(injection.raw)))
    if scenario.vanish_at_s is not None:
        events.append((scenario.vanish_at_s, _vanisher))
    return sorted(events, key=lambda event: event[0])


def _placer(call: SimulatedCall) -> Action:
    return lambda modem: modem.place_call(call)


def _injector(raw: bytes) -> Action:
    def inject(modem: SimulatedGsmModem) -> None:
        modem.inject(raw)

    return inject


def _vanisher(modem: SimulatedGsmModem) -> None:
    modem.vanish()
