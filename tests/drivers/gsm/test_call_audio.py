"""Call audio end to end: GsmModemDriver with an audio port against the simulated modem's voice PTY.

Real pseudo-terminals, real threads, no mocks: the simulated caller speaks
its script in real time, the driver hands the frames to a sink per answered
call, and what the sink plays back reaches the simulated caller.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cython_ext.dtmf import DtmfDetector
from drivers.audio_port import FRAME_BYTES
from drivers.gsm.modem import GsmModemDriver
from drivers.simulated.audio_signals import speech_like, to_pcm
from drivers.simulated.caller_audio import AudioSegment
from drivers.simulated.gsm_modem import SimulatedCall, SimulatedGsmModem
from gateway.audio.contract import CallAudio
from gateway.events import CallAnswered, CallEnded, CallOffered, EndCause, envelope
from tests.conftest import validate_event
from tests.drivers.gsm.support import EventLog, wait_line_up

NUMBER = "+6281234567890"
RING_S = 0.1
FRAME_S = 0.02
SILENT_FRAME = bytes(FRAME_BYTES)


class RecordingSink:
    """An AudioSink that keeps every frame with its arrival time and the events seen at close."""

    def __init__(self, audio: CallAudio, log: EventLog) -> None:
        self.audio = audio
        self._log = log
        self._lock = threading.Lock()
        self.frames: list[tuple[float, bytes]] = []
        self.closes = 0
        self.events_at_close: list[Any] = []
        self.closed = threading.Event()

    def feed(self, frame: bytes) -> None:
        with self._lock:
            self.frames.append((time.monotonic(), frame))

    def close(self) -> None:
        self.closes += 1
        self.events_at_close = self._log.all()
        self.closed.set()

    def pcm(self, since: float = 0.0, until: float = float("inf")) -> bytes:
        with self._lock:
            return b"".join(frame for at, frame in self.frames if since <= at < until)

    def frame_list(self) -> list[bytes]:
        with self._lock:
            return [frame for _, frame in self.frames]


class SinkFactory:
    """The AudioSinkFactory: one RecordingSink per answered call, kept for the test."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self.sinks: list[RecordingSink] = []

    def __call__(self, audio: CallAudio) -> RecordingSink:
        sink = RecordingSink(audio, self._log)
        self.sinks.append(sink)
        return sink


class PromptingSinkFactory(SinkFactory):
    """Plays a spoken prompt to every caller, a frame every 20 ms, as a silent-call policy would."""

    def __init__(self, log: EventLog, prompt: bytes) -> None:
        super().__init__(log)
        self.prompt = prompt

    def __call__(self, audio: CallAudio) -> RecordingSink:
        sink = super().__call__(audio)
        threading.Thread(target=self._play, args=(audio, sink), daemon=True).start()
        return sink

    def _play(self, audio: CallAudio, sink: RecordingSink) -> None:
        assert audio.play is not None
        started = time.monotonic()
        for index, start in enumerate(range(0, len(self.prompt), FRAME_BYTES)):
            if sink.closed.wait(max(0.0, started + index * FRAME_S - time.monotonic())):
                return
            audio.play(self.prompt[start : start + FRAME_BYTES])


def dtmf_digits(pcm: bytes) -> str:
    detector = DtmfDetector()
    return "".join(digit for digit, _, _ in detector.feed(pcm) + detector.flush())


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    """Every test must leave no driver, audio port or simulator thread running."""
    before = {thread.name for thread in threading.enumerate()}
    yield
    leftover = [
        thread.name
        for thread in threading.enumerate()
        if thread.name not in before and thread.name.startswith("edge112-") and thread.is_alive()
    ]
    deadline = time.monotonic() + 2.0
    while leftover and time.monotonic() < deadline:
        time.sleep(0.05)
        leftover = [name for name in leftover if _alive(name)]
    assert not leftover, f"threads left running: {leftover}"


def _alive(name: str) -> bool:
    return any(thread.name == name and thread.is_alive() for thread in threading.enumerate())


