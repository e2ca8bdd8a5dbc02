"""What the ``edge112 e1`` tools see: D-channel frames from captures and raw streams, each
decoded for display, and the tap (LAPD monitor, Q.931, call tracker) they feed.

Where frames come from::

    pcap / pcapng (pcap.CaptureReader) ─────────────────────────────┐
    raw TS16 octets ─HdlcDeframer───────────────────── StreamDeframer ├─▶ TapFrame (time, direction,
    raw E1 frames ─E1Receiver─TS16─HdlcDeframer──────┘               │    frame or problem)
                                                                    ▼
         frame_fields (JSON, Wireshark's field names) / frame_line (one line, like tshark)
         TapDecoder: LapdMonitor ─▶ decode_message ─▶ PriCallTracker ─▶ calls, events

Times are integer nanoseconds since the Unix epoch. In a raw stream octet
``n`` is at ``start + n / 8000`` s (timeslot) and E1 line bit ``b`` at
``start + b / 2,048,000`` s; a frame's time is that of its first address
bit. A frame the deframer refuses (bad FCS, abort, too short or long, not
whole octets) is reported as a ``TapFrame`` with its ``problem`` at the start
of the millisecond in which it ended (the deframer counts them; the stream
is fed a millisecond at a time to place them).
"""

from __future__ import annotations

import bisect
import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cython_ext import hdlc
from drivers.e1.calls import (
    CallChange,
    ChangeKind,
    ClearedHook,
    ConnectedHook,
    PriCall,
    PriCallTracker,
)
from drivers.e1.lapd import (
    Direction,
    IFrame,
    LapdError,
    LapdFrame,
    SFrame,
    UFrame,
    Unnumbered,
)
from drivers.e1.lapd_monitor import LapdMessage, LapdMonitor, LinkChange, LinkState
from drivers.e1.pcap import CaptureReader
from drivers.e1.q931 import Q931Message, decode_message
from drivers.e1.q931_codes import Q931Error
from gateway.events import Event

NANOSECONDS = 1_000_000_000
TIMESLOT_OCTETS_PER_SECOND = 8000
E1_BITS_PER_SECOND = 2_048_000
E1_FRAME_OCTETS = 32
D_CHANNEL_TIMESLOT = 16
PLACE_OCTETS = 8  # a raw timeslot stream is deframed a millisecond at a time (bad frames' time)
READ_OCTETS = 64 * 1024
# XDLC field values as Wireshark shows them (lapd.control.ftype, s_ftype, u_modifier_*).
FTYPE_I, FTYPE_S, FTYPE_U = 0, 1, 3
S_FTYPE_MASK = 0x0C
U_MODIFIER_MASK = 0xEC


class FrameProblem(StrEnum):
    """Why a frame was not decoded (``error`` in ``--json``)."""

    BAD_FCS = "bad_fcs"
    ABORTED = "aborted"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    NOT_ALIGNED = "not_aligned"  # not a whole number of octets between the flags
    TRUNCATED = "truncated_capture"  # the capture kept only part of the packet


_DEFRAMER_PROBLEMS = {
    "bad_fcs": FrameProblem.BAD_FCS,
    "aborts": FrameProblem.ABORTED,
    "too_short": FrameProblem.TOO_SHORT,
    "too_long": FrameProblem.TOO_LONG,
    "not_aligned": FrameProblem.NOT_ALIGNED,
}


@dataclass(frozen=True)
class TapFrame:
    """One frame of either direction, as a tool shows it."""

    time_ns: int
    direction: Direction | None  # None: not known (classic pcap, RR/RNR/REJ/XID frames)
    data: bytes | None  # address, control, information; None when ``problem`` is set
    problem: FrameProblem | None = None

    @property
    def time(self) -> float:
        return self.time_ns / NANOSECONDS


# -- sources of frames ------------------------------------------------------------------------


