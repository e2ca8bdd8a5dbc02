"""The E1 span driver: a passively tapped PRI span as one line of the gateway.

The layers of ``drivers/e1``, wired for one span (``SpanTap``: pure, no I/O,
no threads) and driven by the line-driver base (``SpanDriver``)::

    SpanSource: two streams by URL ─▶ Chunk(direction, time, octets) in line-time order
      format e1:       E1Receiver per direction ─▶ aligned frame runs, line events (LOS, AIS,
                         │                         LOF, RAI, CRC-4 errors, slips)
                         ├─ D-channel timeslot ─▶ HdlcDeframer ─▶ LAPD frames ──┐
                         └─ B-channels ─▶ BChannelAudio (answered calls only)   │
      format timeslot: HdlcDeframer ─▶ LAPD frames ─────────────────────────────┤
      format lapd:     LAPD frames ─────────────────────────────────────────────┤
                                                                                ▼
      both directions' frames merged in line-time order (a frame waits until the other
      direction has been read past it, at most MAX_LAG_S, plus FRAME_SLACK_S)
        ─▶ LapdMonitor (links, N(S)/N(R), retransmissions once) ─▶ Q.931 (decode_message)
        ─▶ PriCallTracker ─▶ call.offered / answered / ended / abandoned, through emit
                          └─▶ on_connected / on_cleared ─▶ BChannelAudio: a sink per call
    line.status: up when both directions are framed without LOS, AIS, LOF or RAI and the
                 D-channel (SAPI 0) is established; otherwise down, saying why

Bad input never stops the tap: a bad frame is dropped and counted by the
deframer (bad FCS, aborts, too short or long), the LAPD monitor (malformed,
retransmitted) or here (Q.931 errors), and the line reports its state. A
stream that fails (``SourceLost``: a closed socket, a vanished port) ends the
session and the base reopens it with backoff; a live raw stream silent for
``SILENT_STREAM_S`` is treated the same way. A replayed file that ends
leaves the line down ("replay ended") until the gateway stops: replaying it
again would report its calls twice.

Times are line times: seconds since the epoch, counted from each stream's
first octet at its line rate (``_Stream.anchor_on``), so both directions'
frames fall into one order however the octets arrived; events carry them
as ``observed_at``.

Threads: the base's worker reads the source and runs the tap; ``stop`` ends
the calls still open from the stopping thread after the worker is gone.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cython_ext import hdlc
from drivers.e1.audio import BChannelAudio
from drivers.e1.calls import PriCallTracker
from drivers.e1.framing import (
    LINE_BITS_PER_SECOND,
    Crc4Absent,
    Defect,
    DefectCleared,
    DefectRaised,
    E1Receiver,
    LineEvent,
    MultiframeAligned,
    SlipDetected,
)
from drivers.e1.lapd import Direction
from drivers.e1.lapd_monitor import (
    UP_STATES,
    LapdMessage,
    LapdMonitor,
    LinkChange,
    LinkState,
)
from drivers.e1.q931 import Variant, decode_message
from drivers.e1.q931_codes import Q931Error
from drivers.e1.sources import (
    Chunk,
    SourceEnded,
    SourceError,
    SpanSource,
    StreamFormat,
    StreamUrl,
    TransportKind,
)
from gateway.audio.contract import AudioSinkFactory
from gateway.events import EndCause, Event, InterfaceSide
from gateway.lines import LINE_DOWN, LINE_UP, Emit, LineDriverBase, SessionEnd

if TYPE_CHECKING:
    from drivers.e1.family import SpanSettings

logger = logging.getLogger("edge112.e1.span")

N2U = Direction.NETWORK_TO_USER
U2N = Direction.USER_TO_NETWORK
STREAM_NAMES = {N2U: "network-to-user", U2N: "user-to-network"}
TIMESLOT_OCTETS_PER_SECOND = 8000
FRAME_OCTETS = 32
MAX_LAG_S = 0.5  # a frame waits at most this long for the other direction to catch up
FRAME_SLACK_S = 0.05  # longer than the longest LAPD frame at 64 kbit/s (264 octets: 33 ms)
TICK_S = 0.1  # LAPD and Q.931 timers are looked at this often (of line time)
READ_TIMEOUT_S = 0.2  # the worker wakes at least this often (ticks, progress, stop)
REANCHOR_S = 1.0  # a live stream this far behind its octet count lost octets: re-anchor
SILENT_STREAM_S = 5.0  # a live raw stream that delivers nothing this long is lost
OUTAGE_DEFECTS = frozenset({Defect.LOS, Defect.AIS, Defect.LOF})  # the deframer starts over
DOWN_DEFECTS = OUTAGE_DEFECTS | {Defect.RAI}  # the span cannot carry calls


@dataclass
class SpanCounters:
    """What the tap did with what it read; every dropped frame is under a reason."""

    chunks: int = 0
    octets: Counter[str] = field(default_factory=Counter)  # by direction
    frames: int = 0  # LAPD frames from the deframers (or the lapd stream)
    q931_messages: int = 0
    q931_errors: Counter[str] = field(default_factory=Counter)  # dropped, by problem
    line_events: Counter[str] = field(default_factory=Counter)  # "n2u los raised", ...
    slips: int = 0
    late_frames: int = 0  # released past MAX_LAG_S without the other direction


class _Stream:
    """One direction's receiving layers and how far its line has been read."""

    def __init__(self, direction: Direction, settings: SpanSettings) -> None:
        self.direction = direction
        self.format = StreamFormat(settings.format)
        self.receiver = E1Receiver(crc4=settings.crc4) if self.format is StreamFormat.E1 else None
        self.deframer = hdlc.HdlcDeframer() if self.format is not StreamFormat.LAPD else None
        self.octets = 0  # read so far
        self.read_until = float("-inf")  # line time of the end of what was read
        self.last_chunk_at = time.monotonic()
        self.defects: set[Defect] = {Defect.LOF} if self.receiver is not None else set()
        self.multiframe: bool | None = None  # CRC-4: multiframe aligned (None: not yet known)
        self.anchor: float | None = None  # line time of this direction's first octet

    def anchor_on(self, stamp: float, elapsed: float) -> float:
        """The line time of octet 0, given a chunk stamped ``stamp`` that starts ``elapsed``
        seconds of line after it.

        A stream's own octet count is its clock (a replay's stamps are exactly that; a
        live stream's arrival stamps jitter, and come in bursts when read faster than
        real time). Only when a chunk comes more than ``REANCHOR_S`` later than the count
        says (octets were lost on the way) does the count move on to the stamps: times
        never run backwards.
        """
        if self.anchor is None or stamp > self.anchor + elapsed + REANCHOR_S:
            self.anchor = stamp - elapsed
        return self.anchor


