"""B-channel audio of a tapped span: each answered call's timeslot, both directions, into the
gateway's audio pipeline as one two-channel A-law stream (recorded as a stereo WAV).

::

    E1 frame runs of both directions (line time) ─▶ add_frames: kept for HISTORY_S; every
        call in progress takes its timeslot of them at the next advance (a batch at a time)
    CONNECT (tracker's on_connected) ─▶ connected(call, channel, at): a sink from the factory
        (CallAudio: alaw, 2 channels, play None); its audio from ``at``, taken from the kept
        frames (the D-channel is read a little behind the B-channels, see span.py)
    advance(until): both directions up to ``until``, side by side in time, interleaved
        (caller, centre), 20 ms a frame ─▶ sink.feed
    first clearing message (on_cleared) ─▶ cleared(call, at): the rest up to ``at``,
        then sink.close() once (after the call's end event, which the tracker sent first)

Channels: 0 (left) is the caller, the direction the calling side sends
(network -> user for calls the PSTN offers to the centre), and the only one
the pipeline analyses (DTMF, voice activity, the ghost rule); 1 (right) is
the centre's call-taker, recorded only. Why one stereo file rather than two
files: the two directions stay aligned sample for sample in one recording,
with one path and one checksum in ``call.audio_summary``, and any player
shows them as left and right.

A passive tap cannot speak to the caller (``CallAudio.play`` is None), so
the silent-call policy (a prompt, then listening for 55) never runs on a
span: a silent caller is reported by the analysis alone (category ghost,
``silent_call`` null).

Alignment: each direction's samples are placed by their line time. A gap in
one direction (LOS, lost alignment) is filled with A-law idle (0xD5), a
repeat (a slip) is dropped, so the two channels stay in step; a direction
that delivers nothing for ``MAX_LAG_S`` is filled with idle rather than
holding the other back.

Nothing here breaks call signalling: a sink factory, a ``feed`` or a
``close`` that raises is logged on ``edge112.e1.audio`` and the call goes on
(without audio). Calls come and go on the span's worker thread; ``stop``
may end them from another thread, hence the lock.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass, field

from drivers.e1.lapd import Direction
from gateway.audio.contract import AudioEncoding, AudioSink, AudioSinkFactory, CallAudio

logger = logging.getLogger("edge112.e1.audio")

SAMPLE_RATE = 8000
FRAME_OCTETS = 32  # an E1 frame: one sample of each timeslot
FEED_SAMPLES = 800  # 100 ms a feed (the pipeline takes any length; fewer calls cost less)
ADVANCE_S = 0.1  # calls take their audio and are fed this often (of line time)
HISTORY_S = 1.0  # frame runs kept, to start a call's audio at its CONNECT
MAX_LAG_S = 0.5  # a direction this far behind the other is filled with idle
MAX_GAP_S = 2.0  # at most this much idle fills one gap (more: the line was gone)
IDLE = 0xD5  # A-law idle (the code of 0)
HALF = 0.5 / SAMPLE_RATE  # half a sample: times closer than this are the same sample
CHANNELS = 2


@dataclass
class _Track:
    """One direction of one call: samples waiting to be fed, and the time of the next one."""

    buffer: bytearray = field(default_factory=bytearray)
    next_time: float | None = None  # line time of the sample after the last one taken

    def take(
        self, timeslot: int, start: float, end: float | None, run_time: float, run: bytes
    ) -> None:
        """The timeslot's samples of ``run`` (frames from ``run_time``) within [start, end)."""
        count = len(run) // FRAME_OCTETS
        first = 0
        if self.next_time is None:
            first = max(0, math.ceil((start - run_time) * SAMPLE_RATE - 1e-6))
        else:
            expected = round((self.next_time - run_time) * SAMPLE_RATE)
            if expected < 0:  # a gap before this run: idle, so both channels stay in step
                self.buffer += bytes((IDLE,)) * min(-expected, round(MAX_GAP_S * SAMPLE_RATE))
            first = max(0, expected)  # expected > 0: frames already taken (a repeat)
        last = count
        if end is not None:
            last = min(count, max(0, math.ceil((end - run_time) * SAMPLE_RATE - 1e-6)))
        if first >= last:
            if self.next_time is None and first < count:
                self.next_time = run_time + first / SAMPLE_RATE
            return
        self.buffer += run[timeslot + first * FRAME_OCTETS : last * FRAME_OCTETS : FRAME_OCTETS]
        self.next_time = run_time + last / SAMPLE_RATE

    def ready(self, until: float) -> int:
        """Samples buffered from before line time ``until`` (the D-channel is read up to there:
        a later clearing message cannot cut into them)."""
        if self.next_time is None:
            return 0
        beyond = max(0, round((self.next_time - until) * SAMPLE_RATE))
        return max(0, len(self.buffer) - beyond)

    def pad_to(self, moment: float) -> None:
        """Idle up to ``moment`` (a direction that fell behind or stopped)."""
        if self.next_time is None:
            self.next_time = moment
            return
        missing = round((moment - self.next_time) * SAMPLE_RATE)
        if missing > 0:
            self.buffer += bytes((IDLE,)) * min(missing, round(MAX_GAP_S * SAMPLE_RATE))
            self.next_time = moment

    def trim_to(self, moment: float) -> None:
        """Drop samples at or after ``moment`` (taken before the end was known)."""
        if self.next_time is None:
            return
        excess = round((self.next_time - moment) * SAMPLE_RATE)
        if excess > 0:
            del self.buffer[max(0, len(self.buffer) - excess) :]
            self.next_time = moment