def capture_frames(reader: CaptureReader) -> Iterator[TapFrame]:
    """The frames of a pcap or pcapng; a classic pcap's direction inferred from C/R."""
    for packet in reader:
        if packet.truncated:
            yield TapFrame(packet.time_ns, packet.direction, None, FrameProblem.TRUNCATED)
            continue
        direction = packet.direction
        if direction is None:
            try:
                direction = LapdFrame.from_bytes(packet.data).direction()
            except LapdError:
                direction = None
        yield TapFrame(packet.time_ns, direction, packet.data)


class StreamDeframer:
    """One direction of a raw stream (``hdlc``: one timeslot's octets; ``e1``: E1 frames),
    octets in, ``TapFrame`` out. ``line_events`` collects the E1 receiver's events."""

    def __init__(
        self,
        direction: Direction,
        stream_format: str,
        *,
        start_ns: int = 0,
        bit_order: str = hdlc.MSB_FIRST,
        timeslot: int = D_CHANNEL_TIMESLOT,
    ) -> None:
        if stream_format not in ("hdlc", "e1"):
            raise ValueError(f"stream format must be hdlc or e1, got {stream_format!r}")
        if not 1 <= timeslot < E1_FRAME_OCTETS:
            raise ValueError(f"timeslot must be 1-31, got {timeslot}")
        self.direction = direction
        self.format = stream_format
        self.start_ns = start_ns
        self.timeslot = timeslot
        self.line_events: list[Any] = []
        self._reverse = bit_order == hdlc.LSB_FIRST and stream_format == "e1"
        # The E1 framer wants line order (msb-first): an lsb-first E1 stream is reversed
        # here; a timeslot stream's deframer reads either order itself.
        deframer_order = (
            hdlc.MSB_FIRST if stream_format == "e1" else hdlc.check_bit_order(bit_order)
        )
        self.deframer = hdlc.HdlcDeframer(deframer_order)
        self._counts = self._problem_counts()
        self._receiver: Any = None
        self._runs: list[tuple[int, int]] = []  # (first timeslot octet, its E1 frame's line bit)
        self._timeslot_octets = 0
        if stream_format == "e1":
            from drivers.e1.framing import E1Receiver  # the E1 framer: only for e1 streams

            self._receiver = E1Receiver(start_time=start_ns / NANOSECONDS)

    @property
    def line_state(self) -> Any:
        """The E1 receiver's ``LineState`` (None for a timeslot stream)."""
        return self._receiver.state if self._receiver is not None else None

    def feed(self, data: bytes) -> list[TapFrame]:
        if self._receiver is None:
            return self._deframe(data, self._timeslot_time)
        if self._reverse:
            data = data.translate(_REVERSED)
        framed = self._receiver.feed(data)
        self.line_events += framed.events
        out: list[TapFrame] = []
        for run in framed.runs:
            octets = run.frames[self.timeslot :: E1_FRAME_OCTETS]
            self._runs.append((self._timeslot_octets, run.bit))
            self._timeslot_octets += len(octets)
            out += self._deframe(octets, self._e1_time)
            self._forget_old_runs()
        return out

    def _deframe(self, octets: bytes, time_of: Callable[[int], int]) -> list[TapFrame]:
        """Good frames at their first address bit; a bad one at the start of the millisecond
        in which it ended (every later frame began after that, so the order holds)."""
        out: list[TapFrame] = []
        base = self.deframer.bytes_in
        for offset in range(0, len(octets), PLACE_OCTETS):
            for frame in self.deframer.feed(octets[offset : offset + PLACE_OCTETS]):
                out.append(TapFrame(time_of(frame.bit_offset), self.direction, frame.data))
            counts = self._problem_counts()
            if counts != self._counts:
                placed = time_of(8 * (base + offset))
                for name, problem in _DEFRAMER_PROBLEMS.items():
                    for _ in range(counts[name] - self._counts[name]):
                        out.append(TapFrame(placed, self.direction, None, problem))
                self._counts = counts
        out.sort(key=lambda frame: frame.time_ns)
        return out

    def _problem_counts(self) -> dict[str, int]:
        counters = self.deframer.counters()
        return {name: counters[name] for name in _DEFRAMER_PROBLEMS}

    def _timeslot_time(self, bit: int) -> int:
        return self.start_ns + bit * NANOSECONDS // (8 * TIMESLOT_OCTETS_PER_SECOND)

    def _e1_time(self, bit: int) -> int:
        octet, within = divmod(bit, 8)
        index = bisect.bisect_right(self._runs, (octet, float("inf"))) - 1
        first_octet, run_bit = self._runs[max(index, 0)]
        line_bit = run_bit + (octet - first_octet) * 8 * E1_FRAME_OCTETS
        line_bit += 8 * self.timeslot + within
        return self.start_ns + round(line_bit * NANOSECONDS / E1_BITS_PER_SECOND)

    def _forget_old_runs(self) -> None:
        keep_from = self._timeslot_octets - 4 * hdlc.DEFAULT_MAX_FRAME_OCTETS
        index = bisect.bisect_right(self._runs, (keep_from, float("inf"))) - 1
        if index > 0:
            del self._runs[:index]


