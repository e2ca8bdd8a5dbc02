"""PRI call tracking: Q.931 messages of both directions in, calls and gateway call events out.

A passive tap sees both sides of each call's signalling; ``PriCallTracker``
follows every call on one span and reports it twice: as a plain record
(``PriCall``, the ``edge112 e1 decode --calls --json`` object) and, for calls
coming *in* to the centre, as the same ``call.*`` events a GSM line sends::

    (message, direction, at) -> PriCallTracker.on_message -> [CallChange ...]
                          |-> emit(CallOffered | CallAnswered | CallEnded | CallAbandoned)
                          |-> on_connected(call_id, b_channel)   B-channel audio starts
                          `-> on_cleared(call_id, b_channel)     ... and stops

A call is known by its call reference value (CRV) *and* by who allocated it
(the originator: the sender of a message whose CR flag is 0, the receiver of
one whose flag is 1), so the network's CRV 5 and the user's CRV 5 (glare)
are two calls. A CRV is free again after RELEASE COMPLETE; a SETUP on a key
still open means the tap missed the end of the earlier call (it is closed,
counted). The global CRV 0 and the dummy call reference are never calls.

One call::

    SETUP ──▶ [SETUP ACK] [INFORMATION: more called digits] [CALL PROCEEDING] [ALERTING]
      │  offered                      (from the called side: confirms the B-channel)
      ├──▶ CONNECT ──▶ answered ──▶ DISCONNECT | RELEASE | RELEASE COMPLETE ──▶ call.ended
      └──▶ DISCONNECT | RELEASE | RELEASE COMPLETE before CONNECT ──────────────▶ call.abandoned
           from the caller: abandoned (terputus); from the called side: rejected
    ... RELEASE COMPLETE: released, the CRV is free

Other ends: RESTART (or its ACK) naming the call's channel, or the whole
interface; STATUS reporting the Null call state (the peer has no such call;
a STATUS with cause 30 is only an answer to STATUS ENQUIRY, never a
clearing); the D-channel down (calls not yet answered at once, answered ones
after T309 unless the link comes back); ``release_all`` (the span is lost).

The B-channel is the one the called side names (SETUP ACK, CALL PROCEEDING,
ALERTING, CONNECT): a SETUP's channel may be only preferred. An exclusive
SETUP channel counts from the start.

Events go out only for calls whose SETUP the tap saw and whose originator is
``incoming_side`` (the network by default: calls *to* the centre). A call the
tap joined mid-way (it started late) is still tracked and reported as a
record, but sends no events: its start and caller are unknown, and a gateway
that restarted during the call already ended it as ``line_lost``.

Times are the caller's (``at``: seconds since the Unix epoch, the time of
the frame's first bit); the tracker has no clock. Methods take one lock, so
messages (the D-channel reader) and ``tick``/``release_all`` (the worker)
may come from different threads; ``emit`` and the hooks run with it held
and must not call back into the tracker.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from drivers.e1.call_records import (
    CallChange,
    ChangeKind,
    PriCall,
    TrackerCounters,
    caller_presentation,
    end_cause,
    other_side,
    sender_side,
)
from drivers.e1.lapd import Direction
from drivers.e1.q931 import MessageType, Q931Message
from drivers.e1.q931_codes import (
    CallStateValue,
    RestartClass,
    TypeOfNumber,
)
from drivers.e1.q931_ie import CallState, ChannelIdentification
from gateway.events import (
    CallAbandoned,
    CallAnswered,
    CallEnded,
    CallOffered,
    CallOutcome,
    EndCause,
    Event,
    InterfaceSide,
    Presentation,
    utc_now,
)
from gateway.ids import uuid7_str
from gateway.privacy import mask_number

__all__ = [  # the records live in call_records.py; importable from here as well
    "CallChange",
    "ChangeKind",
    "ClearedHook",
    "ConnectedHook",
    "PriCall",
    "PriCallTracker",
    "TrackerCounters",
    "caller_presentation",
    "end_cause",
]

logger = logging.getLogger("edge112.e1.calls")

T309_S = 90.0  # Q.931: how long an answered call survives a D-channel failure
RING_COUNT = 1  # a SETUP offers a call once; spans have no rings to count
INDONESIA_TRUNK_PREFIX = "0"  # put before a national number (081..., 021...)
E1_CHANNELS = range(1, 32)  # channel numbers an E1 PRI can name (16 is the D-channel)

CLEARING = frozenset({MessageType.DISCONNECT, MessageType.RELEASE, MessageType.RELEASE_COMPLETE})
# From the called side these confirm the B-channel (Q.931 5.2.3.1: its first response).
CONFIRMING = frozenset(
    {
        MessageType.SETUP_ACKNOWLEDGE,
        MessageType.CALL_PROCEEDING,
        MessageType.ALERTING,
        MessageType.CONNECT,
    }
)
# Seen without the SETUP, these show the call was still being set up: not yet answered.
SETUP_PHASE = frozenset(
    {MessageType.SETUP_ACKNOWLEDGE, MessageType.CALL_PROCEEDING, MessageType.ALERTING}
)
# On a call the tracker does not know, these are no sign of one (answers to an unknown CRV).
NOT_A_CALL = frozenset(
    {MessageType.RELEASE_COMPLETE, MessageType.STATUS, MessageType.STATUS_ENQUIRY}
)
RESTARTS = frozenset({MessageType.RESTART, MessageType.RESTART_ACKNOWLEDGE})


@dataclass
class _Tracked:
    serial: int
    record: PriCall
    call_id: str | None  # set when the call sends events
    setup_seen: bool
    preferred_channel: int | None = None  # the SETUP's, until the called side confirms one
    channel_confirmed: bool = False
    setup_phase_seen: bool = False  # a message of the set-up phase (so not yet answered)
    connected: bool = False  # on_connected was called
    end_emitted: bool = False


CallKey = tuple[int, InterfaceSide]  # (CRV, originator)
ConnectedHook = Callable[[str, int], None]  # (call_id, b_channel)
ClearedHook = Callable[[str, int], None]


class PriCallTracker:
    """Every call of span ``line``, from its Q.931 messages; events through ``emit``."""

    def __init__(
        self,
        line: str,
        emit: Callable[[Event], None],
        *,
        on_connected: ConnectedHook | None = None,
        on_cleared: ClearedHook | None = None,
        incoming_side: InterfaceSide = InterfaceSide.NETWORK,
        national_prefix: str = INDONESIA_TRUNK_PREFIX,
        t309_s: float = T309_S,
    ) -> None:
        self.line = line
        self._emit = emit
        self._on_connected = on_connected
        self._on_cleared = on_cleared
        self.incoming_side = incoming_side
        self.national_prefix = national_prefix
        self.t309_s = t309_s
        self.counters = TrackerCounters()
        self._calls: dict[CallKey, _Tracked] = {}
        self._serial = 0
        self._link_down_at: float | None = None
        self._lock = threading.RLock()

    # -- queries ---------------------------------------------------------------------

    def open_calls(self) -> list[tuple[int, PriCall]]:
        """(serial, snapshot) of every call not yet released, in the order first seen."""
        with self._lock:
            return [
                (tracked.serial, dataclasses.replace(tracked.record))
                for tracked in sorted(self._calls.values(), key=lambda t: t.serial)
            ]

    def call_id(self, call_ref: int, originator: InterfaceSide) -> str | None:
        """The events' call id of the open call (call_ref, originator), if it sends events."""
        with self._lock:
            tracked = self._calls.get((call_ref, originator))
            return tracked.call_id if tracked else None

    # -- input -------------------------------------------------------------------------

    def on_message(
        self, message: Q931Message, direction: Direction | None, at: float
    ) -> list[CallChange]:
        """One Q.931 message sent in ``direction`` at ``at`` (epoch seconds)."""
        with self._lock:
            self.counters.messages += 1
            changes: list[CallChange] = []
            if direction is None:
                self.counters.no_direction += 1
                return changes
            if not math.isfinite(at):
                self.counters.bad_time += 1
                return changes
            reference = message.call_reference
            if message.message_type in RESTARTS:
                self._restart(message, direction, at, changes)
                return changes
            if reference.is_dummy:
                self.counters.dummy_call_reference += 1
                return changes
            if reference.is_global:
                self.counters.global_call_reference += 1
                return changes
            sender = sender_side(direction)
            originator = sender if reference.flag == 0 else other_side(sender)
            key = (reference.value, originator)
            if message.message_type == MessageType.SETUP:
                if reference.flag != 0:
                    self.counters.setup_with_flag += 1
                    return changes
                self._setup(key, message, direction, at, changes)
                return changes
            tracked = self._calls.get(key)
            if tracked is None:
                if message.message_type in NOT_A_CALL:
                    self.counters.unknown_call[message.name] += 1
                    return changes
                tracked = self._join(key, direction, at, changes)
            self._in_call(tracked, key, message, direction, at, changes)
            return changes

    def link_down(self, at: float) -> list[CallChange]:
        """The D-channel link went down (Q.931 5.8.8): calls not yet answered are cleared at
        once; answered ones survive for T309 unless ``link_up`` comes first (``tick``)."""
        with self._lock:
            changes: list[CallChange] = []
            if self._link_down_at is None:
                self._link_down_at = at
            for key, tracked in list(self._calls.items()):
                record = tracked.record
                if record.answered_at is None or record.ended_at is not None:  # not active
                    self.counters.link_cleared += 1
                    self._release(key, tracked, at, None, EndCause.LINE_LOST, changes)
            return changes

    def link_up(self, at: float) -> None:
        """The D-channel link is established again: answered calls go on."""
        with self._lock:
            self._link_down_at = None

    def tick(self, now: float) -> list[CallChange]:
        """Fire T309: answered calls end (at its expiry) once the link has been down that long."""
        with self._lock:
            changes: list[CallChange] = []
            if self._link_down_at is None or now - self._link_down_at < self.t309_s:
                return changes
            expired = self._link_down_at + self.t309_s
            for key, tracked in list(self._calls.items()):
                self.counters.link_cleared += 1
                self._release(key, tracked, expired, None, EndCause.LINE_LOST, changes)
            return changes

    def release_all(self, at: float, cause: EndCause = EndCause.LINE_LOST) -> list[CallChange]:
        """End every open call (the span or its source is lost, the gateway stops)."""
        with self._lock:
            changes: list[CallChange] = []
            for key, tracked in list(self._calls.items()):
                self._release(key, tracked, at, None, cause, changes)
            return changes

    # -- call set-up ---------------------------------------------------------------------

    def _new(self, key: CallKey, setup_seen: bool) -> _Tracked:
        self._serial += 1
        self.counters.calls += 1
        tracked = _Tracked(
            serial=self._serial,
            record=PriCall(call_ref=key[0], originator=key[1]),
            call_id=None,
            setup_seen=setup_seen,
        )
        self._calls[key] = tracked
        return tracked

    def _setup(
        self,
        key: CallKey,
        message: Q931Message,
        direction: Direction,
        at: float,
        changes: list[CallChange],
    ) -> None:
        earlier = self._calls.get(key)
        if earlier is not None:
            if (
                earlier.setup_seen
                and earlier.record.ended_at is None
                and not _is_new_setup(earlier, message)
            ):
                return  # the same SETUP again (a layer 3 repeat after T303): not a new call
            self.counters.superseded += 1
            logger.info("%s: CRV %d reused before its release was seen", self.line, key[0])
            self._release(key, earlier, at, None, EndCause.UNKNOWN, changes)
        tracked = self._new(key, setup_seen=True)
        record = tracked.record
        record.offered_at = at
        number = message.calling_party_number
        record.caller_presentation = caller_presentation(number)
        if number is not None:
            record.caller = number.digits or None
            record.caller_type_of_number = number.type_of_number
            record.caller_numbering_plan = number.numbering_plan
            record.caller_screening = number.screening
        called = message.called_party_number
        if called is not None:
            record.called = called.digits
        channel = self._channel(message.channel_identification)
        if channel is not None:
            identification = message.channel_identification
            assert identification is not None
            if identification.exclusive:
                record.b_channel = channel
            else:
                tracked.preferred_channel = channel
        if key[1] is self.incoming_side:
            tracked.call_id = uuid7_str()
            self._offer(tracked, at)
        changes.append(self._change(ChangeKind.OFFERED, at, tracked, direction))

    def _join(
        self, key: CallKey, direction: Direction, at: float, changes: list[CallChange]
    ) -> _Tracked:
        self.counters.joined_late += 1
        tracked = self._new(key, setup_seen=False)
        changes.append(self._change(ChangeKind.JOINED, at, tracked, direction))
        return tracked

    # -- a known call -------------------------------------------------------------------

    def _in_call(
        self,
        tracked: _Tracked,
        key: CallKey,
        message: Q931Message,
        direction: Direction,
        at: float,
        changes: list[CallChange],
    ) -> None:
        record = tracked.record
        sender = sender_side(direction)
        from_called_side = sender is not record.originator
        kind = message.message_type
        if kind in SETUP_PHASE:
            tracked.setup_phase_seen = True
        if from_called_side and kind in CONFIRMING and record.answered_at is None:
            self._confirm_channel(tracked, message, direction, at, changes)
        if kind == MessageType.INFORMATION and not from_called_side:
            called = message.called_party_number
            if called is not None and called.digits and record.answered_at is None:
                record.called = (record.called or "") + called.digits
                changes.append(self._change(ChangeKind.DIGITS, at, tracked, direction))
        elif kind == MessageType.ALERTING:
            if record.alerted_at is None and record.ended_at is None:
                record.alerted_at = at
                changes.append(self._change(ChangeKind.ALERTED, at, tracked, direction))
        elif kind in (MessageType.CONNECT, MessageType.CONNECT_ACKNOWLEDGE):
            self._answered(tracked, message, direction, at, changes)
        elif kind in CLEARING:
            self._clearing(key, tracked, message, direction, at, changes)
        elif kind == MessageType.STATUS:
            state = message.element(CallState)
            if state is not None and state.state == CallStateValue.NULL:
                # The sender has no such call (Q.931 5.8.11): it is over for both sides.
                self.counters.status_null_cleared += 1
                self._release(key, tracked, at, sender, EndCause.UNKNOWN, changes, direction)

    def _confirm_channel(
        self,
        tracked: _Tracked,
        message: Q931Message,
        direction: Direction,
        at: float,
        changes: list[CallChange],
    ) -> None:
        channel = self._channel(message.channel_identification)
        if channel is None or (tracked.channel_confirmed and channel == tracked.record.b_channel):
            return
        tracked.channel_confirmed = True
        if channel != tracked.record.b_channel:
            tracked.record.b_channel = channel
            changes.append(self._change(ChangeKind.CHANNEL, at, tracked, direction))

    def _answered(
        self,
        tracked: _Tracked,
        message: Q931Message,
        direction: Direction,
        at: float,
        changes: list[CallChange],
    ) -> None:
        record = tracked.record
        if record.answered_at is not None or record.ended_at is not None:
            return
        if message.message_type == MessageType.CONNECT_ACKNOWLEDGE and tracked.setup_seen:
            return  # the CONNECT it acknowledges was lost to the tap: only a joined call uses it
        if tracked.record.b_channel is None and tracked.preferred_channel is not None:
            # A CONNECT without a channel: the called side took the one offered.
            tracked.record.b_channel = tracked.preferred_channel
        record.answered_at = at
        record.outcome = CallOutcome.ANSWERED
        changes.append(self._change(ChangeKind.ANSWERED, at, tracked, direction))
        if tracked.call_id is None:
            return
        offered = record.offered_at if record.offered_at is not None else at
        self._emit_event(
            CallAnswered(
                call_id=tracked.call_id,
                line=self.line,
                ring_count=RING_COUNT,
                ring_time_ms=_ms(at - offered),
                b_channel=record.b_channel,
                called=record.called,
                observed_at=_moment(at),
            )
        )
        if record.b_channel is not None and self._on_connected is not None:
            tracked.connected = True
            try:
                self._on_connected(tracked.call_id, record.b_channel)
            except Exception:
                logger.exception("%s: B-channel start hook failed", self.line)

    # -- clearing ------------------------------------------------------------------------

    def _clearing(
        self,
        key: CallKey,
        tracked: _Tracked,
        message: Q931Message,
        direction: Direction,
        at: float,
        changes: list[CallChange],
    ) -> None:
        record = tracked.record
        sender = sender_side(direction)
        cause = message.cause
        if record.cause is None and cause is not None:
            record.cause, record.cause_location = cause.value, cause.location
        if record.ended_at is None:
            record.ended_at = at
            record.cleared_by = sender
            record.outcome = self._outcome(tracked, sender)
            changes.append(self._change(ChangeKind.CLEARING, at, tracked, direction))
            self._end_events(tracked, at, None)
        if message.message_type == MessageType.RELEASE_COMPLETE:
            self._release(key, tracked, at, sender, EndCause.UNKNOWN, changes, direction)

    def _outcome(self, tracked: _Tracked, cleared_by: InterfaceSide | None) -> CallOutcome | None:
        record = tracked.record
        if record.answered_at is not None:
            return CallOutcome.ANSWERED
        if cleared_by is None or not (tracked.setup_seen or tracked.setup_phase_seen):
            return None  # lost, not cleared; or joined late: it may have been answered unseen
        if cleared_by is record.originator:
            return CallOutcome.ABANDONED
        return CallOutcome.REJECTED

    def _release(
        self,
        key: CallKey,
        tracked: _Tracked,
        at: float,
        cleared_by: InterfaceSide | None,
        cause: EndCause,
        changes: list[CallChange],
        direction: Direction | None = None,
    ) -> None:
        """The call is over: end it if no clearing message did, free its key."""
        record = tracked.record
        if record.ended_at is None:  # no clearing message: answered, or no outcome to tell
            record.ended_at = at
            record.cleared_by = cleared_by
            record.outcome = self._outcome(tracked, None)
            self._end_events(tracked, at, cause)
        record.released_at = at
        del self._calls[key]
        changes.append(self._change(ChangeKind.RELEASED, at, tracked, direction))

    def _end_events(self, tracked: _Tracked, at: float, cause: EndCause | None) -> None:
        """The call's end event (once), then the B-channel stop hook."""
        if tracked.call_id is None or tracked.end_emitted:
            return
        tracked.end_emitted = True
        record = tracked.record
        if cause is None:
            cause = end_cause(record.cause, record.cleared_by, record.originator)
        offered = record.offered_at if record.offered_at is not None else at
        common: dict[str, Any] = {
            "call_id": tracked.call_id,
            "line": self.line,
            "cause": cause,
            "b_channel": record.b_channel,
            "called": record.called,
            "q850_cause": record.cause,
            "q850_location": record.cause_location,
            "cleared_by": record.cleared_by,
            "outcome": record.outcome,
            "observed_at": _moment(at),
        }
        if record.answered_at is not None:
            event: Event = CallEnded(duration_ms=_ms(at - record.answered_at), **common)
        else:
            event = CallAbandoned(ring_count=RING_COUNT, ring_time_ms=_ms(at - offered), **common)
        self._emit_event(event)
        if tracked.connected and self._on_cleared is not None and record.b_channel is not None:
            tracked.connected = False
            try:
                self._on_cleared(tracked.call_id, record.b_channel)
            except Exception:
                logger.exception("%s: B-channel stop hook failed", self.line)

    def _restart(
        self, message: Q931Message, direction: Direction, at: float, changes: list[CallChange]
    ) -> None:
        """RESTART (or its ACK, when the tap missed the RESTART): the named channels, or
        every channel of the interface, are idle again; their calls are over."""
        if message.message_type == MessageType.RESTART:
            self.counters.restarts += 1
        indicator = message.restart_indicator
        identification = message.channel_identification
        if indicator is not None:
            restart_class = indicator.restart_class
        else:  # mandatory, yet missing: a channel named means those channels
            named = identification is not None
            restart_class = (
                RestartClass.INDICATED_CHANNELS if named else RestartClass.ALL_INTERFACES
            )
        channels: set[int] | None = None  # None: all
        if restart_class == RestartClass.INDICATED_CHANNELS:
            if identification is None:
                return
            channels = set(identification.channels)
        sender = sender_side(direction)
        if message.message_type == MessageType.RESTART_ACKNOWLEDGE:
            sender = other_side(sender)  # the restart came from the other side
        for key, tracked in list(self._calls.items()):
            channel = tracked.record.b_channel
            if channel is None:
                channel = tracked.preferred_channel
            if channels is None or channel in channels:
                self.counters.restart_cleared += 1
                self._release(key, tracked, at, sender, EndCause.LINE_LOST, changes, direction)

    # -- events ----------------------------------------------------------------------------

    def _offer(self, tracked: _Tracked, at: float) -> None:
        record = tracked.record
        presentation = record.caller_presentation or Presentation.UNAVAILABLE
        number = None
        if presentation is Presentation.ALLOWED:
            number = self._dialable(record.caller, record.caller_type_of_number)
            if number is None:
                presentation = Presentation.UNAVAILABLE
        assert tracked.call_id is not None
        logger.info(
            "%s: call %s offered from %s (%s), CRV %d",
            self.line,
            tracked.call_id,
            mask_number(number),
            presentation.value,
            record.call_ref,
        )
        self._emit_event(
            CallOffered(
                call_id=tracked.call_id,
                line=self.line,
                number=number,
                presentation=presentation,
                ring_count=RING_COUNT,
                b_channel=record.b_channel,
                called=record.called,
                observed_at=_moment(at),
            )
        )

    def _dialable(self, digits: str | None, type_of_number: int | None) -> str | None:
        """The caller's number as a person dials it back: +E.164 for an international
        number, the trunk prefix before a national one, as carried otherwise."""
        if not digits:
            return None
        if type_of_number == TypeOfNumber.INTERNATIONAL:
            return "+" + digits
        if type_of_number == TypeOfNumber.NATIONAL:
            return self.national_prefix + digits
        return digits

    def _emit_event(self, event: Event) -> None:
        try:
            self._emit(event)
        except Exception:
            logger.exception("%s: emitting %s failed", self.line, event.TYPE.value)

    def _channel(self, identification: ChannelIdentification | None) -> int | None:
        if identification is None or identification.d_channel:
            return None
        channel = identification.channel
        if channel is None:
            return None
        if channel not in E1_CHANNELS or channel == 16:
            self.counters.channel_out_of_range += 1
            return None
        return channel

    @staticmethod
    def _change(
        kind: ChangeKind, at: float, tracked: _Tracked, direction: Direction | None
    ) -> CallChange:
        return CallChange(
            kind,
            at,
            tracked.serial,
            dataclasses.replace(tracked.record),
            tracked.call_id,
            direction,
        )


def _is_new_setup(earlier: _Tracked, message: Q931Message) -> bool:
    """Whether a SETUP on a key in set-up is a new call rather than the same SETUP sent again
    (Q.931 T303: a SETUP without an answer is repeated once, unchanged)."""
    if earlier.setup_phase_seen or earlier.channel_confirmed or earlier.record.answered_at:
        return True  # the called side answered the first: it is not waiting for a repeat
    number = message.calling_party_number
    digits = number.digits if number is not None and number.digits else None
    return digits != earlier.record.caller


def _moment(at: float) -> datetime:
    """``at`` as an event's time; the wall clock for a time no datetime can hold."""
    try:
        return datetime.fromtimestamp(at, UTC)
    except (ValueError, OverflowError, OSError):
        logger.warning("message time %r cannot be an event time: using the clock", at)
        return utc_now()


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
