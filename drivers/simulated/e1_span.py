"""A simulated E1 PRI span: both directions of a tapped 112 trunk, 20 ms of line at a time.

What a passive tap on a real trunk would receive, built from a script of
calls and faults (``e1_scenario``)::

    every block (160 frames, 20 ms of line):
      due actions ─▶ Q.931 messages of the calls (SETUP, CALL PROCEEDING, ALERTING, CONNECT,
                     DISCONNECT, RELEASE, ...) ─▶ LapdLink: I frames, RR, polls, SABME/UA
      each side's D-channel (DChannelWriter) ─▶ TS16       (network: the PSTN, the callers;
      caller's voice ─▶ the call's B-channel, network→user  user: the centre's PBX)
      call-taker's voice ─▶ the same B-channel, user→network
      timeslots ─▶ mux ─▶ E1Generator (FAS/NFAS, CRC-4, A bit) ─▶ line faults
    ─▶ SpanBlock: per direction the E1 octets (5120), the TS16 octets (160), the good frames

One call, from the network side (it allocates the call reference)::

    n2u SETUP (bearer: speech, A-law; channel, exclusive or preferred; calling and called
        party numbers; sending complete unless overlap)
    u2n CALL PROCEEDING (the confirmed channel) | SETUP ACKNOWLEDGE, then n2u INFORMATION
        with one called digit each, the last with sending complete (overlap)
    u2n ALERTING
    answered:  u2n CONNECT, n2u CONNECT ACKNOWLEDGE; voice both ways for talk_s; the
               clearing side's DISCONNECT (16), the other's RELEASE, RELEASE COMPLETE
    abandoned: n2u DISCONNECT (16) after ring_s: the caller gave up (terputus)
    busy:      u2n RELEASE COMPLETE (17) at once
    rejected:  u2n DISCONNECT (21) after ring_s

Faults (``SpanFault``): bit errors (anywhere, or in one timeslot), a damaged first
copy of the next frames (bad FCS, abort), frame slips (frames repeated or
deleted), LOS (all zeros), AIS (all ones), lost alignment (FAS words broken),
RAI (the A bit), I frames retransmitted after T200, the data link released
(DISC) and re-established, and the tap's connections dropped. Messages a side
sends during a line outage are lost, as on a real line; the link is
re-established (SABME/UA) when the outage ends.

Each call's truth (``SpanCallRecord``: its channel, cause, outcome and the
events a gateway must report) is known here, so tests and benches can check
what the gateway saw against what happened. Pure computation: no clock, no
I/O (``e1_outputs`` paces and writes the blocks).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from cython_ext import g711
from drivers.e1 import generator as line
from drivers.e1.lapd import T200, Direction, IFrame
from drivers.e1.q931 import CallReference, MessageType, Q931Message
from drivers.e1.q931_codes import CauseValue, Location, Screening, TypeOfNumber
from drivers.e1.q931_ie import (
    BearerCapability,
    CalledPartyNumber,
    CallingPartyNumber,
    Cause,
    ChannelIdentification,
    InformationElement,
    SendingComplete,
)
from drivers.simulated.caller_audio import AudioSegment, script_frames
from drivers.simulated.e1_dchannel import FrameDamage, LapdLink
from drivers.simulated.e1_script import (
    B_CHANNELS,
    D_CHANNEL_TIMESLOT,
    LINE_OUTAGES,
    N2U,
    U2N,
    ClearingSide,
    FaultKind,
    SpanCall,
    SpanCallRecord,
    SpanFault,
    SpanOutcome,
    SpanScenario,
)
from gateway.events import Presentation

BLOCK_FRAMES = 160
BLOCK_S = BLOCK_FRAMES / line.FRAMES_PER_SECOND  # 20 ms
IDLE_ALAW = line.IDLE_OCTET
RESPONSE_S = 0.03  # a peer answers a message this long after it
DIGIT_INTERVAL_S = 0.15  # overlap: one called digit each
CALL_REFERENCE_TOP = 0x7FFF  # two-octet call references (PRI)
VOICE_CACHE_ENTRIES = 64
LINK_UP_AT_S = 0.05  # SABME/UA once the tap has found the frame alignment (a few frames)


@dataclass
class SpanBlock:
    """20 ms of both directions (a slip makes a direction's E1 octets longer or shorter)."""

    start_s: float
    e1: dict[Direction, bytes]
    timeslot: dict[Direction, bytes]  # TS16 octets (after the timeslot faults)
    frames: dict[Direction, list[bytes]]  # good LAPD frames queued in this block
    disconnect: bool = False  # a DISCONNECT fault: outputs drop their connections


_voice_cache: dict[tuple[AudioSegment, ...], bytes] = {}


class VoiceTrack:
    """A voice script as A-law, ``take(n)`` samples at a time, then idle for ever.

    A script rendered once is kept (the same caller script in many calls costs
    one rendering: speech synthesis is slow pure Python).
    """

    def __init__(self, segments: tuple[AudioSegment, ...]) -> None:
        self._segments = segments
        self._total = round(sum(segment.duration_s for segment in segments) * 8000)
        self._cached = _voice_cache.get(segments)
        self._frames = None if self._cached is not None else script_frames(segments)
        self._rendered = bytearray()
        self._offset = 0

    def take(self, count: int) -> bytes:
        end = self._offset + count
        if self._cached is not None:
            out = self._cached[self._offset : end]
        else:
            assert self._frames is not None
            while len(self._rendered) < min(end, self._total):
                self._rendered += g711.alaw_encode(next(self._frames))
            out = bytes(self._rendered[self._offset : min(end, self._total)])
            if len(self._rendered) >= self._total and len(_voice_cache) < VOICE_CACHE_ENTRIES:
                _voice_cache[self._segments] = bytes(self._rendered[: self._total])
        self._offset = end
        return out + bytes((IDLE_ALAW,)) * (count - len(out))


@dataclass(frozen=True)
class _Message:
    direction: Direction
    reference: CallReference
    kind: MessageType
    elements: tuple[InformationElement, ...]


@dataclass
class _LiveCall:
    record: SpanCallRecord
    reference: CallReference  # as the network sends it (flag 0)
    offered_channel: int  # the SETUP's (the confirmed one may differ when it was preferred)
    voice: dict[Direction, VoiceTrack] = field(default_factory=dict)  # while connected


@dataclass
class _LineFaults:
    """One direction's faults in force."""

    los_until: float = -1.0
    ais_until: float = -1.0
    misaligned_until: float = -1.0
    rai_until: float = -1.0
    bit_errors: list[tuple[float, int, int | None]] = field(default_factory=list)  # until, n, ts
    slips: list[int] = field(default_factory=list)


Action = Callable[[], None]


class SimulatedSpan:
    """Plays ``scenario``; ``block()`` returns the next 20 ms of both directions."""

    def __init__(self, scenario: SpanScenario) -> None:
        self.scenario = scenario
        self.time_s = 0.0
        self.link = LapdLink()
        self.generators = {d: line.E1Generator(crc4=scenario.crc4) for d in (N2U, U2N)}
        self.records: list[SpanCallRecord] = []
        self.on_call_done: Callable[[SpanCallRecord], None] | None = None
        self._rng = random.Random(scenario.seed)
        self._actions: list[tuple[float, int, Action]] = []
        self._order = itertools.count()
        self._calls: dict[int, _LiveCall] = {}
        self._channels: set[int] = set()
        self._next_reference = 1
        self._scripted = 0  # scripted actions (calls, faults) not yet run
        self._faults = {d: _LineFaults() for d in (N2U, U2N)}
        self._outbox: deque[tuple[Direction, bytes]] = deque()  # Q.931 messages, in order
        self._recovering = 0  # retransmissions pending (a sender waits out T200)
        self._recent: dict[Direction, list[tuple[float, IFrame]]] = {N2U: [], U2N: []}
        self._outage_ends = -1.0
        self._disconnect = False
        for sequence, scheduled in enumerate(scenario.calls, start=1):
            self._schedule_scripted(scheduled.at_s, self._caller(sequence, scheduled.call))
        for scheduled_fault in scenario.faults:
            self._schedule_scripted(scheduled_fault.at_s, self._injector(scheduled_fault.fault))
        self._schedule(LINK_UP_AT_S, self._reestablish)

    # -- the timeline ----------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Every scripted call and fault has run, every call is released and every message
        held back (link down, T200 recovery) has gone out."""
        return self._scripted == 0 and not self._calls and not self._recovering and not self._outbox

    def _schedule(self, at_s: float, action: Action) -> None:
        heapq.heappush(self._actions, (at_s, next(self._order), action))

    def _schedule_scripted(self, at_s: float, action: Action) -> None:
        self._scripted += 1

        def run() -> None:
            self._scripted -= 1
            action()

        self._schedule(at_s, run)

    def _caller(self, sequence: int, call: SpanCall) -> Action:
        return lambda: self._offer(sequence, call)

    def _injector(self, fault: SpanFault) -> Action:
        return lambda: self._inject(fault)

    def block(self) -> SpanBlock:
        """Run what is due in the next 20 ms and build both directions' octets."""
        start = self.time_s
        end = start + BLOCK_S
        while self._actions and self._actions[0][0] < end:
            _, _, action = heapq.heappop(self._actions)
            action()
        if self._outage_ends >= 0 and start >= self._outage_ends:
            self._outage_ends = -1.0
            self._reestablish()
        self._send_next_message()
        self.link.acknowledge(start)
        e1: dict[Direction, bytes] = {}
        timeslot: dict[Direction, bytes] = {}
        frames: dict[Direction, list[bytes]] = {}
        for direction in (N2U, U2N):
            writer = self.link.peer(direction).writer
            d_channel = writer.take(BLOCK_FRAMES)
            frames[direction] = writer.take_frames()
            slots = {D_CHANNEL_TIMESLOT: d_channel}
            for live in self._calls.values():
                track = live.voice.get(direction)
                if track is not None:
                    slots[live.record.channel] = track.take(BLOCK_FRAMES)
            faults = self._faults[direction]
            generator = self.generators[direction]
            generator.remote_alarm = start < faults.rai_until
            octets = generator.frames(line.mux(slots, BLOCK_FRAMES))
            e1[direction], timeslot[direction], hit = self._damage(
                direction, start, octets, d_channel
            )
            if hit:
                self._recover(direction, start)
            if self._out(direction, start):
                frames[direction] = []  # lost on the line: the other side never saw them
        block = SpanBlock(start, e1, timeslot, frames, self._disconnect)
        self._disconnect = False
        self.time_s = end
        return block

    def _out(self, direction: Direction, at: float) -> bool:
        faults = self._faults[direction]
        return at < max(faults.los_until, faults.ais_until, faults.misaligned_until)

    # -- line faults ------------------------------------------------------------------------

    def _inject(self, fault: SpanFault) -> None:
        now = self.time_s
        until = now + fault.duration_s
        for direction in fault.directions:
            faults = self._faults[direction]
            peer = self.link.peer(direction)
            match fault.kind:
                case FaultKind.LOS:
                    faults.los_until = max(faults.los_until, until)
                case FaultKind.AIS:
                    faults.ais_until = max(faults.ais_until, until)
                case FaultKind.LOST_ALIGNMENT:
                    faults.misaligned_until = max(faults.misaligned_until, until)
                case FaultKind.RAI:
                    faults.rai_until = max(faults.rai_until, until)
                case FaultKind.BIT_ERRORS:
                    spread_until = max(until, now + BLOCK_S)
                    faults.bit_errors.append((spread_until, fault.count, fault.timeslot))
                case FaultKind.SLIP:
                    faults.slips.append(fault.count)
                case FaultKind.BAD_FCS:
                    peer.damage_next += [FrameDamage.BAD_FCS] * fault.count
                case FaultKind.ABORT:
                    peer.damage_next += [FrameDamage.ABORT] * fault.count
                case FaultKind.RETRANSMISSION:
                    peer.retransmit_next += fault.count
        if fault.kind in LINE_OUTAGES:
            self._outage_ends = max(self._outage_ends, until)
        elif fault.kind is FaultKind.LINK_DOWN:
            self._release_link()
            self._schedule(until, self._reestablish)
        elif fault.kind is FaultKind.DISCONNECT:
            self._disconnect = True

    def _reestablish(self) -> None:
        """SABME now, UA a block later; then the messages held while the link was down."""
        self.link.request_establishment(self.time_s)
        self._schedule(self.time_s + BLOCK_S, self._established)

    def _established(self) -> None:
        self.link.confirm_establishment(self.time_s)

    def _release_link(self) -> None:
        self.link.request_release(self.time_s)
        self._schedule(self.time_s + BLOCK_S, lambda: self.link.confirm_release(self.time_s))

    def _damage(
        self, direction: Direction, start: float, octets: bytes, d_channel: bytes
    ) -> tuple[bytes, bytes, bool]:
        """Apply the line faults in force to one direction's block (E1 and TS16 views); say
        whether the D-channel's octets were hit (bit errors in TS16, a slip)."""
        faults = self._faults[direction]
        if start < faults.los_until:
            return line.loss_of_signal(BLOCK_FRAMES), bytes(BLOCK_FRAMES), False
        if start < faults.ais_until:
            return line.alarm_indication(BLOCK_FRAMES), b"\xff" * BLOCK_FRAMES, False
        if start < faults.misaligned_until:
            octets = line.break_fas_words(octets, 0, BLOCK_FRAMES // 2)
        flips: list[int] = []
        d_channel_flips: list[int] = []
        still: list[tuple[float, int, int | None]] = []
        for until, remaining, slot in faults.bit_errors:
            blocks_left = max(1, round((until - start) / BLOCK_S))
            now_count = -(-remaining // blocks_left)
            for _ in range(now_count):
                frame = self._rng.randrange(BLOCK_FRAMES)
                octet = slot if slot is not None else self._rng.randrange(line.FRAME_OCTETS)
                bit = self._rng.randrange(8)
                flips.append((frame * line.FRAME_OCTETS + octet) * 8 + bit)
                if octet == D_CHANNEL_TIMESLOT:
                    d_channel_flips.append(frame * 8 + bit)
            if remaining - now_count > 0:
                still.append((until, remaining - now_count, slot))
        faults.bit_errors = still
        if flips:
            octets = line.flip_bits(octets, flips)
            d_channel = line.flip_bits(d_channel, d_channel_flips)
        hit = bool(d_channel_flips or faults.slips)
        for slip in faults.slips:
            frame = self._rng.randrange(1, BLOCK_FRAMES // 2)
            if slip > 0:
                octets = line.repeat_frames(octets, frame, slip)
            else:
                octets = line.drop_frames(octets, frame, -slip)
        faults.slips.clear()
        return octets, d_channel, hit

    def _recover(self, direction: Direction, start: float) -> None:
        """The D-channel was hit: the I frames of this block and the one before may not have
        reached the peer, so (as its missing ack would make it) the sender sends them again
        after T200 (Q.921 timer recovery). A copy the peer did get is harmless: the same
        N(S) twice is a retransmission, delivered once."""
        recent = [(t, f) for t, f in self._recent[direction] if t >= start - BLOCK_S - 1e-9]
        self._recent[direction] = []
        for _, frame in recent:
            self._recovering += 1
            self._schedule(self.time_s + T200, partial(self._resend, direction, frame))

    # -- calls ------------------------------------------------------------------------------

    def _offer(self, sequence: int, call: SpanCall) -> None:
        now = self.time_s
        reference = self._allocate_reference()
        offered = call.channel if call.channel is not None else self._free_channel()
        channel = call.confirmed_channel if call.confirmed_channel is not None else offered
        self._channels |= {offered, channel}
        record = SpanCallRecord(sequence, call, reference.value, channel, now)
        live = _LiveCall(record, reference, offered)
        self._calls[reference.value] = live
        self.records.append(record)
        answer = CallReference(reference.value, flag=1)

        def net(kind: MessageType, *elements: InformationElement) -> _Message:
            return _Message(N2U, reference, kind, elements)

        def centre(kind: MessageType, *elements: InformationElement) -> _Message:
            return _Message(U2N, answer, kind, elements)

        overlap = call.overlap and call.outcome is not SpanOutcome.BUSY  # busy: refused at once
        self._send(
            net(
                MessageType.SETUP,
                *([] if overlap else [SendingComplete()]),
                BearerCapability(),
                ChannelIdentification((offered,), exclusive=call.exclusive),
                *_calling_party(call),
                CalledPartyNumber(call.called[:1] if overlap else call.called),
            )
        )
        confirm = ChannelIdentification((channel,), exclusive=True)
        t = now + RESPONSE_S
        if call.outcome is SpanOutcome.BUSY:
            self._at(t, centre(MessageType.RELEASE_COMPLETE, _cause(CauseValue.USER_BUSY)))
            self._at(t, partial(self._released, live, t, t))
            return
        if overlap:
            self._at(t, centre(MessageType.SETUP_ACKNOWLEDGE, confirm))
            digits = call.called[1:]
            for index, digit in enumerate(digits):
                t += DIGIT_INTERVAL_S
                last = index == len(digits) - 1
                elements = [CalledPartyNumber(digit)] + ([SendingComplete()] if last else [])
                self._at(t, net(MessageType.INFORMATION, *elements))
            t += RESPONSE_S
            self._at(t, centre(MessageType.CALL_PROCEEDING))
        else:
            self._at(t, centre(MessageType.CALL_PROCEEDING, confirm))
        t += RESPONSE_S
        if call.outcome is not SpanOutcome.REJECTED:
            self._at(t, centre(MessageType.ALERTING))
        t = max(now + call.ring_s, t + RESPONSE_S)
        first, second = net, centre  # who clears, who answers the clearing
        location = Location.PUBLIC_NETWORK_REMOTE_USER
        cause = CauseValue.NORMAL_CLEARING
        if call.outcome is SpanOutcome.ANSWERED:
            self._at(t, centre(MessageType.CONNECT))
            self._at(t, partial(self._connected, live, t))
            self._at(t + RESPONSE_S, net(MessageType.CONNECT_ACKNOWLEDGE))
            t += call.talk_s
            if call.cleared_by is ClearingSide.CENTRE:
                first, second, location = centre, net, Location.USER
        elif call.outcome is SpanOutcome.REJECTED:
            first, second, location = centre, net, Location.USER
            cause = CauseValue.CALL_REJECTED
        self._at(t, first(MessageType.DISCONNECT, _cause(cause, location)))
        self._at(t, partial(self._silenced, live, t))
        self._at(t + RESPONSE_S, second(MessageType.RELEASE))
        released = t + 2 * RESPONSE_S
        self._at(released, first(MessageType.RELEASE_COMPLETE))
        self._at(released, partial(self._released, live, t, released))

    def _at(self, at_s: float, what: _Message | Action) -> None:
        """Schedule a message or an action."""
        if isinstance(what, _Message):
            self._schedule(at_s, partial(self._send, what))
        else:
            self._schedule(at_s, what)

    def _send(self, message: _Message) -> None:
        payload = Q931Message(message.kind, message.reference, message.elements).to_bytes()
        self._outbox.append((message.direction, payload))

    def _send_next_message(self) -> None:
        """One queued Q.931 message a block, in order: an answer never overtakes what it
        answers on the line, even after the link was down or a sender waited out T200."""
        if not self._outbox or self._recovering or not self.link.established:
            return
        direction, payload = self._outbox.popleft()
        frame = self.link.send_information(direction, payload, self.time_s)
        self._note_sent(direction, frame)
        peer = self.link.peer(direction)
        if peer.retransmit_next:
            peer.retransmit_next -= 1
            self._recovering += 1
            self._schedule(self.time_s + T200, partial(self._resend, direction, frame))

    def _resend(self, direction: Direction, frame: IFrame) -> None:
        """T200 ran out: the frame again (Q.921 timer recovery); then the next messages."""
        self.link.resend(direction, frame, self.time_s)
        self._note_sent(direction, frame)  # it may be hit again
        self._recovering -= 1

    def _note_sent(self, direction: Direction, frame: IFrame) -> None:
        recent = self._recent[direction]
        recent.append((self.time_s, frame))
        del recent[:-4]

    def _connected(self, live: _LiveCall, now_s: float) -> None:
        live.record.answered_at_s = now_s
        live.voice = {
            N2U: VoiceTrack(live.record.spec.audio),
            U2N: VoiceTrack(live.record.spec.centre_audio),
        }

    def _silenced(self, live: _LiveCall, ended: float) -> None:
        live.record.ended_at_s = ended
        live.voice = {}

    def _released(self, live: _LiveCall, ended: float, released: float) -> None:
        record = live.record
        if record.ended_at_s is None:
            record.ended_at_s = ended
        record.released_at_s = released
        live.voice = {}
        self._calls.pop(record.call_reference, None)
        self._channels -= {record.channel, live.offered_channel}
        if self.on_call_done is not None:
            self.on_call_done(record)

    def _allocate_reference(self) -> CallReference:
        for _ in range(CALL_REFERENCE_TOP):
            value = self._next_reference
            self._next_reference = value % CALL_REFERENCE_TOP + 1
            if value not in self._calls:
                return CallReference(value)
        raise RuntimeError("every call reference is in use")

    def _free_channel(self) -> int:
        for channel in B_CHANNELS:
            if channel not in self._channels:
                return channel
        raise RuntimeError("all 30 B-channels are busy: the network would refuse (cause 34)")


def _cause(value: CauseValue, location: Location = Location.USER) -> Cause:
    return Cause(value=value, location=location)


def _calling_party(call: SpanCall) -> list[InformationElement]:
    """The Calling party number element, or none (no caller id)."""
    if call.caller is None and call.shown_presentation is Presentation.UNAVAILABLE:
        return []
    presentation = {
        Presentation.ALLOWED: 0,
        Presentation.RESTRICTED: 1,
        Presentation.UNAVAILABLE: 2,
    }[call.shown_presentation]
    digits, type_of_number = _number_parts(call.caller)
    return [
        CallingPartyNumber(
            digits,
            type_of_number,
            presentation=presentation,
            screening=Screening.NETWORK_PROVIDED,
        )
    ]


def _number_parts(number: str | None) -> tuple[str, int]:
    if not number:
        return "", TypeOfNumber.UNKNOWN
    if number.startswith("+"):
        return number[1:], TypeOfNumber.INTERNATIONAL
    if number.startswith("0"):
        return number[1:], TypeOfNumber.NATIONAL
    return number, TypeOfNumber.UNKNOWN