_REVERSED = bytes(int(f"{value:08b}"[::-1], 2) for value in range(256))


def raw_stream_frames(
    stream: Any, deframer: StreamDeframer, read_octets: int = READ_OCTETS
) -> Iterator[TapFrame]:
    """Every frame of a raw stream file, read ``read_octets`` at a time."""
    while chunk := stream.read(read_octets):
        yield from deframer.feed(chunk)


class TimeOrder:
    """Frames of both directions in time order, when each direction is read in chunks.

    ``add`` takes a direction's frames and how far its line has been read
    (``reached_ns``); it returns the frames no other direction can still
    precede: those up to the least line time every direction has reached.
    """

    def __init__(self, directions: Iterable[Direction]) -> None:
        self._reached: dict[Direction, int | None] = dict.fromkeys(directions)
        self._heap: list[tuple[int, int, TapFrame]] = []
        self._count = 0

    def add(
        self, direction: Direction, frames: Iterable[TapFrame], reached_ns: int
    ) -> list[TapFrame]:
        for frame in frames:
            self._count += 1
            heapq.heappush(self._heap, (frame.time_ns, self._count, frame))
        self._reached[direction] = reached_ns
        limit = self.reached
        if limit is None:
            return []
        out = []
        while self._heap and self._heap[0][0] <= limit:
            out.append(heapq.heappop(self._heap)[2])
        return out

    @property
    def reached(self) -> int | None:
        """The line time every direction has reached (None until each has been read)."""
        if any(reached is None for reached in self._reached.values()):
            return None
        return min(reached for reached in self._reached.values() if reached is not None)

    def flush(self) -> list[TapFrame]:
        out = [entry[2] for entry in sorted(self._heap)]
        self._heap.clear()
        return out


# -- one frame, for display ------------------------------------------------------------------


@dataclass
class DecodedFrame:
    """A frame taken apart: LAPD always, Q.931 for an information field on SAPI 0."""

    lapd: LapdFrame | None = None
    lapd_error: LapdError | None = None
    message: Q931Message | None = None
    q931_error: Q931Error | None = None


def decode_frame(data: bytes) -> DecodedFrame:
    decoded = DecodedFrame()
    try:
        decoded.lapd = LapdFrame.from_bytes(data)
    except LapdError as error:
        decoded.lapd_error = error
        return decoded
    information = decoded.lapd.information
    if decoded.lapd.sapi == 0 and information:
        try:
            decoded.message = decode_message(information)
        except Q931Error as error:
            decoded.q931_error = error
    return decoded


def _is_response(frame: LapdFrame, direction: Direction | None) -> bool:
    """Whether Wireshark shows P/F as Final: a response, by direction when known."""
    if direction is not None:
        return not frame.is_command(direction)
    return frame.is_command_kind is False