class SpanTap:
    """One span's receiving layers: ``feed`` chunks in time order, ``tick`` now and then.

    Call events go to ``emit``; answered calls' B-channels to ``audio`` (format
    e1 with ``b_channel_audio``). ``health()`` says whether the span is up and why.
    """

    def __init__(
        self,
        settings: SpanSettings,
        emit: Callable[[Event], None],
        *,
        audio: BChannelAudio | None = None,
    ) -> None:
        self.settings = settings
        self.line = settings.name
        self.variant = Variant(settings.variant)
        self.timeslot = settings.d_channel_timeslot
        self.streams = {d: _Stream(d, settings) for d in (N2U, U2N)}
        self.audio = audio
        self.monitor = LapdMonitor()
        self.tracker = PriCallTracker(
            settings.name,
            emit,
            on_connected=self._connected,
            on_cleared=self._cleared,
            incoming_side=InterfaceSide(settings.incoming_side),
            national_prefix=settings.national_prefix,
        )
        self.counters = SpanCounters()
        self.link_state = LinkState.UNKNOWN  # the call-control data link (SAPI 0)
        self.came_up = False  # the span was up at some moment
        self._health: tuple[str, str] | None = None
        self._health_changed = True
        self._ticked = float("-inf")
        self._queue: list[tuple[float, int, Direction, bytes]] = []
        self._order = itertools.count()
        self._released_until = float("-inf")
        self._lapd = StreamFormat(settings.format) is StreamFormat.LAPD

    # -- input ---------------------------------------------------------------------------

    def feed(self, chunk: Chunk) -> None:
        stream = self.streams[chunk.direction]
        if not self.counters.chunks:  # the line starts now for both: wait for the other one
            for each in self.streams.values():
                each.read_until = chunk.timestamp
        self.counters.chunks += 1
        self.counters.octets[chunk.direction.value] += len(chunk.data)
        stream.last_chunk_at = time.monotonic()
        if stream.receiver is not None:
            self._feed_e1(stream, chunk)
        elif stream.deframer is not None:
            self._feed_timeslot(stream, chunk)
        else:
            self._push(chunk.timestamp, chunk.direction, chunk.data)
            stream.read_until = chunk.timestamp
        self._release(self._watermark())

    def _feed_e1(self, stream: _Stream, chunk: Chunk) -> None:
        receiver, deframer = stream.receiver, stream.deframer
        assert receiver is not None and deframer is not None
        base = stream.anchor_on(chunk.timestamp, 8 * stream.octets / LINE_BITS_PER_SECOND)
        framed = receiver.feed(chunk.data)
        stream.octets += len(chunk.data)
        for event in framed.events:
            self._line_event(stream, event)
        slot = self.timeslot
        for run in framed.runs:
            run_time = base + run.bit / LINE_BITS_PER_SECOND
            first = deframer.bytes_in
            for frame in deframer.feed(run.frames[slot::FRAME_OCTETS]):
                octet = frame.bit_offset / 8 - first  # frames since the run's first
                self._push(
                    run_time + octet / TIMESLOT_OCTETS_PER_SECOND, stream.direction, frame.data
                )
            if self.audio is not None:
                self.audio.add_frames(stream.direction, run_time, run.frames)
            # Read up to where frames were delivered: the framer holds octets while it
            # searches for alignment, and hands over the frames it then confirms.
            end = run_time + run.frame_count / TIMESLOT_OCTETS_PER_SECOND
            stream.read_until = max(stream.read_until, end)

    def _feed_timeslot(self, stream: _Stream, chunk: Chunk) -> None:
        deframer = stream.deframer
        assert deframer is not None
        base = stream.anchor_on(chunk.timestamp, stream.octets / TIMESLOT_OCTETS_PER_SECOND)
        for frame in deframer.feed(chunk.data):
            self._push(base + frame.bit_offset / 64_000, stream.direction, frame.data)
        stream.octets += len(chunk.data)
        stream.read_until = base + stream.octets / TIMESLOT_OCTETS_PER_SECOND

    def _line_event(self, stream: _Stream, event: LineEvent) -> None:
        self._health_changed = True
        name = STREAM_NAMES[stream.direction]
        if isinstance(event, DefectRaised):
            stream.defects.add(event.defect)
            self.counters.line_events[f"{stream.direction.value} {event.defect.value} raised"] += 1
            logger.warning("%s: %s: %s", self.line, name, event.detail)
            if event.defect in OUTAGE_DEFECTS:
                stream.multiframe = None  # CRC-4 multiframe alignment is searched again
                if stream.deframer is not None:
                    stream.deframer.reset()  # a frame in progress is gone
        elif isinstance(event, DefectCleared):
            stream.defects.discard(event.defect)
            self.counters.line_events[f"{stream.direction.value} {event.defect.value} cleared"] += 1
            logger.info("%s: %s: %s cleared", self.line, name, event.defect.value)
        elif isinstance(event, SlipDetected):
            self.counters.slips += 1
            logger.info("%s: %s: %s slip", self.line, name, event.kind.value)
        elif isinstance(event, MultiframeAligned | Crc4Absent):
            aligned = isinstance(event, MultiframeAligned)
            what = "multiframe aligned" if aligned else "no CRC-4 from the far end"
            self.counters.line_events[f"{stream.direction.value} {what}"] += 1
            stream.multiframe = aligned

    # -- both directions in order ----------------------------------------------------------

    def _push(self, at: float, direction: Direction, frame: bytes) -> None:
        self.counters.frames += 1
        heapq.heappush(self._queue, (at, next(self._order), direction, frame))

    def _watermark(self) -> float:
        """Line time up to which both directions have been read (a direction that fell
        more than MAX_LAG_S behind the other is not waited for)."""
        if self._lapd:
            return float("inf")  # frames are stamped as they arrive: already in order
        times = [stream.read_until for stream in self.streams.values()]
        latest = max(times)
        # A frame is handed over when its closing flag has been read: one that began up to
        # FRAME_SLACK_S before what was read may still come.
        return min(t for t in times if t >= latest - MAX_LAG_S) - FRAME_SLACK_S

    def _release(self, until: float) -> None:
        queue = self._queue
        while queue and queue[0][0] <= until:
            at, _, direction, frame = heapq.heappop(queue)
            if at < self._released_until:
                self.counters.late_frames += 1
            self._released_until = max(self._released_until, at)
            for event in self.monitor.feed(frame, at, direction):
                self._lapd_event(event)
        if self.audio is not None and until != float("inf"):
            self.audio.advance(until)

    def _lapd_event(self, event: Any) -> None:
        if isinstance(event, LapdMessage):
            try:
                message = decode_message(event.payload, self.variant)
            except Q931Error as error:
                self.counters.q931_errors[error.problem.value] += 1
                return
            self.counters.q931_messages += 1
            self.tracker.on_message(message, event.direction, event.time)
        elif isinstance(event, LinkChange) and event.sapi == 0:
            self.link_state = event.state
            self._health_changed = True
            idling = {event.previous, event.state} == UP_STATES  # a quiet link, polled: normal
            logger.log(
                logging.DEBUG if idling else logging.INFO,
                "%s: D-channel %s -> %s (%s)",
                self.line,
                event.previous.value,
                event.state.value,
                event.reason.value,
            )
            if event.state is LinkState.DOWN:
                self.tracker.link_down(event.time)
            elif event.state is LinkState.ESTABLISHED:
                self.tracker.link_up(event.time)

    def tick(self, now: float) -> None:
        """Timers: LAPD silence (T203) and T309 for calls that outlived their D-channel (their
        resolution is far above TICK_S, at most how often they run)."""
        if now < self._ticked + TICK_S:
            return
        self._ticked = now
        for event in self.monitor.tick(now):
            self._lapd_event(event)
        self.tracker.tick(now)

    def now(self) -> float:
        """The line time now: what was read last (frames of a lapd stream carry host time)."""
        if self._lapd:
            return time.time()
        return max(stream.read_until for stream in self.streams.values())

    def finish(self, cause: EndCause) -> None:
        """The session is over: what is queued goes through, open calls end with ``cause``."""
        self._release(float("inf"))
        at = max(self.now(), self._released_until, time.time())
        self.tracker.release_all(at, cause)
        if self.audio is not None:
            self.audio.close_all()

    # -- B-channel hooks --------------------------------------------------------------------

    def _connected(self, call_id: str, channel: int) -> None:
        if self.audio is not None:
            self.audio.connected(call_id, channel, self._released_until)

    def _cleared(self, call_id: str, channel: int) -> None:
        if self.audio is not None:
            self.audio.cleared(call_id, self._released_until)

    # -- state -------------------------------------------------------------------------------

    def silent_stream(self, limit_s: float, live: frozenset[Direction]) -> Direction | None:
        """A live raw stream that has delivered nothing for ``limit_s`` (a line never idles;
        a replayed file that ended early is not lost, and lapd frames come when they come)."""
        if self._lapd:
            return None
        now = time.monotonic()
        for stream in self.streams.values():
            if stream.direction in live and now - stream.last_chunk_at > limit_s:
                return stream.direction
        return None

    def health(self) -> tuple[str, str]:
        """(up | down, why) from both directions' line state and the D-channel (worked out
        again only after a line event or a link change)."""
        if self._health is None or self._health_changed:
            self._health_changed = False
            self._health = self._work_out_health()
        return self._health

    def _work_out_health(self) -> tuple[str, str]:
        problems = []
        for stream in self.streams.values():
            defect = next((d for d in Defect if d in stream.defects and d in DOWN_DEFECTS), None)
            if defect is not None:
                problems.append((STREAM_NAMES[stream.direction], DEFECT_TEXT[defect]))
        if problems:
            if len(problems) == 2 and problems[0][1] == problems[1][1]:
                return LINE_DOWN, f"both directions: {problems[0][1]}"
            return LINE_DOWN, "; ".join(f"{name}: {text}" for name, text in problems)
        if self.link_state not in UP_STATES:
            return LINE_DOWN, f"D-channel {LINK_TEXT[self.link_state]}"
        self.came_up = True
        details = ["D-channel up"]
        for stream in self.streams.values():
            if Defect.CRC4_ERRORS in stream.defects:
                details.append(f"{STREAM_NAMES[stream.direction]}: excessive CRC-4 errors")
        if self.streams[N2U].receiver is not None:
            details.append(self._framing_text())
        return LINE_UP, "; ".join(details)

    def _framing_text(self) -> str:
        if not self.settings.crc4:
            return "E1 frame aligned"
        states = {stream.multiframe for stream in self.streams.values()}
        if states == {True}:
            return "E1 frame and CRC-4 multiframe aligned"
        if False in states:
            return "E1 frame aligned, no CRC-4 from the far end"
        return "E1 frame aligned, searching the CRC-4 multiframe"

    def snapshot(self) -> dict[str, Any]:
        """Counters of every layer, for logs, tests and benches."""
        deframers = {d.value: s.deframer.counters() for d, s in self.streams.items() if s.deframer}
        monitor = self.monitor.counters
        return {
            "chunks": self.counters.chunks,
            "octets": dict(self.counters.octets),
            "frames": self.counters.frames,
            "hdlc": deframers,
            "lapd": {
                "delivered": monitor.delivered,
                "retransmissions": monitor.retransmissions,
                "malformed": sum(monitor.malformed.values()),
                "sequence_gaps": monitor.sequence_gaps,
            },
            "q931_messages": self.counters.q931_messages,
            "q931_errors": dict(self.counters.q931_errors),
            "line_events": dict(self.counters.line_events),
            "slips": self.counters.slips,
            "late_frames": self.counters.late_frames,
            "calls": self.tracker.counters.calls,
            "link": self.link_state.value,
        }


