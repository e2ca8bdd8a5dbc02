"""B-channel audio: an answered call's timeslot, both directions, through the gateway's audio
pipeline: the caller analysed (DTMF, speech, ghost), both recorded in one stereo WAV.

The span is the product simulator's, replayed from files by the span driver with the real
pipeline factory writing real recordings; the alignment rules are also checked on
``BChannelAudio`` alone, frame by frame.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest

from cython_ext import g711
from drivers.e1.audio import FEED_SAMPLES, IDLE, MAX_LAG_S, BChannelAudio
from drivers.e1.family import E1Family
from drivers.e1.lapd import Direction
from drivers.e1.span import SpanDriver
from drivers.simulated.caller_audio import AudioSegment, script_frames
from drivers.simulated.e1_script import (
    FaultKind,
    ScheduledFault,
    ScheduledSpanCall,
    SpanCall,
    SpanFault,
    SpanOutcome,
    SpanScenario,
)
from gateway.audio.contract import CallAudio
from gateway.audio.pipeline import pipeline_factory
from gateway.audio.wav import read_format, read_wav
from gateway.config import AudioSettings
from gateway.events import CallAudioSummary, CallDtmf, CallEnded, CallOffered, Event
from tests.conftest import require_tool, wait_until
from tests.drivers.e1.test_span import Events, write_files

N2U = Direction.NETWORK_TO_USER
U2N = Direction.USER_TO_NETWORK
CALLER = (AudioSegment.silence(0.3), AudioSegment.speech(1.2, seed=3), AudioSegment.dtmf("112"))
CENTRE = (AudioSegment.speech(0.8, level_dbov=-18.0, seed=9),)


def run_with_audio(
    tmp_path: Path, scenario: SpanScenario, **audio: Any
) -> tuple[Events, list[Any]]:
    """Replay ``scenario`` through a span driver with B-channel audio on."""
    span, n2u, u2n = write_files(tmp_path, scenario)
    settings = E1Family().validate(
        "test.toml",
        "spans[0]",
        {
            "name": "e1a",
            "network_to_user": n2u,
            "user_to_network": u2n,
            "speed": 0,
            "b_channel_audio": True,
        },
    )
    events = Events()
    audio_settings = AudioSettings(
        recordings_dir=str(tmp_path / "recordings"), ghost_after_s=2.0, min_free_mb=0, **audio
    )
    factory = pipeline_factory(audio_settings, events.append)
    driver = SpanDriver(settings, events.append, audio_sink_factory=factory)
    driver.start()
    try:
        wait_until(lambda: events.has_status("replay ended"), what="the replay ends")
    finally:
        driver.stop()
    return events, span.records


def by_caller(events: Events, kind: type[Event]) -> dict[str | None, Any]:
    numbers = {e.call_id: e.number for e in events.of(CallOffered)}
    return {numbers[e.call_id]: e for e in events.of(kind)}


def channels(path: Path) -> tuple[bytes, bytes]:
    """The two channels of a stereo WAV as PCM16 (caller, centre)."""
    audio = read_wav(path, convert=False)
    assert audio.channels == 2 and audio.rate == 8000
    samples = memoryview(audio.pcm).cast("h")
    return samples[0::2].tobytes(), samples[1::2].tobytes()


def script_pcm(script: tuple[AudioSegment, ...], seconds: float) -> bytes:
    """The script as it reaches the tap: A-law on the line, decoded."""
    frames = script_frames(script)
    pcm = b"".join(next(frames) for _ in range(round(seconds / 0.02)))
    return g711.alaw_decode(g711.alaw_encode(pcm))


def test_answered_calls_are_analysed_and_recorded_in_stereo(tmp_path: Path) -> None:
    scenario = SpanScenario(
        (
            ScheduledSpanCall(
                0.2,
                SpanCall(caller="+6281111", talk_s=3.0, audio=CALLER, centre_audio=CENTRE),
            ),
            ScheduledSpanCall(0.4, SpanCall(caller="+6282222", talk_s=3.0)),  # says nothing
            ScheduledSpanCall(0.6, SpanCall(caller="+6283333", outcome=SpanOutcome.ABANDONED)),
            ScheduledSpanCall(0.8, SpanCall(caller="+6284444", outcome=SpanOutcome.BUSY)),
        )
    )
    events, records = run_with_audio(tmp_path, scenario)
    summaries = by_caller(events, CallAudioSummary)
    assert set(summaries) == {"+6281111", "+6282222"}  # answered calls only
    speaking, ghost = summaries["+6281111"], summaries["+6282222"]
    assert speaking.digits == "112" and not speaking.silent and speaking.category is None
    assert ghost.silent and ghost.category == "ghost"
    assert speaking.silent_call is None and ghost.silent_call is None  # a tap cannot prompt
    digits = [e.digit for e in events.of(CallDtmf) if e.call_id == speaking.call_id]
    assert digits == ["1", "1", "2"]
    ended = by_caller(events, CallEnded)
    for number, summary in summaries.items():
        assert events.index(ended[number]) < events.index(summary)  # after call.ended
        recording = summary.recording
        path = Path(recording["path"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == recording["sha256"]
        assert recording["encoding"] == "alaw" and abs(recording["duration_ms"] - 3000) <= 60
        fmt = read_format(path)
        assert (fmt.channels, fmt.encoding, fmt.sample_rate) == (2, "alaw", 8000)
        assert path.name.startswith("e1a-")
    caller, centre = channels(Path(speaking.recording["path"]))
    assert len(caller) == len(centre)
    pause = 2 * 2400  # bytes: the caller's 0.3 s of silence before speaking
    expected_caller = script_pcm(CALLER, 2.0)[pause:]
    expected_centre = script_pcm(CENTRE, 1.0)
    start = caller.find(expected_caller)  # the speech and the digits, sample for sample
    assert abs(start - pause) <= 2 * 160, start  # from the CONNECT, within a frame
    shift = start - pause  # where the voices began in the recording
    centre_start = centre.find(expected_centre[2 * 160 :])
    assert abs(centre_start - 2 * 160 - shift) <= 2  # both channels in step
    assert len(records) == 4


@pytest.mark.requires_tool("sox")
def test_sox_reads_the_stereo_recording(tmp_path: Path) -> None:
    import subprocess

    call = SpanCall(caller="+6281", talk_s=1.0, audio=CALLER, centre_audio=CENTRE)
    events, _ = run_with_audio(tmp_path, SpanScenario((ScheduledSpanCall(0.1, call),)))
    (summary,) = events.of(CallAudioSummary)
    info = subprocess.run(
        [require_tool("sox"), "--i", summary.recording["path"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Channels       : 2" in info and "A-law" in info and "8000" in info


def test_pcm_recordings_are_stereo_pcm(tmp_path: Path) -> None:
    call = SpanCall(caller="+6281", talk_s=1.0, audio=CALLER, centre_audio=CENTRE)
    scenario = SpanScenario((ScheduledSpanCall(0.1, call),))
    events, _ = run_with_audio(tmp_path, scenario, recording_format="pcm")
    (summary,) = events.of(CallAudioSummary)
    fmt = read_format(summary.recording["path"])
    assert (fmt.channels, fmt.encoding, fmt.block_align) == (2, "pcm_s16", 4)
    caller, centre = channels(Path(summary.recording["path"]))
    assert caller != centre and len(caller) == len(centre)


def test_a_line_outage_mid_call_keeps_both_channels_in_step(tmp_path: Path) -> None:
    talking = (AudioSegment.speech(3.0, seed=5),)
    call = SpanCall(caller="+6281", ring_s=0.2, talk_s=3.0, audio=talking, centre_audio=talking)
    scenario = SpanScenario(
        (ScheduledSpanCall(0.1, call),),
        (ScheduledFault(1.5, SpanFault(FaultKind.LOS, N2U, duration_s=0.4)),),
    )
    events, _ = run_with_audio(tmp_path, scenario)
    (summary,) = events.of(CallAudioSummary)
    caller, centre = channels(Path(summary.recording["path"]))
    assert len(caller) == len(centre)
    assert abs(len(caller) / 16 - 3000) <= 60  # ms: the gap is filled, not lost
    gap = caller[2 * 8000 * 1 : 2 * 8000 * 2]  # 1.0-2.0 s after the answer: inside the outage
    idle = g711.alaw_decode(bytes((IDLE,)))  # the idle code's sample
    assert idle * 100 in gap  # A-law idle while the caller's direction was lost
    assert centre[2 * 8000 : 2 * 8000 * 2] != idle * 8000  # the centre went on


def test_a_failing_sink_factory_costs_the_audio_not_the_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    span, n2u, u2n = write_files(
        tmp_path, SpanScenario((ScheduledSpanCall(0.1, SpanCall(caller="+6281", talk_s=0.5)),))
    )
    settings = E1Family().validate(
        "t.toml",
        "spans[0]",
        {"name": "e1a", "network_to_user": n2u, "user_to_network": u2n, "speed": 0}
        | {"b_channel_audio": True},
    )

    def refuse(_call: CallAudio) -> Any:
        raise OSError("no room for a pipeline")

    events = Events()
    driver = SpanDriver(settings, events.append, audio_sink_factory=refuse)
    driver.start()
    try:
        wait_until(lambda: events.has_status("replay ended"), what="the replay ends")
    finally:
        driver.stop()
    assert len(events.of(CallEnded)) == 1 and not events.of(CallAudioSummary)
    assert "the audio sink factory failed" in caplog.text
    assert span.records[0].done


# -- BChannelAudio alone ----------------------------------------------------------------------


class CollectingSink:
    """An AudioSink that keeps what it was fed (the pipeline's place in these tests)."""

    def __init__(self, call: CallAudio) -> None:
        self.call = call
        self.frames: list[bytes] = []
        self.closed = 0

    def feed(self, frame: bytes) -> None:
        self.frames.append(frame)

    def close(self) -> None:
        self.closed += 1

    def channel(self, index: int) -> bytes:
        return b"".join(self.frames)[index::2]


def frames_with(timeslot: int, octets: bytes) -> bytes:
    """E1 frames carrying ``octets`` in ``timeslot`` (one a frame), the rest zero."""
    out = bytearray(32 * len(octets))
    out[timeslot::32] = octets
    return bytes(out)


def collecting() -> tuple[BChannelAudio, list[CollectingSink]]:
    sinks: list[CollectingSink] = []

    def make(call: CallAudio) -> CollectingSink:
        sinks.append(CollectingSink(call))
        return sinks[-1]

    return BChannelAudio("e1a", make), sinks


def test_audio_starts_at_the_connect_from_frames_already_read() -> None:
    audio, sinks = collecting()
    caller, centre = bytes(range(200)) * 16, bytes(range(55, 255)) * 16  # 0.4 s each
    audio.add_frames(N2U, 100.0, frames_with(5, caller))
    audio.add_frames(U2N, 100.0, frames_with(5, centre))
    audio.connected("c1", 5, 100.05)  # 400 samples in
    audio.advance(100.2)  # the D-channel has been read up to here: 1200 samples, 1 frame
    (sink,) = sinks
    assert sink.call.channels == 2 and sink.call.play is None and sink.call.encoding == "alaw"
    assert [len(frame) for frame in sink.frames] == [2 * FEED_SAMPLES]
    assert sink.channel(0) == caller[400:1200] and sink.channel(1) == centre[400:1200]
    audio.cleared("c1", 100.25)  # ends 1600 samples after the start: the rest, to there
    assert sink.channel(0) == caller[400:2000] and sink.channel(1) == centre[400:2000]
    assert sink.closed == 1
    audio.cleared("c1", 100.3)  # once only
    assert sink.closed == 1


def test_a_gap_in_one_direction_is_filled_and_a_repeat_dropped() -> None:
    audio, sinks = collecting()
    audio.connected("c1", 7, 10.0)
    audio.add_frames(N2U, 10.0, frames_with(7, b"\x01" * 160))
    audio.add_frames(U2N, 10.0, frames_with(7, b"\x02" * 480))
    audio.add_frames(N2U, 10.04, frames_with(7, b"\x03" * 160))  # 20 ms missing before it
    audio.add_frames(N2U, 10.05, frames_with(7, b"\x04" * 80))  # repeats 10.05-10.06
    audio.cleared("c1", 10.06)
    (sink,) = sinks
    caller = sink.channel(0)
    assert caller == b"\x01" * 160 + bytes((IDLE,)) * 160 + b"\x03" * 160
    assert sink.channel(1) == b"\x02" * 480


def test_a_dead_direction_does_not_hold_the_other_back() -> None:
    audio, sinks = collecting()
    audio.connected("c1", 3, 0.0)
    audio.add_frames(U2N, 0.0, frames_with(3, b"\x09" * 16))
    for block in range(100):  # two seconds of caller audio, nothing more from the centre
        audio.add_frames(N2U, block * 0.02, frames_with(3, b"\x05" * 160))
        audio.advance((block + 1) * 0.02)
    (sink,) = sinks
    fed = len(sink.channel(0))
    assert fed >= (2.0 - MAX_LAG_S) * 8000 - FEED_SAMPLES
    assert set(sink.channel(1)[16:]) == {IDLE}


def test_a_sink_that_fails_is_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Failing(CollectingSink):
        def feed(self, frame: bytes) -> None:
            raise ValueError("disk on fire")

    made: list[Failing] = []

    def make(call: CallAudio) -> Failing:
        made.append(Failing(call))
        return made[-1]

    audio = BChannelAudio("e1a", make)
    audio.connected("c1", 1, 0.0)
    with caplog.at_level(logging.ERROR, "edge112.e1.audio"):
        for direction in (N2U, U2N):
            audio.add_frames(direction, 0.0, frames_with(1, b"\x00" * 320))
        audio.advance(0.04)
        audio.cleared("c1", 0.04)
    assert "the audio sink of call c1 failed" in caplog.text
    assert made[0].closed == 1