def frame_fields(number: int, frame: TapFrame) -> dict[str, Any]:
    """One ``--json`` object: Wireshark display-filter names, plus ``t`` and ``dir``."""
    out: dict[str, Any] = {
        "frame.number": number,
        "t": round(frame.time_ns / NANOSECONDS, 6),
        "dir": frame.direction.value if frame.direction else None,
    }
    if frame.data is None:
        assert frame.problem is not None
        out["error"] = frame.problem.value
        return out
    decoded = decode_frame(frame.data)
    if decoded.lapd is None:
        assert decoded.lapd_error is not None
        out["error"] = f"lapd_{decoded.lapd_error.problem.value}"
        out["detail"] = str(decoded.lapd_error)
        out["data"] = frame.data.hex()
        return out
    lapd = decoded.lapd
    out |= {"lapd.sapi": lapd.sapi, "lapd.tei": lapd.tei, "lapd.cr": lapd.cr}
    response = _is_response(lapd, frame.direction)
    poll_name = "lapd.control.f" if response else "lapd.control.p"
    match lapd:
        case IFrame():
            out |= {
                "lapd.control.ftype": FTYPE_I,
                "lapd.control.n_s": lapd.ns,
                "lapd.control.n_r": lapd.nr,
                "lapd.control.p": lapd.poll,
            }
        case SFrame():
            out |= {
                "lapd.control.ftype": FTYPE_S,
                "lapd.control.s_ftype": lapd.function & S_FTYPE_MASK,
                "lapd.control.n_r": lapd.nr,
                poll_name: lapd.poll_final,
            }
        case UFrame():
            modifier = "lapd.control.u_modifier_resp" if response else "lapd.control.u_modifier_cmd"
            out |= {
                "lapd.control.ftype": FTYPE_U,
                modifier: lapd.function & U_MODIFIER_MASK,
                poll_name: lapd.poll_final,
            }
    if decoded.q931_error is not None:
        out["error"] = f"q931_{decoded.q931_error.problem.value}"
        out["detail"] = str(decoded.q931_error)
        return out
    if decoded.message is not None:
        out |= q931_fields(decoded.message)
    return out


def q931_fields(message: Q931Message) -> dict[str, Any]:
    reference = message.call_reference
    out: dict[str, Any] = {"q931.call_ref_len": reference.length}
    if reference.length:
        out |= {"q931.call_ref": reference.value, "q931.call_ref_flag": reference.flag}
    out["q931.message_type"] = int(message.message_type)
    if (cause := message.cause) is not None:
        out |= {"q931.cause_value": cause.value, "q931.cause_location": cause.location}
    if (channel := message.channel_identification) is not None:
        out["q931.channel.exclusive"] = channel.exclusive
        if channel.channel is not None:
            out["q931.channel.number"] = channel.channel
    if (calling := message.calling_party_number) is not None:
        out["q931.calling_party_number.digits"] = calling.digits
        if calling.presentation is not None:
            out["q931.presentation_ind"] = calling.presentation
        if calling.screening is not None:
            out["q931.screening_ind"] = calling.screening
    if (called := message.called_party_number) is not None:
        out["q931.called_party_number.digits"] = called.digits
    if (redirecting := message.redirecting_number) is not None:
        out["q931.redirecting_number.digits"] = redirecting.digits
    if (state := message.call_state) is not None:
        out["q931.call_state"] = state.state
    if (progress := message.progress_indicator) is not None:
        out["q931.progress_indicator.description"] = progress.description
        out["q931.progress_indicator.location"] = progress.location
    if (display := message.display) is not None:
        out["q931.display_information"] = display.text
    if (restart := message.restart_indicator) is not None:
        out["q931.restart_indicator"] = restart.restart_class
    if message.sending_complete:
        out["q931.sending_complete"] = True
    return out


_DIRECTION_TEXT = {Direction.NETWORK_TO_USER: "N->U", Direction.USER_TO_NETWORK: "U->N"}


