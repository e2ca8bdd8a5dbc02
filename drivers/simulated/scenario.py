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
    # What the caller does after the answer (then silence until talk_s ends):
    audio = [{silence = 2.0}, {speech = 3.0, level_dbov = -20}, {dtmf = "55"}]
    respond_to_prompt = "55"         # pressed after hearing 1 s of the gateway's prompt
    network_clip = true              # false: no +CLIP at all (AT+CLCC still has the number)
    clip_delay_s = 0.0               # each +CLIP this long after its RING (none once answered)
    clip_first = false               # the +CLIP before its RING

    [[injections]]
    at_s = 2.5
    text = "garbage\\r\\n"            # or hex = "ff fe 00"; repeat = 600 for over-long lines

    vanish_at_s = 60.0               # optional, top level: the modem is unplugged

    [[faults]]                       # resets, hangs, replugs, registration, SMS:
    at_s = 5.0                       # see drivers.simulated.scenario_faults
    kind = "reset"

Audio segments, one kind key each, with optional settings::

    {silence = S}
    {speech = S, level_dbov = -20.0, seed = 1}     # speech-like syllables and pauses
    {noise = S, level_dbov = -60.0, seed = 1}      # white noise: an open line in a pocket
    {dtmf = "55", tone_ms = 80, gap_ms = 80, level_dbm0 = -10.0}
    {wav = "caller.wav"}                           # 8 kHz mono 16-bit; relative to the file

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

from drivers.simulated.caller_audio import AudioSegment
from drivers.simulated.gsm_modem import (
    MODELS,
    RING_INTERVAL_S,
    Chunking,
    PlacedCall,
    SimulatedCall,
    SimulatedGsmModem,
)
from drivers.simulated.scenario_faults import ScheduledFault, parse_fault
from gateway.events import Presentation