DEFECT_TEXT = {
    Defect.LOS: "loss of signal (LOS)",
    Defect.AIS: "alarm indication signal (AIS, all ones)",
    Defect.LOF: "no frame alignment (LOF)",
    Defect.RAI: "remote alarm (RAI)",
    Defect.CRC4_ERRORS: "excessive CRC-4 errors",
}
LINK_TEXT = {
    LinkState.UNKNOWN: "not established yet",
    LinkState.AWAITING_ESTABLISHMENT: "being established (SABME)",
    LinkState.AWAITING_RELEASE: "being released (DISC)",
    LinkState.DOWN: "down",
    LinkState.ESTABLISHED: "up",
    LinkState.IDLE: "up",
}


def _replayed(url: StreamUrl) -> bool:
    """Whether a stream is a recording replayed (it ends), not a live line."""
    if url.kind is TransportKind.FILE:
        return True
    return url.kind is TransportKind.PATH and os.path.isfile(url.target)


class SpanDriver(LineDriverBase[SpanSource]):
    """Drives span ``settings.name``: its source, its tap, its health; events to ``emit``."""

    FAMILY = "e1"
    SOURCE_KIND = "span streams"
    logger = logging.getLogger("edge112.e1.span")

    def __init__(
        self,
        settings: SpanSettings,
        emit: Emit,
        *,
        audio_sink_factory: AudioSinkFactory | None = None,
        silent_stream_s: float = SILENT_STREAM_S,
        **base: Any,
    ) -> None:
        super().__init__(settings.name, emit, **base)
        self.settings = settings
        self._audio_sink_factory = audio_sink_factory if settings.b_channel_audio else None
        self._silent_stream_s = silent_stream_s
        self._live: frozenset[Direction] = frozenset()  # directions read from a live stream
        self._tap: SpanTap | None = None  # the session's, while it runs
        self._last_tap: SpanTap | None = None
        self._caller_direction = N2U if settings.incoming_side == "network" else U2N

    # -- the base's hooks ----------------------------------------------------------------

    def _open_source(self) -> SpanSource:
        settings = self.settings
        source = SpanSource(
            settings.network_to_user,
            settings.user_to_network,
            format=settings.format,
            bit_order=settings.bit_order,
            speed=settings.speed,
            baudrate=settings.baudrate,
        )
        return source.open()

    def _close_source(self, source: SpanSource) -> None:
        source.close()

    def _serve(self, source: SpanSource) -> SessionEnd:
        audio = None
        if self._audio_sink_factory is not None:
            audio = BChannelAudio(
                self.name, self._audio_sink_factory, caller_direction=self._caller_direction
            )
        tap = self._tap = self._last_tap = SpanTap(self.settings, self._emit_safely, audio=audio)
        self._live = frozenset(d for d, url in source.urls.items() if not _replayed(url))
        self._report_health(*tap.health())
        while not self._stopping.is_set():
            try:
                chunk = source.read(READ_TIMEOUT_S)
            except SourceEnded:
                return self._replay_ended(tap)
            except SourceError as exc:
                return SessionEnd(str(exc), came_up=tap.came_up)
            if chunk is not None:
                tap.feed(chunk)
            tap.tick(tap.now())
            silent = tap.silent_stream(self._silent_stream_s, self._live)
            if silent is not None:
                return SessionEnd(
                    f"{STREAM_NAMES[silent]} stream: nothing for {self._silent_stream_s:g} s",
                    came_up=tap.came_up,
                )
            self._report_health(*tap.health())
            self._note_progress()
        return SessionEnd("driver stopped", came_up=tap.came_up)

    def _replay_ended(self, tap: SpanTap) -> SessionEnd:
        """Every file has been replayed: calls still open end, the line stays down."""
        tap.finish(EndCause.LINE_LOST)
        self._tap = None
        self._report_health(LINE_DOWN, "replay ended")
        logger.warning(
            "%s: the replay ended; the span stays down until the gateway stops", self.name
        )
        while not self._stopping.wait(1.0):
            self._note_progress()
        return SessionEnd("driver stopped", came_up=tap.came_up)

    def _session_ended(self) -> None:
        tap, self._tap = self._tap, None
        if tap is not None:
            tap.finish(EndCause.LINE_LOST)

    def _stopped(self) -> None:
        tap, self._tap = self._tap, None
        if tap is not None:
            tap.finish(EndCause.UNKNOWN)

    # -- for status, tests and benches ---------------------------------------------------------

    def snapshot(self) -> dict[str, Any] | None:
        """The counters of the current session, or of the last one (None before the first)."""
        tap = self._tap or self._last_tap
        return tap.snapshot() if tap is not None else None