def frame_line(number: int, frame: TapFrame, first_ns: int) -> str:
    """One line per frame, like tshark's summary: number, seconds since the first frame,
    direction, protocol, length, what it is."""
    relative = (frame.time_ns - first_ns) / NANOSECONDS
    direction = _DIRECTION_TEXT.get(frame.direction, "?   ") if frame.direction else "?   "
    head = f"{number:6d} {relative:12.6f} {direction}"
    if frame.data is None:
        assert frame.problem is not None
        return f"{head} HDLC    -  bad frame: {frame.problem.value.replace('_', ' ')}"
    decoded = decode_frame(frame.data)
    length = len(frame.data)
    if decoded.lapd is None:
        return f"{head} LAPD {length:4d}  malformed: {decoded.lapd_error}"
    lapd_text = _lapd_text(decoded.lapd, frame.direction)
    if decoded.q931_error is not None:
        return f"{head} Q.931 {length:3d}  {lapd_text} | malformed: {decoded.q931_error}"
    if decoded.message is not None:
        return f"{head} Q.931 {length:3d}  {lapd_text} | {message_text(decoded.message)}"
    return f"{head} LAPD {length:4d}  {lapd_text}"


def _lapd_text(frame: LapdFrame, direction: Direction | None) -> str:
    kind = "C" if not _is_response(frame, direction) else "R"
    address = f"SAPI {frame.sapi} TEI {frame.tei} {kind}"
    match frame:
        case IFrame():
            return f"{address} I N(S)={frame.ns} N(R)={frame.nr}{' P' if frame.poll else ''}"
        case SFrame():
            return f"{address} {frame.function.name} N(R)={frame.nr}"
        case UFrame():
            text = f"{address} {frame.function.name}{' P/F' if frame.poll_final else ''}"
            if frame.function is Unnumbered.UI and frame.sapi == 63:
                text += " (TEI management)"
            return text
    return address


def message_text(message: Q931Message) -> str:
    reference = message.call_reference
    parts = [message.name]
    if reference.is_dummy:
        parts.append("dummy CR")
    else:
        parts.append(f"CRV {reference.value}{' (to originator)' if reference.flag else ''}")
    if (calling := message.calling_party_number) is not None:
        presentation = {1: " restricted", 2: " unavailable"}.get(calling.presentation or 0, "")
        parts.append(f"calling {calling.digits or '-'}{presentation}")
    if (called := message.called_party_number) is not None:
        parts.append(f"called {called.digits}")
    if (channel := message.channel_identification) is not None and channel.channel is not None:
        parts.append(f"channel {channel.channel}{'' if channel.exclusive else ' preferred'}")
    if (cause := message.cause) is not None:
        parts.append(f"cause {cause.value} location {cause.location}")
    if (state := message.call_state) is not None:
        parts.append(f"state {state.state}")
    if message.sending_complete:
        parts.append("sending complete")
    return ", ".join(parts)


# -- the tap ---------------------------------------------------------------------------------


@dataclass
class TapCounters:
    frames: int = 0
    bad_frames: Counter[str] = field(default_factory=Counter)
    q931_errors: Counter[str] = field(default_factory=Counter)


