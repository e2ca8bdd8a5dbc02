"""What the PRI call tracker reports, and how Q.931 values map onto the gateway contract.

- ``PriCall``: one call, exactly the fields of ``edge112 e1 decode --calls --json``.
- ``CallChange`` / ``ChangeKind``: what happened to a call in one step.
- ``TrackerCounters``: every message the tracker did not use, by reason.
- ``caller_presentation``: the Calling party number's presentation indicator (Q.931
  4.5.10) as the contract's ``presentation``; ``end_cause``: a Q.850 cause and who
  cleared as the contract's ``cause``; ``sender_side``/``other_side``: directions as
  sides of the interface.

The tracker itself is ``calls.py``, which re-exports these names.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from drivers.e1.lapd import Direction
from drivers.e1.q931_codes import CauseValue
from drivers.e1.q931_ie import CallingPartyNumber
from gateway.events import CallOutcome, EndCause, InterfaceSide, Presentation

# Q.850 causes -> the contract's EndCause (the rest: the normal class by who cleared).
BUSY_CAUSES = frozenset(
    {
        CauseValue.USER_BUSY,  # 17
        CauseValue.NO_CIRCUIT_AVAILABLE,  # 34: no room for the call, as good as busy
        CauseValue.SWITCHING_EQUIPMENT_CONGESTION,  # 42
        CauseValue.REQUESTED_CHANNEL_NOT_AVAILABLE,  # 44
        CauseValue.RESOURCE_UNAVAILABLE,  # 47
    }
)
NO_ANSWER_CAUSES = frozenset({CauseValue.NO_USER_RESPONDING, CauseValue.NO_ANSWER})  # 18, 19
FAILURE_CAUSES = frozenset(
    {
        CauseValue.DESTINATION_OUT_OF_ORDER,  # 27
        CauseValue.NETWORK_OUT_OF_ORDER,  # 38
        CauseValue.TEMPORARY_FAILURE,  # 41
    }
)
NORMAL_CLASS_TOP = 31  # causes 1-31: the normal event class (16 normal clearing, 21 rejected)


class ChangeKind(StrEnum):
    """What happened to a call in one ``CallChange``."""

    OFFERED = "offered"  # SETUP
    JOINED = "joined"  # first seen without its SETUP: the tap started during the call
    CHANNEL = "channel"  # the called side named (or changed) the B-channel
    DIGITS = "digits"  # more called digits (overlap: INFORMATION)
    ALERTED = "alerted"
    ANSWERED = "answered"  # CONNECT
    CLEARING = "clearing"  # the first DISCONNECT, RELEASE or RELEASE COMPLETE
    RELEASED = "released"  # over: the call reference is free (or the call was lost)


@dataclass
class PriCall:
    """One call as ``edge112 e1 decode --calls --json`` prints it; times are epoch seconds."""

    call_ref: int
    originator: InterfaceSide  # who allocated the call reference
    b_channel: int | None = None
    caller: str | None = None  # the Calling party number's digits as carried
    caller_presentation: Presentation | None = None  # null without the IE
    caller_type_of_number: int | None = None
    caller_numbering_plan: int | None = None
    caller_screening: int | None = None
    called: str | None = None  # every called digit, overlap included; null without the IE
    offered_at: float | None = None  # SETUP (null: the tap joined during the call)
    alerted_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None  # the first DISCONNECT, RELEASE or RELEASE COMPLETE
    released_at: float | None = None  # RELEASE COMPLETE
    cleared_by: InterfaceSide | None = None
    cause: int | None = None  # Q.850, from the first clearing message carrying a Cause
    cause_location: int | None = None
    outcome: CallOutcome | None = None  # null while open, or when the signalling cannot say

    def to_json_dict(self) -> dict[str, Any]:
        """The record as JSON-ready values (times rounded to microseconds)."""
        out = dataclasses.asdict(self)
        for name in ("offered_at", "alerted_at", "answered_at", "ended_at", "released_at"):
            if out[name] is not None:
                out[name] = round(out[name], 6)
        return out


@dataclass(frozen=True)
class CallChange:
    """A call changed: ``call`` is a snapshot of its record after the change.

    ``serial`` numbers the tracker's calls in the order it first saw them;
    ``call_id`` is the id of its events (None for calls that send none).
    """

    kind: ChangeKind
    at: float
    serial: int
    call: PriCall
    call_id: str | None
    direction: Direction | None  # the message's, None for a change without one (RESTART aside)


@dataclass
class TrackerCounters:
    """What the tracker did with the messages it was given; nothing is dropped silently."""

    messages: int = 0
    calls: int = 0  # calls seen (SETUP or joined late)
    joined_late: int = 0  # calls first seen without their SETUP
    no_direction: int = 0  # dropped: a message without a direction (a UI frame, unknown sender)
    bad_time: int = 0  # dropped: a time that is not a finite number
    dummy_call_reference: int = 0  # dropped: not about a call (supplementary services)
    global_call_reference: int = 0  # RESTART, STATUS... on CRV 0: never a call
    unknown_call: Counter[str] = field(default_factory=Counter)  # dropped, by message name
    setup_with_flag: int = 0  # dropped: a SETUP sent to the originator (flag 1) is malformed
    superseded: int = 0  # a SETUP on a key still open: the tap missed the earlier end
    restarts: int = 0
    restart_cleared: int = 0  # calls ended by RESTART
    status_null_cleared: int = 0  # calls ended by a STATUS reporting the Null state
    link_cleared: int = 0  # calls ended by a D-channel failure
    channel_out_of_range: int = 0  # a Channel identification naming no E1 B-channel


def sender_side(direction: Direction) -> InterfaceSide:
    return InterfaceSide.NETWORK if direction is Direction.NETWORK_TO_USER else InterfaceSide.USER


def other_side(side: InterfaceSide) -> InterfaceSide:
    return InterfaceSide.USER if side is InterfaceSide.NETWORK else InterfaceSide.NETWORK


def caller_presentation(number: CallingPartyNumber | None) -> Presentation | None:
    """Q.931 4.5.10: octet 3a absent means presentation allowed; 2 is 'not available due to
    interworking'; 3 is reserved (read as unavailable). None without the element."""
    if number is None:
        return None
    match number.presentation:
        case None | 0:
            return Presentation.ALLOWED
        case 1:
            return Presentation.RESTRICTED
        case _:
            return Presentation.UNAVAILABLE


def end_cause(
    cause: int | None, cleared_by: InterfaceSide | None, caller: InterfaceSide
) -> EndCause:
    """The contract's end cause from the Q.850 cause and who cleared.

    Busy-like causes (17, 34, 42, 44, 47) are BUSY, 18/19 NO_ANSWER, failures
    (27, 38, 41) LINE_LOST; the normal class (1-31: 16 normal clearing, 21
    call rejected, ...) or no cause at all is REMOTE_HANGUP when the caller's
    side cleared and LOCAL_HANGUP when the centre's side did; anything else
    (protocol errors, timer expiry) UNKNOWN.
    """
    if cause in BUSY_CAUSES:
        return EndCause.BUSY
    if cause in NO_ANSWER_CAUSES:
        return EndCause.NO_ANSWER
    if cause in FAILURE_CAUSES:
        return EndCause.LINE_LOST
    if cleared_by is None:
        return EndCause.UNKNOWN
    if cause is None or cause <= NORMAL_CLASS_TOP:
        return EndCause.REMOTE_HANGUP if cleared_by is caller else EndCause.LOCAL_HANGUP
    return EndCause.UNKNOWN
