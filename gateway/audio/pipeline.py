"""The per-call audio pipeline: frames in, DTMF events, a summary, a recording.

One ``CallAudioPipeline`` per answered call, made by ``pipeline_factory`` for
any audio source (a GSM modem's PCM port, an E1 timeslot's A-law bytes)::

    frame ─▶ caller's channel, decoded ───────┬─▶ DTMF (Goertzel) ──▶ call.dtmf, as detected
                                              ├─▶ voice activity ──▶ first speech, speech ratio
                                              ├─▶ ring buffer (last N seconds, in memory)
                                              ├─▶ recorder (WAV on disk, header kept valid)
                                              └─▶ silent-call policy (prompt out, listens for 55)
    close() ─▶ call.audio_summary (category "ghost" when nobody spoke in time)

A two-channel call (``CallAudio.channels == 2``: an E1 B-channel, the caller
and the centre interleaved) is recorded as a stereo WAV, caller left; only
the caller's channel is analysed and kept in the ring buffer.

Everything runs in the caller's thread, frame by frame: the hot paths are
compiled (``cython_ext``) and one 20 ms frame costs a few microseconds. A
recording problem (disk full, quota directory gone) is logged and ends only
the recording, never the analysis or the call's events.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cython_ext.g711 import alaw_decode
from cython_ext.ringbuffer import RingBuffer
from gateway.audio.analyze import AudioAnalysis, DtmfDigit, StreamingAnalysis
from gateway.audio.contract import AudioEncoding, AudioSink, CallAudio
from gateway.audio.recorder import CallRecorder, RecordingStore
from gateway.audio.wav import read_wav
from gateway.config import AudioSettings
from gateway.events import CallAudioSummary, CallCategory, CallDtmf, Event

log = logging.getLogger("edge112.audio")

SAMPLE_RATE = 8000
SILENT_CALL_DIGITS = "55"  # as the UK's Silent Solution: press 55 if you need help
SPACE_CHECK_FRAMES = 50  # check the recordings filesystem's free space once a second


@dataclass
class SilentCallState:
    """Progress of the silent-call policy in one call."""

    prompt: bytes  # PCM16 to play
    prompt_after_samples: int
    listen_samples: int
    started_at: int | None = None  # sample offset where the prompt started
    played: int = 0  # bytes of the prompt sent
    digits_after_prompt: str = ""

    @property
    def prompted(self) -> bool:
        return self.started_at is not None

    @property
    def pressed_55(self) -> bool:
        return SILENT_CALL_DIGITS in self.digits_after_prompt


class CallAudioPipeline:
    """Analyses, records and answers one call's audio. Implements ``AudioSink``."""

    def __init__(
        self,
        call: CallAudio,
        settings: AudioSettings,
        emit: Callable[[Event], None],
        *,
        store: RecordingStore | None = None,
        prompt: bytes | None = None,
    ) -> None:
        self.call = call
        self.settings = settings
        self._emit = emit
        self._alaw_source = call.encoding == AudioEncoding.ALAW
        self._analysis = StreamingAnalysis()  # the same analysis as `edge112 audio analyze`
        self._ring = RingBuffer(int(settings.ring_buffer_s * SAMPLE_RATE * 2))
        self._closed = False
        self._lock = threading.Lock()
        self._store = store
        self._frames_since_space_check = 0
        self._finished_early: dict[str, Any] | None = None
        self._recording_stopped: str | None = None  # why the recording ended before the call
        self._recorder = self._open_recorder(store)
        self._silent: SilentCallState | None = None
        if prompt and call.play is not None:
            self._silent = SilentCallState(
                prompt=prompt,
                prompt_after_samples=int(settings.silent_prompt_after_s * SAMPLE_RATE),
                listen_samples=int(settings.silent_listen_s * SAMPLE_RATE),
            )

    def _open_recorder(self, store: RecordingStore | None) -> CallRecorder | None:
        if store is None or not self.settings.record:
            return None
        problem = store.space_problem()
        if problem is not None:
            log.warning("%s: not recording %s: %s", self.call.line, self.call.call_id, problem)
            return None
        try:
            path = store.path_for(self.call.call_id, self.call.line, datetime.now(UTC))
            return CallRecorder(
                path, encoding=self.settings.recording_format, channels=self.call.channels
            )
        except OSError as error:
            log.error(
                "%s: cannot start recording for %s: %s", self.call.line, self.call.call_id, error
            )
            return None

    # ------------------------------------------------------------ frames

    def feed(self, frame: bytes) -> None:
        with self._lock:
            if self._closed or not frame:
                return
            channels = self.call.channels
            if self._alaw_source:
                pcm = alaw_decode(frame if channels == 1 else frame[::channels])
            else:
                whole = len(frame) - len(frame) % (2 * channels)
                frame = frame[:whole]  # a torn sample: drop it rather than shift every later one
                caller = memoryview(frame).cast("h")[::channels] if channels > 1 else None
                pcm = frame if caller is None else caller.tobytes()
            if self._recorder is not None:
                self._record(frame, pcm if channels == 1 else None)
            self._ring.write(pcm)
            digits = self._analysis.feed(pcm)
            if digits:
                for digit in digits:
                    self._on_digit(digit)
            if self._silent is not None:
                self._run_silent_call_policy(len(pcm))

    def _record(self, frame: bytes, pcm: bytes | None) -> None:
        """``pcm``: the frame decoded, when it is mono (the one decoding is shared)."""
        if self._recorder is None:
            return
        self._frames_since_space_check += 1
        if self._store is not None and self._frames_since_space_check >= SPACE_CHECK_FRAMES:
            self._frames_since_space_check = 0
            problem = self._store.space_problem()
            if problem is not None:
                log.warning(
                    "%s: recording of %s stopped: %s", self.call.line, self.call.call_id, problem
                )
                self._recording_stopped = "disk_low"
                self._finished_early = self._finish_recording()
                return
        try:
            alaw_kept = self.settings.recording_format == "alaw" or pcm is None
            if self.call.encoding == AudioEncoding.ALAW and alaw_kept:
                self._recorder.write_alaw(frame)  # as is; a stereo frame decoded if stored as PCM
            else:
                self._recorder.write_pcm(frame if pcm is None else pcm)
        except OSError as error:
            log.error("%s: recording of %s stopped: %s", self.call.line, self.call.call_id, error)
            self._recording_stopped = "write_failed"
            self._finished_early = self._finish_recording(keep_buffered=False)

    def _on_digit(self, digit: DtmfDigit) -> None:
        policy = self._silent
        if policy is not None and policy.started_at is not None:
            start = digit.start_ms * SAMPLE_RATE // 1000
            prompt_end = policy.started_at + len(policy.prompt) // 2
            if policy.started_at <= start <= prompt_end + policy.listen_samples:
                policy.digits_after_prompt += digit.digit
        self._emit(
            CallDtmf(
                call_id=self.call.call_id,
                line=self.call.line,
                digit=digit.digit,
                offset_ms=digit.start_ms,
                duration_ms=digit.end_ms - digit.start_ms,
            )
        )

    def _run_silent_call_policy(self, frame_bytes: int) -> None:
        """Frame-synchronous: each 20 ms heard from the caller sends 20 ms of prompt."""
        policy = self._silent
        if policy is None or self.call.play is None:
            return
        if policy.started_at is None:
            samples = self._analysis.samples
            if not self._analysis.speech_heard and samples >= policy.prompt_after_samples:
                policy.started_at = samples
                log.info(
                    "%s: silent call %s: playing the prompt", self.call.line, self.call.call_id
                )
            else:
                return
        if policy.played < len(policy.prompt):
            chunk = policy.prompt[policy.played : policy.played + frame_bytes]
            policy.played += len(chunk)
            try:
                self.call.play(chunk)
            except OSError as error:
                log.error("%s: cannot play the prompt: %s", self.call.line, error)
                policy.played = len(policy.prompt)

    # ------------------------------------------------------------ end of call

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            last_digits, analysis = self._analysis.finish()
            for digit in last_digits:
                self._on_digit(digit)
            recording = self._finish_recording() or self._finished_early
            if recording is not None and self._recording_stopped is not None:
                recording["stopped"] = self._recording_stopped
            self._emit(self._summary(analysis, recording))
        if self._store is not None:
            try:
                self._store.enforce()
            except OSError as error:
                log.error("recording quota could not be enforced: %s", error)

    def _finish_recording(self, *, keep_buffered: bool = True) -> dict[str, Any] | None:
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return None
        try:
            info = recorder.close(keep_buffered=keep_buffered)
        except OSError as error:
            log.error("%s: recording of %s lost: %s", self.call.line, self.call.call_id, error)
            return None
        return {
            "path": str(info.path),
            "sha256": info.sha256,
            "bytes": info.bytes,
            "duration_ms": info.duration_ms,
            "encoding": info.encoding,
        }

    def _summary(
        self, analysis: AudioAnalysis, recording: dict[str, Any] | None
    ) -> CallAudioSummary:
        policy = self._silent
        first_ms = analysis.first_speech_ms
        nobody_spoke = first_ms is None or first_ms > self.settings.ghost_after_s * 1000
        ghost = nobody_spoke and not (policy is not None and policy.pressed_55)
        return CallAudioSummary(
            call_id=self.call.call_id,
            line=self.call.line,
            duration_ms=analysis.duration_ms,
            speech_ratio=round(analysis.speech_ratio, 4),
            first_speech_ms=first_ms,
            level_dbov=round(analysis.level_dbov, 1),
            noise_floor_dbov=round(analysis.noise_floor_dbov, 1),
            clipped_samples=analysis.clipped_samples,
            digits=analysis.digits,
            silent=analysis.silent,
            category=CallCategory.GHOST if ghost else None,
            recording=recording,
            silent_call=None
            if policy is None
            else {"prompted": policy.prompted, "pressed_55": policy.pressed_55},
        )

    def last_seconds(self) -> bytes:
        """The ring buffer: the last ``ring_buffer_s`` seconds of PCM16."""
        with self._lock:
            return self._ring.read_all()


def pipeline_factory(
    settings: AudioSettings, emit: Callable[[Event], None], *, protected: tuple[Path, ...] = ()
) -> Callable[[CallAudio], AudioSink]:
    """The ``AudioSinkFactory`` the daemon hands to drivers: one pipeline per answered call.

    ``protected`` files (the outbox) must never be inside the recordings directory.
    """
    store = (
        RecordingStore(
            settings.recordings_dir,
            quota_mb=settings.quota_mb,
            retention_days=settings.retention_days,
            protected=protected,
            min_free_mb=settings.min_free_mb,
        )
        if settings.record
        else None
    )
    prompt = read_wav(Path(settings.silent_prompt)).pcm if settings.silent_prompt else None

    def make(call: CallAudio) -> AudioSink:
        return CallAudioPipeline(call, settings, emit, store=store, prompt=prompt)

    return make