class TapDecoder:
    """Frames of both directions, in time order, through the passive tap's layers.

    ``feed`` returns what changed (calls and links); ``calls()`` every call
    seen, in the order first seen (released ones and those still open).
    ``tick`` runs the silence timers of a live tap; a decode of a file does
    not call it (a capture filtered to Q.931 has gaps that are not silence).
    """

    def __init__(
        self,
        line: str = "span",
        emit: Callable[[Event], None] | None = None,
        *,
        on_connected: ConnectedHook | None = None,
        on_cleared: ClearedHook | None = None,
    ) -> None:
        self.events: list[Event] = []
        self.monitor = LapdMonitor()
        self.tracker = PriCallTracker(
            line, emit or self.events.append, on_connected=on_connected, on_cleared=on_cleared
        )
        self.counters = TapCounters()
        self._released: dict[int, PriCall] = {}

    def feed(self, frame: TapFrame) -> list[CallChange | LinkChange]:
        self.counters.frames += 1
        if frame.data is None:
            assert frame.problem is not None
            self.counters.bad_frames[frame.problem.value] += 1
            return []
        out: list[CallChange | LinkChange] = []
        time = frame.time
        out += self._note(self.tracker.tick(time))
        for event in self.monitor.feed(frame.data, time, frame.direction):
            if isinstance(event, LinkChange):
                out.append(event)
                if event.sapi == 0 and event.state is LinkState.DOWN:
                    out += self._note(self.tracker.link_down(event.time))
                elif event.sapi == 0 and event.state is LinkState.ESTABLISHED:
                    self.tracker.link_up(event.time)
            elif isinstance(event, LapdMessage):
                try:
                    message = decode_message(event.payload)
                except Q931Error as error:
                    self.counters.q931_errors[error.problem.value] += 1
                    continue
                out += self._note(self.tracker.on_message(message, event.direction, time))
        return out

    def tick(self, now: float) -> list[CallChange | LinkChange]:
        """Clock ticks on a live tap: links silent past T203 go idle, then down (calls in
        set-up end at once), and T309 ends answered calls on a link down too long."""
        out: list[CallChange | LinkChange] = []
        for event in self.monitor.tick(now):
            if isinstance(event, LinkChange):
                out.append(event)
                if event.sapi == 0 and event.state is LinkState.DOWN:
                    out += self._note(self.tracker.link_down(event.time))
        out += self._note(self.tracker.tick(now))
        return out

    def _note(self, changes: list[CallChange]) -> list[CallChange]:
        for change in changes:
            if change.kind is ChangeKind.RELEASED:
                self._released[change.serial] = change.call
        return changes

    def calls(self) -> list[PriCall]:
        every = dict(self._released)
        every.update(dict(self.tracker.open_calls()))
        return [every[serial] for serial in sorted(every)]


def call_line(call: PriCall) -> str:
    """One line per call for ``--calls`` without ``--json``."""

    def at(value: float | None) -> str:
        if value is None:
            return "-"
        moment = datetime.fromtimestamp(value, UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    caller = call.caller or "-"
    if call.caller_presentation is not None:
        caller += f" ({call.caller_presentation.value})"
    channel = f"ch {call.b_channel}" if call.b_channel is not None else "ch -"
    cleared = f"cleared by {call.cleared_by.value}" if call.cleared_by else "not cleared"
    cause = f"cause {call.cause}" if call.cause is not None else "no cause"
    outcome = call.outcome.value if call.outcome else "open/unknown"
    return (
        f"CRV {call.call_ref:5d} {call.originator.value:7} {channel:5} {caller} -> "
        f"{call.called or '-'}  offered {at(call.offered_at)} answered {at(call.answered_at)} "
        f"ended {at(call.ended_at)}  {cleared}, {cause}: {outcome}"
    )


def describe_change(change: CallChange | LinkChange) -> str:
    """A monitor line for a call or link change."""
    if isinstance(change, LinkChange):
        return (
            f"D-channel SAPI {change.sapi} TEI {change.tei}: {change.previous.value} -> "
            f"{change.state.value} ({change.reason.value})"
        )
    call = change.call
    text = f"call CRV {call.call_ref} ({call.originator.value}) {change.kind.value}"
    match change.kind:
        case ChangeKind.OFFERED:
            text += f": from {call.caller or '-'}"
            if call.caller_presentation is not None:
                text += f" ({call.caller_presentation.value})"
            text += f" to {call.called or '-'}"
        case ChangeKind.CHANNEL | ChangeKind.ANSWERED:
            text += f": channel {call.b_channel if call.b_channel is not None else '-'}"
        case ChangeKind.DIGITS:
            text += f": called {call.called}"
        case ChangeKind.CLEARING | ChangeKind.RELEASED:
            by = call.cleared_by.value if call.cleared_by else "nobody seen"
            text += f": by {by}, cause {call.cause if call.cause is not None else '-'}"
            if call.outcome is not None:
                text += f", {call.outcome.value}"
    return text