@pytest.fixture
def links(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "gsm0", tmp_path / "gsm0-audio"


@pytest.fixture
def log() -> Iterator[EventLog]:
    """The events of one test; at the end each must match the published JSON Schema."""
    events = EventLog()
    yield events
    for seq, event in enumerate(events.all(), start=1):
        validate_event(envelope(event, seq=seq, gateway_id="test-01", region="64.74"))


@contextlib.contextmanager
def audio_driver(
    links: tuple[Path, Path], log: EventLog, factory: Any, **options: Any
) -> Iterator[GsmModemDriver]:
    """A driver answering at the first ring, with the audio port at the modem's audio link."""
    link, audio_link = links
    settings: dict[str, Any] = {
        "answer_after_rings": 1,
        "poll_interval_s": 0.2,
        "signal_interval_s": 0.5,
        "reopen_backoff_s": 0.1,
        "audio_url": str(audio_link),
        "audio_sink_factory": factory,
        **options,
    }
    driver = GsmModemDriver("gsm0", str(link), log, **settings)
    driver.start()
    try:
        yield driver
    finally:
        driver.stop()


@pytest.mark.parametrize("model", ["quectel_ec25", "simcom_sim7600", "huawei_e173"])
def test_an_answered_call_feeds_its_script_to_one_sink_closed_once_after_call_ended(
    model, links, log, wait_until
):
    talk_s = 1.6
    script = (
        AudioSegment.silence(0.4),
        AudioSegment.dtmf("159#", tone_ms=60, gap_ms=60),
        AudioSegment.speech(0.5, level_dbov=-20),
    )  # 1.38 s, then silence until talk_s ends
    factory = SinkFactory(log)
    with (
        SimulatedGsmModem(links[0], model=model, audio_link=links[1]) as modem,
        audio_driver(links, log, factory),
    ):
        wait_line_up(log, wait_until)
        placed = modem.place_call(
            SimulatedCall(NUMBER, ring_interval_s=RING_S, talk_s=talk_s, audio=script)
        )
        assert placed.wait(5.0)
        wait_until(lambda: factory.sinks and factory.sinks[0].closes)

    [sink] = factory.sinks
    answered, ended = log.of(CallAnswered)[0], log.of(CallEnded)[0]
    assert (sink.audio.call_id, sink.audio.line) == (answered.call_id, "gsm0")
    assert (sink.audio.encoding, sink.audio.sample_rate) == ("pcm16", 8000)
    assert sink.audio.play is not None
    assert sink.closes == 1 and ended in sink.events_at_close

    frames = sink.frame_list()
    sent = placed.audio_log.frames_sent
    assert talk_s / FRAME_S - 8 <= sent <= talk_s / FRAME_S + 1
    assert sent - 3 <= len(frames) <= sent  # only frames before the sink was attached are lost
    assert all(len(frame) == FRAME_BYTES for frame in frames)
    assert frames[:10] == [SILENT_FRAME] * 10  # the silence segment is digital silence
    assert frames[-8:] == [SILENT_FRAME] * 8  # after the script: silent until the hang-up
    assert any(frame != SILENT_FRAME for frame in frames[-30:-12])  # the speech segment
    assert dtmf_digits(sink.pcm()) == "159#"


def test_a_silent_caller_hears_the_prompt_and_presses_55(links, log, wait_until):
    prompt = to_pcm(speech_like(2.0, level_dbov=-18, seed=4))
    factory = PromptingSinkFactory(log, prompt)
    silent_caller = SimulatedCall(
        ring_interval_s=RING_S,
        talk_s=3.5,
        audio=(AudioSegment.silence(10.0),),
        respond_to_prompt="55",
    )
    with (
        SimulatedGsmModem(links[0], audio_link=links[1]) as modem,
        audio_driver(links, log, factory),
    ):
        wait_line_up(log, wait_until)
        placed = modem.place_call(silent_caller)
        assert placed.wait(6.0)
        wait_until(lambda: factory.sinks and factory.sinks[0].closes)

    [sink] = factory.sinks
    heard = placed.audio_log
    assert bytes(heard.heard_pcm[: len(prompt)]) == prompt  # exactly what was played
    assert heard.pressed_digits == "55" and heard.pressed_monotonic is not None
    assert placed.answered_monotonic is not None
    assert 1.0 <= heard.pressed_monotonic - placed.answered_monotonic <= 2.0
    assert 1.0 <= heard.heard_voice_s <= 2.0
    assert dtmf_digits(sink.pcm(until=heard.pressed_monotonic)) == ""
    assert dtmf_digits(sink.pcm(since=heard.pressed_monotonic)) == "55"


def test_unanswered_calls_get_no_sink(links, log, wait_until):
    factory = SinkFactory(log)
    with (
        SimulatedGsmModem(links[0], model="simcom_sim7600", audio_link=links[1]) as modem,
        audio_driver(links, log, factory, answer_after_rings=0),
    ):
        wait_line_up(log, wait_until)
        placed = modem.place_call(
            SimulatedCall(NUMBER, ring_interval_s=RING_S, hangup_after_rings=2)
        )
        assert placed.wait(3.0)
        wait_until(lambda: len(log.calls()) == 2)

    assert factory.sinks == []
    assert placed.audio_log.frames_sent == 0


def test_a_missing_audio_port_leaves_the_call_events_intact(links, log, wait_until, caplog):
    caplog.set_level(logging.WARNING, logger="edge112.drivers.gsm")
    factory = SinkFactory(log)
    with (
        SimulatedGsmModem(links[0]) as modem,  # no audio PTY
        audio_driver(links, log, factory),
    ):
        wait_line_up(log, wait_until)
        placed = modem.place_call(SimulatedCall(NUMBER, ring_interval_s=RING_S, talk_s=0.4))
        assert placed.wait(3.0)
        wait_until(lambda: log.of(CallEnded))

    assert [type(event) for event in log.calls()] == [CallOffered, CallAnswered, CallEnded]
    assert log.of(CallEnded)[0].cause is EndCause.REMOTE_HANGUP
    assert factory.sinks == []
    assert "cannot open the audio port" in caplog.text


def test_a_refused_audio_command_means_no_sink_and_the_call_goes_on(links, log, wait_until, caplog):
    factory = SinkFactory(log)
    with (
        SimulatedGsmModem(links[0], model="simcom_sim800", audio_link=links[1]) as modem,
        audio_driver(links, log, factory),
    ):
        wait_line_up(log, wait_until)
        placed = modem.place_call(SimulatedCall(NUMBER, ring_interval_s=RING_S, talk_s=0.4))
        assert placed.wait(3.0)
        wait_until(lambda: log.of(CallEnded))

    assert [type(event) for event in log.calls()] == [CallOffered, CallAnswered, CallEnded]
    assert factory.sinks == []
    assert "AT+CPCMREG=1" in caplog.text and "ERROR" in caplog.text


def test_the_port_stays_open_across_calls_and_simcom_audio_is_switched_off(
    links, log, wait_until, caplog
):
    caplog.set_level(logging.DEBUG, logger="edge112.drivers.at")  # logs each command sent
    factory = SinkFactory(log)
    call = SimulatedCall(NUMBER, ring_interval_s=RING_S, talk_s=0.5)
    with (
        SimulatedGsmModem(links[0], model="simcom_sim7600", audio_link=links[1]) as modem,
        audio_driver(links, log, factory),
    ):
        wait_line_up(log, wait_until)
        first = modem.place_call(call)
        second = modem.place_call(call)
        assert first.wait(3.0) and second.wait(3.0)
        wait_until(lambda: len(factory.sinks) == 2 and factory.sinks[1].closes)

    one, two = factory.sinks
    assert one.audio.call_id != two.audio.call_id
    assert (one.closes, two.closes) == (1, 1)
    assert one.frame_list() and two.frame_list()
    assert one.audio.play.__self__ is two.audio.play.__self__  # type: ignore[union-attr]
    sent = [record.getMessage() for record in caplog.records if ": -> " in record.getMessage()]
    assert [line.split("-> ")[1] for line in sent if "CPCMREG" in line] == [
        "AT+CPCMREG=1",
        "AT+CPCMREG=0",
        "AT+CPCMREG=1",
        "AT+CPCMREG=0",
    ]


def test_the_audio_port_vanishing_mid_call_ends_delivery_but_not_the_call(links, log, wait_until):
    factory = SinkFactory(log)
    with (
        SimulatedGsmModem(links[0], audio_link=links[1]) as modem,
        audio_driver(links, log, factory),
    ):
        wait_line_up(log, wait_until)
        placed = modem.place_call(SimulatedCall(NUMBER, ring_interval_s=RING_S, talk_s=1.0))
        wait_until(lambda: factory.sinks and len(factory.sinks[0].frame_list()) >= 5)

        modem.vanish_audio()
        assert placed.wait(3.0)
        wait_until(lambda: factory.sinks[0].closes)

    assert [type(event) for event in log.calls()] == [CallOffered, CallAnswered, CallEnded]
    assert log.of(CallEnded)[0].cause is EndCause.REMOTE_HANGUP
    [sink] = factory.sinks
    assert sink.closes == 1
    assert len(sink.frame_list()) < 45


def test_stop_during_a_call_closes_the_sink_after_the_end_event(links, log, wait_until):
    factory = SinkFactory(log)
    with SimulatedGsmModem(links[0], audio_link=links[1]) as modem:
        with audio_driver(links, log, factory):
            wait_line_up(log, wait_until)
            modem.place_call(SimulatedCall(NUMBER, ring_interval_s=RING_S, talk_s=30.0))
            wait_until(lambda: factory.sinks and factory.sinks[0].frame_list())

        [sink] = factory.sinks
        assert sink.closes == 1
        ended = log.of(CallEnded)[0]
        assert ended.cause is EndCause.UNKNOWN and ended in sink.events_at_close