_CALL_KEYS = {
    "at_s",
    "number",
    "presentation",
    "hangup_after_rings",
    "talk_s",
    "ring_interval_s",
    "announce_end",
    "audio",
    "respond_to_prompt",
    "network_clip",
    "clip_delay_s",
    "clip_first",
}
_INJECTION_KEYS = {"at_s", "text", "hex", "repeat"}
_MODEM_KEYS = {"model", "chunking", "seed"}
_TOP_KEYS = {"modem", "calls", "injections", "vanish_at_s", "faults"}


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
    faults: tuple[ScheduledFault, ...] = ()
    model: str | None = None
    chunking: str | None = None
    seed: int | None = None


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; ScenarioError on any problem.

    WAV paths in it are taken relative to the file's folder.
    """
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc
    return parse_scenario(data, str(path), base_dir=Path(path).parent)


def parse_scenario(
    data: dict[str, Any], source: str = "scenario", *, base_dir: Path | None = None
) -> Scenario:
    """Check ``data`` (a parsed scenario file); relative WAV paths are taken from ``base_dir``."""
    _check_keys(data, _TOP_KEYS, source)
    modem = data.get("modem", {})
    if not isinstance(modem, dict):
        raise ScenarioError(f"{source}: [modem] must be a table")
    _check_keys(modem, _MODEM_KEYS, f"{source} [modem]")
    calls = tuple(
        _parse_call(entry, f"{source} calls[{index}]", base_dir or Path())
        for index, entry in enumerate(_table_list(data, "calls", source))
    )
    injections = tuple(
        _parse_injection(entry, f"{source} injections[{index}]")
        for index, entry in enumerate(_table_list(data, "injections", source))
    )
    vanish_at_s = data.get("vanish_at_s")
    faults = tuple(
        parse_fault(entry, f"{source} faults[{index}]", ScenarioError)
        for index, entry in enumerate(_table_list(data, "faults", source))
    )
    return Scenario(
        faults=tuple(sorted(faults, key=lambda scheduled: scheduled.at_s)),
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


def _parse_call(entry: dict[str, Any], where: str, base_dir: Path) -> ScheduledCall:
    _check_keys(entry, _CALL_KEYS, where)
    presentation = entry.get("presentation")
    audio = _parse_audio(entry.get("audio", []), f"{where} audio", base_dir)
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
            audio=audio,
            respond_to_prompt=_optional_str(
                entry.get("respond_to_prompt"), f"{where} respond_to_prompt"
            ),
            network_clip=_flag(entry.get("network_clip", True), f"{where} network_clip"),
            clip_delay_s=_seconds(entry.get("clip_delay_s", 0.0), f"{where} clip_delay_s"),
            clip_first=_flag(entry.get("clip_first", False), f"{where} clip_first"),
        )
    except ValueError as exc:
        raise ScenarioError(f"{where}: {exc}") from exc
    return ScheduledCall(_seconds(entry.get("at_s", 0.0), f"{where} at_s"), call)


def _parse_audio(entries: Any, where: str, base_dir: Path) -> tuple[AudioSegment, ...]:
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise ScenarioError(f"{where}: expected a list of tables like [{{silence = 2.0}}]")
    return tuple(
        _parse_segment(entry, f"{where}[{index}]", base_dir) for index, entry in enumerate(entries)
    )


def _parse_segment(entry: dict[str, Any], where: str, base_dir: Path) -> AudioSegment:
    kinds = sorted(set(entry) & set(_SEGMENT_KINDS))
    if len(kinds) != 1:
        raise ScenarioError(f"{where}: give exactly one of {', '.join(_SEGMENT_KINDS)}")
    kind = kinds[0]
    settings, build = _SEGMENT_KINDS[kind]
    _check_keys(entry, {kind} | settings, where)
    try:
        return build(entry, where, base_dir)
    except ScenarioError:
        raise
    except ValueError as exc:
        raise ScenarioError(f"{where}: {exc}") from exc


def _silence(entry: dict[str, Any], where: str, _base_dir: Path) -> AudioSegment:
    return AudioSegment.silence(_seconds(entry["silence"], f"{where} silence"))


def _speech(entry: dict[str, Any], where: str, _base_dir: Path) -> AudioSegment:
    return AudioSegment.speech(
        _seconds(entry["speech"], f"{where} speech"),
        level_dbov=_level(entry.get("level_dbov", -20.0), f"{where} level_dbov"),
        seed=_integer(entry.get("seed", 1), f"{where} seed"),
    )


def _noise(entry: dict[str, Any], where: str, _base_dir: Path) -> AudioSegment:
    return AudioSegment.noise(
        _seconds(entry["noise"], f"{where} noise"),
        level_dbov=_level(entry.get("level_dbov", -60.0), f"{where} level_dbov"),
        seed=_integer(entry.get("seed", 1), f"{where} seed"),
    )


def _dtmf(entry: dict[str, Any], where: str, _base_dir: Path) -> AudioSegment:
    return AudioSegment.dtmf(
        _text(entry["dtmf"], f"{where} dtmf"),
        tone_ms=_milliseconds(entry.get("tone_ms", 80.0), f"{where} tone_ms"),
        gap_ms=_milliseconds(entry.get("gap_ms", 80.0), f"{where} gap_ms"),
        level_dbm0=_level(entry.get("level_dbm0", -10.0), f"{where} level_dbm0"),
    )


def _wav(entry: dict[str, Any], where: str, base_dir: Path) -> AudioSegment:
    path = Path(_text(entry["wav"], f"{where} wav"))
    return AudioSegment.wav(path if path.is_absolute() else base_dir / path)


SegmentBuilder = Callable[[dict[str, Any], str, Path], AudioSegment]
# Each audio segment table: one kind key, plus that kind's optional settings.
_SEGMENT_KINDS: dict[str, tuple[set[str], SegmentBuilder]] = {
    "silence": (set(), _silence),
    "speech": ({"level_dbov", "seed"}, _speech),
    "noise": ({"level_dbov", "seed"}, _noise),
    "dtmf": ({"tone_ms", "gap_ms", "level_dbm0"}, _dtmf),
    "wav": (set(), _wav),
}


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


def _milliseconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ScenarioError(f"{where}: expected a number of milliseconds >= 0, got {value!r}")
    return float(value)


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{where}: expected an integer, got {value!r}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ScenarioError(f"{where}: expected a string, got {value!r}")
    return value


def _level(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value > 0:
        raise ScenarioError(f"{where}: expected a level in dB <= 0, got {value!r}")
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
SHARE_GHOST_NOISE = 0.4  # of ghost calls: faint noise (a phone in a pocket), not digital silence
SHARE_GHOST_PRESSES = 0.15  # of ghost calls: someone who cannot speak presses 55 when prompted
SHARE_REAL_DTMF = 0.15  # of real calls: the caller presses a few keys at some point
SILENT_CALLER_DIGITS = "55"
_MOBILE_PREFIXES = ("811", "812", "813", "821", "822", "852", "853", "857", "858", "878", "895")


def random_calls(
    n: int, rate: float, seed: int | None = None, *, ring_interval_s: float = RING_INTERVAL_S
) -> tuple[ScheduledCall, ...]:
    """``n`` calls arriving as a Poisson process at ``rate`` calls per minute.

    Each call also gets what its caller does once answered: ghost calls are
    silence or faint noise (a few press 55 when prompted), real calls speech
    with pauses and now and then a few key presses. Audio is drawn from its
    own random stream, so a seed gives the same calls as before audio existed.
    """
    if n < 0 or rate <= 0:
        raise ValueError("need n >= 0 and rate > 0")
    rng = random.Random(seed)
    audio_rng = random.Random(None if seed is None else f"{seed}:audio")
    at_s = 0.0
    calls = []
    for _ in range(n):
        calls.append(ScheduledCall(round(at_s, 3), _random_call(rng, audio_rng, ring_interval_s)))
        at_s += rng.expovariate(rate / 60.0)
    return tuple(calls)


def _random_call(
    rng: random.Random, audio_rng: random.Random, ring_interval_s: float
) -> SimulatedCall:
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
    hangup_after_rings = rng.randint(1, 4) if impatient else None
    talk_s = round(rng.uniform(2, 8) if ghost else rng.uniform(20, 180), 1)
    if ghost:
        audio, respond_to_prompt = _ghost_audio(audio_rng, talk_s)
    else:
        audio, respond_to_prompt = _talking_audio(audio_rng, talk_s), None
    return SimulatedCall(
        number=number,
        presentation=presentation,
        hangup_after_rings=hangup_after_rings,
        talk_s=talk_s,
        ring_interval_s=ring_interval_s,
        audio=audio,
        respond_to_prompt=respond_to_prompt,
    )


def _ghost_audio(rng: random.Random, talk_s: float) -> tuple[tuple[AudioSegment, ...], str | None]:
    """Nothing said: digital silence or a faint hiss; a few callers press 55 at the prompt."""
    respond_to_prompt = SILENT_CALLER_DIGITS if rng.random() < SHARE_GHOST_PRESSES else None
    if rng.random() < SHARE_GHOST_NOISE:
        level_dbov = round(rng.uniform(-70.0, -55.0), 1)
        return (AudioSegment.noise(talk_s, level_dbov, seed=_voice_seed(rng)),), respond_to_prompt
    return (AudioSegment.silence(talk_s),), respond_to_prompt


def _talking_audio(rng: random.Random, talk_s: float) -> tuple[AudioSegment, ...]:
    """A moment of silence, then bursts of speech with pauses; sometimes a few key presses."""
    segments: list[AudioSegment] = [AudioSegment.silence(round(rng.uniform(0.3, 1.5), 2))]
    spoken_s = segments[0].duration_s
    keys_at_s = rng.uniform(0.2, 0.8) * talk_s if rng.random() < SHARE_REAL_DTMF else None
    level_dbov = round(rng.uniform(-30.0, -15.0), 1)
    seed = _voice_seed(rng)
    while spoken_s < talk_s:
        burst_s = round(rng.uniform(2.0, 8.0), 2)
        added = [
            AudioSegment.speech(burst_s, level_dbov, seed=seed + len(segments)),
            AudioSegment.silence(round(rng.uniform(0.5, 3.0), 2)),
        ]
        if keys_at_s is not None and spoken_s >= keys_at_s:
            digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 3)))
            added.append(AudioSegment.dtmf(digits))
            keys_at_s = None
        segments += added
        spoken_s += sum(segment.duration_s for segment in added)
    return tuple(segments)


def _voice_seed(rng: random.Random) -> int:
    return rng.randrange(1 << 20)


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
    for fault in scenario.faults:
        events.append((fault.at_s, _fault(fault)))
    if scenario.vanish_at_s is not None:
        events.append((scenario.vanish_at_s, _vanisher))
    return sorted(events, key=lambda event: event[0])


def _placer(call: SimulatedCall) -> Action:
    return lambda modem: modem.place_call(call)


def _injector(raw: bytes) -> Action:
    def inject(modem: SimulatedGsmModem) -> None:
        modem.inject(raw)

    return inject


def _fault(fault: ScheduledFault) -> Action:
    def apply(modem: SimulatedGsmModem) -> None:
        fault.apply(modem)

    return apply


def _vanisher(modem: SimulatedGsmModem) -> None:
    modem.vanish()