@dataclass
class _Call:
    call_id: str
    timeslot: int
    start: float
    sink: AudioSink | None
    tracks: dict[Direction, _Track]
    end: float | None = None


class BChannelAudio:
    """The B-channel audio of span ``line``'s answered calls; see the module docstring."""

    def __init__(
        self,
        line: str,
        sink_factory: AudioSinkFactory,
        *,
        caller_direction: Direction = Direction.NETWORK_TO_USER,
    ) -> None:
        self.line = line
        self._sink_factory = sink_factory
        self._order = (caller_direction, caller_direction.reverse)  # channel 0, channel 1
        self._history: dict[Direction, deque[tuple[float, bytes]]] = {
            direction: deque() for direction in Direction
        }
        self._pending: dict[Direction, list[tuple[float, bytes]]] = {d: [] for d in Direction}
        self._calls: dict[str, _Call] = {}
        self._lock = threading.Lock()
        self._advanced = float("-inf")  # the last advance's line time
        self.fed_samples = 0  # per channel, over every call

    @property
    def active_calls(self) -> int:
        with self._lock:
            return len(self._calls)

    def add_frames(self, direction: Direction, run_time: float, frames: bytes) -> None:
        """Aligned E1 frames of ``direction``, the first at line time ``run_time`` (kept; the
        calls take their timeslot from them at the next ``advance``, a batch at a time)."""
        with self._lock:
            history = self._history[direction]
            history.append((run_time, frames))
            while history and history[0][0] < run_time - HISTORY_S:
                history.popleft()
            self._pending[direction].append((run_time, frames))

    def _absorb(self) -> None:
        """Give every call its timeslot of the frames added since the last time: runs that
        follow each other are joined first, so a call takes one slice a batch, not a run."""
        for direction, pending in self._pending.items():
            if not pending:
                continue
            groups: list[tuple[float, list[bytes]]] = []
            group_end = float("nan")
            for run_time, frames in pending:
                if groups and -HALF < run_time - group_end < HALF:
                    groups[-1][1].append(frames)
                else:
                    groups.append((run_time, [frames]))
                group_end = run_time + len(frames) // FRAME_OCTETS / SAMPLE_RATE
            pending.clear()
            for run_time, parts in groups:
                frames = parts[0] if len(parts) == 1 else b"".join(parts)
                count = len(frames) // FRAME_OCTETS
                for call in self._calls.values():
                    track = call.tracks[direction]
                    following = track.next_time
                    usual = following is not None and -HALF < following - run_time < HALF
                    if usual and call.end is None:  # inline: it follows what the track took
                        track.buffer += frames[call.timeslot :: FRAME_OCTETS]
                        track.next_time = run_time + count / SAMPLE_RATE
                    else:
                        track.take(call.timeslot, call.start, call.end, run_time, frames)

    def connected(self, call_id: str, timeslot: int, at: float) -> None:
        """The call was answered at ``at`` on ``timeslot``: its audio starts there."""
        if not 1 <= timeslot < FRAME_OCTETS:
            logger.warning("%s: no audio for call %s: no timeslot %d", self.line, call_id, timeslot)
            return
        audio = CallAudio(
            call_id=call_id,
            line=self.line,
            encoding=AudioEncoding.ALAW,
            play=None,  # a passive tap cannot speak to the caller
            channels=CHANNELS,
        )
        try:
            sink: AudioSink | None = self._sink_factory(audio)
        except Exception:
            logger.exception("%s: the audio sink factory failed for call %s", self.line, call_id)
            return
        call = _Call(call_id, timeslot, at, sink, {d: _Track() for d in Direction})
        with self._lock:
            self._absorb()  # the calls up already take what is pending; this one the history
            stale = self._calls.pop(call_id, None)
            self._calls[call_id] = call
            for direction, history in self._history.items():
                for run_time, frames in history:
                    call.tracks[direction].take(timeslot, at, None, run_time, frames)
        if stale is not None:
            self._close(stale)

    def advance(self, until: float) -> None:
        """Feed every call both directions up to line time ``until``, in whole 100 ms frames."""
        if until < self._advanced + ADVANCE_S:
            return
        with self._lock:
            self._advanced = until
            self._absorb()
            for call in self._calls.values():
                self._feed(call, until, final=False)

    def cleared(self, call_id: str, at: float) -> None:
        """The call's first clearing message at ``at``: feed the rest, close its sink."""
        with self._lock:
            self._absorb()
            call = self._calls.pop(call_id, None)
            if call is None:
                return
            read = [t.next_time for t in call.tracks.values() if t.next_time is not None]
            end = min(at, max(read)) if read else at  # never pad past what was read
            call.end = end
            for track in call.tracks.values():
                track.trim_to(end)
                track.pad_to(end)
            self._feed(call, end, final=True)
        self._close(call)

    def close_all(self) -> None:
        """End every call's audio (the session ended): feed what is there, close the sinks."""
        with self._lock:
            self._absorb()
            calls = list(self._calls.values())
            self._calls.clear()
            for call in calls:
                read = [t.next_time for t in call.tracks.values() if t.next_time is not None]
                if read:
                    for track in call.tracks.values():
                        track.pad_to(max(read))
                    self._feed(call, max(read), final=True)
            for history in self._history.values():
                history.clear()
            for pending in self._pending.values():
                pending.clear()
        for call in calls:
            self._close(call)

    # -- feeding --------------------------------------------------------------------------

    def _feed(self, call: _Call, until: float, *, final: bool) -> None:
        tracks = call.tracks
        caller, centre = tracks[self._order[0]], tracks[self._order[1]]
        if not final and min(len(caller.buffer), len(centre.buffer)) < FEED_SAMPLES:
            behind = until - MAX_LAG_S
            for track in (caller, centre):
                if track.next_time is not None and track.next_time < behind:
                    track.pad_to(behind)  # it fell behind (or stopped): do not wait for it
        count = min(caller.ready(until), centre.ready(until))
        if not final:
            count -= count % FEED_SAMPLES
        if count <= 0:
            return
        frame = bytearray(CHANNELS * count)
        frame[0::2] = caller.buffer[:count]
        frame[1::2] = centre.buffer[:count]
        del caller.buffer[:count]
        del centre.buffer[:count]
        self.fed_samples += count
        sink = call.sink
        if sink is None:
            return
        try:
            for start in range(0, len(frame), CHANNELS * FEED_SAMPLES):
                sink.feed(bytes(frame[start : start + CHANNELS * FEED_SAMPLES]))
        except Exception:
            logger.exception("%s: the audio sink of call %s failed", self.line, call.call_id)
            call.sink = None
            _close_sink(sink, self.line, call.call_id)

    def _close(self, call: _Call) -> None:
        sink, call.sink = call.sink, None
        if sink is not None:
            _close_sink(sink, self.line, call.call_id)


def _close_sink(sink: AudioSink, line: str, call_id: str) -> None:
    try:
        sink.close()
    except Exception:
        logger.exception("%s: closing the audio sink of call %s failed", line, call_id)
