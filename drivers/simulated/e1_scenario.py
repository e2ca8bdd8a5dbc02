"""Scripts for the simulated span: calls and faults at set times, from TOML or at random.

A span scenario file, in seconds of line time from the start::

    [span]                           # optional; command-line options win
    crc4 = true                      # CRC-4 multiframe in TS0
    seed = 7                         # bit error positions, slips

    [[calls]]                        # a call the network (PSTN) offers to the centre
    at_s = 1.0
    caller = "+6281234567890"        # +: international, 0: national; leave out: no caller id
    presentation = "allowed"         # allowed | restricted | unavailable (default from caller)
    called = "112"
    overlap = false                  # true: called digits after the first in INFORMATION
    outcome = "answered"             # answered | abandoned | busy | rejected
    ring_s = 2.0                     # SETUP to CONNECT (answered) or to the clearing
    talk_s = 10.0                    # answered: CONNECT to DISCONNECT
    cleared_by = "caller"            # answered: caller | centre
    channel = 5                      # default: the lowest free B-channel (1-15, 17-31)
    exclusive = true                 # false: the SETUP's channel is only preferred ...
    confirmed_channel = 7            # ... and the centre takes this one
    audio = [{silence = 0.5}, {speech = 3.0, level_dbov = -20}, {dtmf = "112"}]  # the caller
    centre_audio = [{speech = 1.5}]  # the call-taker (default: a short greeting)

    [[faults]]
    at_s = 5.0
    kind = "los"                     # bit_errors | bad_fcs | abort | slip | los | ais |
                                     # lost_alignment | rai | retransmission | link_down |
                                     # disconnect
    direction = "n2u"                # n2u | u2n; leave out: both
    duration_s = 0.5                 # los, ais, lost_alignment, rai, link_down; bit_errors
                                     #   spread over it
    count = 1                        # bit_errors: bits; bad_fcs, abort, retransmission:
                                     #   frames; slip: frames repeated (< 0: deleted)
    timeslot = 16                    # bit_errors: only in this timeslot

Audio segments are those of the GSM scenario (``scenario.py``): silence,
speech, noise, dtmf, wav. Unknown keys are errors. ``random_span_calls``
makes the realistic 112 mix of ``scenario.random_calls`` (caller ids,
impatient callers, ghost and talking callers) and adds what a trunk has:
busy and rejected calls, overlap dialling, preferred channels, calls the
centre clears.
"""

from __future__ import annotations

import random
import tomllib
from pathlib import Path
from typing import Any

from drivers.e1.lapd import Direction
from drivers.simulated.e1_script import (
    ClearingSide,
    FaultKind,
    ScheduledFault,
    ScheduledSpanCall,
    SpanCall,
    SpanFault,
    SpanOutcome,
    SpanScenario,
)

# The same audio grammar and value checks as the GSM scenario.
from drivers.simulated.scenario import (
    ScenarioError,
    _check_keys,
    _flag,
    _optional_int,
    _optional_str,
    _parse_audio,
    _seconds,
    _table_list,
    random_calls,
)
from gateway.events import Presentation

_CALL_KEYS = {
    "at_s",
    "caller",
    "presentation",
    "called",
    "overlap",
    "outcome",
    "ring_s",
    "talk_s",
    "cleared_by",
    "channel",
    "exclusive",
    "confirmed_channel",
    "audio",
    "centre_audio",
}
_FAULT_KEYS = {"at_s", "kind", "direction", "duration_s", "count", "timeslot"}
_SPAN_KEYS = {"crc4", "seed"}
_TOP_KEYS = {"span", "calls", "faults"}
_DIRECTIONS = {"n2u": Direction.NETWORK_TO_USER, "u2n": Direction.USER_TO_NETWORK, "both": None}

SHARE_BUSY = 0.05  # of the calls a caller waits on: the centre is busy (17)
SHARE_REJECTED = 0.03  # ... or refuses the call (21)
SHARE_OVERLAP = 0.2  # called digits one by one
SHARE_PREFERRED = 0.2  # the SETUP's channel only preferred; the centre confirms another
SHARE_CENTRE_CLEARS = 0.3  # answered calls the call-taker ends


def load_span_scenario(path: str | Path) -> SpanScenario:
    """Read and check a span scenario file; ``ScenarioError`` on any problem."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc
    return parse_span_scenario(data, str(path), base_dir=Path(path).parent)


def parse_span_scenario(
    data: dict[str, Any], source: str = "scenario", *, base_dir: Path | None = None
) -> SpanScenario:
    _check_keys(data, _TOP_KEYS, source)
    span = data.get("span", {})
    if not isinstance(span, dict):
        raise ScenarioError(f"{source}: [span] must be a table")
    _check_keys(span, _SPAN_KEYS, f"{source} [span]")
    calls = tuple(
        _parse_call(entry, f"{source} calls[{index}]", base_dir or Path())
        for index, entry in enumerate(_table_list(data, "calls", source))
    )
    faults = tuple(
        _parse_fault(entry, f"{source} faults[{index}]")
        for index, entry in enumerate(_table_list(data, "faults", source))
    )
    return SpanScenario(
        calls=tuple(sorted(calls, key=lambda scheduled: scheduled.at_s)),
        faults=tuple(sorted(faults, key=lambda scheduled: scheduled.at_s)),
        crc4=_flag(span.get("crc4", True), f"{source} [span] crc4"),
        seed=_optional_int(span.get("seed", 0), f"{source} [span] seed") or 0,
    )


def _parse_call(entry: dict[str, Any], where: str, base_dir: Path) -> ScheduledSpanCall:
    _check_keys(entry, _CALL_KEYS, where)
    settings: dict[str, Any] = {}
    for key in ("caller", "called"):
        if key in entry:
            settings[key] = _optional_str(entry[key], f"{where} {key}")
    for key, kind in (
        ("presentation", Presentation),
        ("outcome", SpanOutcome),
        ("cleared_by", ClearingSide),
    ):
        if key in entry:
            settings[key] = _choice(entry[key], kind, f"{where} {key}")
    for key in ("overlap", "exclusive"):
        if key in entry:
            settings[key] = _flag(entry[key], f"{where} {key}")
    for key in ("ring_s", "talk_s"):
        if key in entry:
            settings[key] = _seconds(entry[key], f"{where} {key}")
    for key in ("channel", "confirmed_channel"):
        if key in entry:
            settings[key] = _optional_int(entry[key], f"{where} {key}")
    for key in ("audio", "centre_audio"):
        if key in entry:
            settings[key] = _parse_audio(entry[key], f"{where} {key}", base_dir)
    try:
        call = SpanCall(**settings)
    except ValueError as exc:
        raise ScenarioError(f"{where}: {exc}") from exc
    return ScheduledSpanCall(_seconds(entry.get("at_s", 0.0), f"{where} at_s"), call)


def _parse_fault(entry: dict[str, Any], where: str) -> ScheduledFault:
    _check_keys(entry, _FAULT_KEYS, where)
    if "kind" not in entry:
        raise ScenarioError(f"{where}: kind is required")
    direction_name = entry.get("direction", "both")
    if direction_name not in _DIRECTIONS:
        raise ScenarioError(f"{where} direction: expected n2u, u2n or both, got {direction_name!r}")
    try:
        fault = SpanFault(
            kind=_choice(entry["kind"], FaultKind, f"{where} kind"),
            direction=_DIRECTIONS[direction_name],
            duration_s=_seconds(entry.get("duration_s", 0.0), f"{where} duration_s"),
            count=_optional_int(entry.get("count", 1), f"{where} count") or 0,
            timeslot=_optional_int(entry.get("timeslot"), f"{where} timeslot"),
        )
    except ValueError as exc:
        raise ScenarioError(f"{where}: {exc}") from exc
    return ScheduledFault(_seconds(entry.get("at_s", 0.0), f"{where} at_s"), fault)


def _choice(value: Any, kind: Any, where: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise ScenarioError(f"{where}: expected one of {choices}, got {value!r}") from None


def random_span_calls(
    n: int, rate: float, seed: int | None = None, *, ring_interval_s: float = 1.0
) -> tuple[ScheduledSpanCall, ...]:
    """``n`` calls arriving at ``rate`` a minute: the GSM simulator's 112 mix, on a trunk.

    A caller who would hang up after k rings abandons after k x ``ring_interval_s``;
    the others are answered (or, a few, refused busy or rejected by the centre).
    """
    rng = random.Random(None if seed is None else f"{seed}:e1")
    out = []
    for scheduled in random_calls(n, rate, seed, ring_interval_s=ring_interval_s):
        gsm = scheduled.call
        settings: dict[str, Any] = {
            "caller": gsm.number,
            "presentation": gsm.shown_presentation,
            "talk_s": gsm.talk_s,
            "audio": gsm.audio,
            "overlap": rng.random() < SHARE_OVERLAP,
        }
        if rng.random() < SHARE_PREFERRED:
            settings["exclusive"] = False
        draw = rng.random()
        if gsm.hangup_after_rings is not None:
            settings["outcome"] = SpanOutcome.ABANDONED
            settings["ring_s"] = gsm.hangup_after_rings * ring_interval_s
        elif draw < SHARE_BUSY:
            settings["outcome"] = SpanOutcome.BUSY
        elif draw < SHARE_BUSY + SHARE_REJECTED:
            settings["outcome"] = SpanOutcome.REJECTED
            settings["ring_s"] = ring_interval_s
        else:
            settings["ring_s"] = round(rng.uniform(1.0, 3.0) * ring_interval_s, 2)
            if rng.random() < SHARE_CENTRE_CLEARS:
                settings["cleared_by"] = ClearingSide.CENTRE
        out.append(ScheduledSpanCall(scheduled.at_s, SpanCall(**settings)))
    return tuple(out)
