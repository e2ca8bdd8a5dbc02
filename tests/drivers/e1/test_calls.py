"""PRI call tracking: scripted Q.931 sequences of both directions, built with the encoder and
decoded again, through ``PriCallTracker``; records, changes, gateway events and B-channel hooks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.e1.calls import (
    ChangeKind,
    PriCall,
    PriCallTracker,
    caller_presentation,
    end_cause,
)
from drivers.e1.lapd import Direction
from drivers.e1.q931 import CallReference, MessageType, Q931Message, decode_message
from drivers.e1.q931_codes import CallStateValue, RestartClass
from drivers.e1.q931_ie import (
    BearerCapability,
    CalledPartyNumber,
    CallingPartyNumber,
    CallState,
    Cause,
    ChannelIdentification,
    InformationElement,
    RestartIndicator,
    SendingComplete,
)
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
    decode,
    encode,
)
from tests.conftest import validate_event

N2U = Direction.NETWORK_TO_USER
U2N = Direction.USER_TO_NETWORK
NETWORK, USER = InterfaceSide.NETWORK, InterfaceSide.USER
T0 = 1_764_300_000.0  # 2025-11-28, epoch seconds


def setup_message(
    crv: int,
    *,
    caller: CallingPartyNumber | None = None,
    called: str | None = "112",
    channel: int | None = 1,
    exclusive: bool = False,
    complete: bool = True,
) -> Q931Message:
    elements: list[InformationElement] = [BearerCapability()]
    if channel is not None:
        elements.append(ChannelIdentification((channel,), exclusive))
    if caller is not None:
        elements.append(caller)
    if called is not None:
        elements.append(CalledPartyNumber(called, 0, 1))
    if complete:
        elements.append(SendingComplete())
    return Q931Message(MessageType.SETUP, CallReference(crv), tuple(elements))


def reply(kind: MessageType, crv: int, *elements: InformationElement, flag: int = 1) -> Q931Message:
    return Q931Message(kind, CallReference(crv, flag), tuple(elements))


MOBILE = CallingPartyNumber("81311112222", 2, 1, 0, 3)  # national, ISDN plan, allowed, network


class Tap:
    """A tracker and everything it reports; messages go through the wire format first."""

    def __init__(self, **options: Any) -> None:
        self.events: list[Event] = []
        self.hooks: list[tuple[str, str, int]] = []
        self.tracker = PriCallTracker(
            "span0",
            self._emit,
            on_connected=lambda call_id, channel: self.hooks.append(
                ("connected", call_id, channel)
            ),
            on_cleared=lambda call_id, channel: self.hooks.append(("cleared", call_id, channel)),
            **options,
        )
        self.changes: list[Any] = []
        self.released: list[PriCall] = []
        self.now = T0

    def _emit(self, event: Event) -> None:
        self.events.append(event)
        self.hooks.append(("event", event.TYPE.value, 0))

    def send(self, direction: Direction, message: Q931Message, after: float = 0.5) -> list[Any]:
        self.now += after
        decoded = decode_message(message.to_bytes())  # as a tap sees it
        changes = self.tracker.on_message(decoded, direction, self.now)
        self.changes += changes
        self.released += [c.call for c in changes if c.kind is ChangeKind.RELEASED]
        return changes

    def kinds(self) -> list[str]:
        return [change.kind.value for change in self.changes]

    def event_types(self) -> list[str]:
        return [event.TYPE.value for event in self.events]


def check_against_contract(events: list[Event]) -> None:
    for seq, event in enumerate(events, start=1):
        payload = encode(event, seq=seq, gateway_id="bontang-01", region="64.74")
        validate_event(json.loads(payload))
        assert decode(payload).data() == event.data()


# -- answered, abandoned, refused ----------------------------------------------------------


def test_an_answered_call_is_offered_answered_and_ended_with_the_confirmed_channel() -> None:
    tap = Tap()
    tap.send(N2U, setup_message(5, caller=MOBILE, channel=3))  # channel 3 only preferred
    tap.send(U2N, reply(MessageType.CALL_PROCEEDING, 5, ChannelIdentification((7,), True)))
    tap.send(U2N, reply(MessageType.ALERTING, 5), after=0.2)
    tap.send(U2N, reply(MessageType.CONNECT, 5), after=4.0)
    tap.send(N2U, reply(MessageType.CONNECT_ACKNOWLEDGE, 5, flag=0))
    tap.send(N2U, reply(MessageType.DISCONNECT, 5, Cause(16, 2), flag=0), after=60.0)
    tap.send(U2N, reply(MessageType.RELEASE, 5))
    tap.send(N2U, reply(MessageType.RELEASE_COMPLETE, 5, flag=0))

    assert tap.kinds() == ["offered", "channel", "alerted", "answered", "clearing", "released"]
    [call] = tap.released
    assert call == PriCall(
        call_ref=5,
        originator=NETWORK,
        b_channel=7,
        caller="81311112222",
        caller_presentation=Presentation.ALLOWED,
        caller_type_of_number=2,
        caller_numbering_plan=1,
        caller_screening=3,
        called="112",
        offered_at=T0 + 0.5,
        alerted_at=T0 + 1.2,
        answered_at=T0 + 5.2,
        ended_at=T0 + 65.7,
        released_at=T0 + 66.7,
        cleared_by=NETWORK,
        cause=16,
        cause_location=2,
        outcome=CallOutcome.ANSWERED,
    )
    offered, answered, ended = tap.events
    assert isinstance(offered, CallOffered)
    assert (offered.line, offered.number, offered.presentation) == (
        "span0",
        "081311112222",  # national: the trunk prefix makes it dialable
        Presentation.ALLOWED,
    )
    assert offered.b_channel is None  # preferred only, not yet confirmed
    assert offered.called == "112"
    assert isinstance(answered, CallAnswered)
    assert (answered.ring_time_ms, answered.b_channel) == (4700, 7)
    assert isinstance(ended, CallEnded)
    assert ended.data() == {
        "call_id": offered.call_id,
        "line": "span0",
        "duration_ms": 60500,
        "cause": EndCause.REMOTE_HANGUP,
        "b_channel": 7,
        "called": "112",
        "q850_cause": 16,
        "q850_location": 2,
        "cleared_by": NETWORK,
        "outcome": CallOutcome.ANSWERED,
    }
    assert {event.call_id for event in tap.events} == {offered.call_id}  # type: ignore[attr-defined]
    assert ended.observed_at.timestamp() == pytest.approx(T0 + 65.7)
    # The audio hook starts after call.answered and stops after the end event went out.
    assert tap.hooks == [
        ("event", "call.offered", 0),
        ("event", "call.answered", 0),
        ("connected", offered.call_id, 7),
        ("event", "call.ended", 0),
        ("cleared", offered.call_id, 7),
    ]
    check_against_contract(tap.events)
    assert tap.tracker.open_calls() == []


def test_the_caller_hanging_up_before_an_answer_is_abandoned_terputus() -> None:
    tap = Tap()
    tap.send(N2U, setup_message(6, caller=MOBILE, channel=4, exclusive=True))
    tap.send(U2N, reply(MessageType.CALL_PROCEEDING, 6, ChannelIdentification((4,), True)))
    tap.send(U2N, reply(MessageType.ALERTING, 6))
    tap.send(N2U, reply(MessageType.DISCONNECT, 6, Cause(16, 4), flag=0), after=9.0)
    tap.send(U2N, reply(MessageType.RELEASE, 6))
    tap.send(N2U, reply(MessageType.RELEASE_COMPLETE, 6, flag=0))

    [call] = tap.released
    assert (call.outcome, call.cleared_by, call.cause, call.b_channel) == (
        CallOutcome.ABANDONED,
        NETWORK,
        16,
        4,
    )
    assert call.answered_at is None
    offered, abandoned = tap.events
    assert isinstance(offered, CallOffered) and offered.b_channel == 4  # exclusive: known at once
    assert isinstance(abandoned, CallAbandoned)
    assert abandoned.data() == {
        "call_id": offered.call_id,
        "line": "span0",
        "ring_count": 1,
        "ring_time_ms": 10000,
        "cause": EndCause.REMOTE_HANGUP,
        "category": "terputus",
        "b_channel": 4,
        "called": "112",
        "q850_cause": 16,
        "q850_location": 4,
        "cleared_by": NETWORK,
        "outcome": CallOutcome.ABANDONED,
    }
    assert [hook[0] for hook in tap.hooks] == ["event", "event"]  # never connected: no audio
    check_against_contract(tap.events)


@pytest.mark.parametrize(
    ("cause", "end"),
    [
        (17, EndCause.BUSY),  # user busy
        (21, EndCause.LOCAL_HANGUP),  # call rejected: the centre's own doing
        (34, EndCause.BUSY),  # no circuit/channel available
        (111, EndCause.UNKNOWN),  # protocol error
    ],
)
def test_a_call_the_centre_refuses_is_rejected(cause: int, end: EndCause) -> None:
    tap = Tap()
    tap.send(N2U, setup_message(7, caller=MOBILE))
    tap.send(U2N, reply(MessageType.RELEASE_COMPLETE, 7, Cause(cause, 0)))
    [call] = tap.released
    assert (call.outcome, call.cleared_by, call.cause, call.cause_location) == (
        CallOutcome.REJECTED,
        USER,
        cause,
        0,
    )
    assert call.ended_at == call.released_at == T0 + 1.0
    assert call.b_channel is None  # offered as preferred, never confirmed
    abandoned = tap.events[-1]
    assert isinstance(abandoned, CallAbandoned)
    assert (abandoned.cause, abandoned.outcome, abandoned.q850_cause) == (
        end,
        CallOutcome.REJECTED,
        cause,
    )
    check_against_contract(tap.events)


def test_a_disconnect_from_the_centre_after_alerting_is_a_rejection_too() -> None:
    tap = Tap()
    tap.send(N2U, setup_message(8, caller=MOBILE))
    tap.send(U2N, reply(MessageType.ALERTING, 8, ChannelIdentification((2,), True)))
    tap.send(U2N, reply(MessageType.DISCONNECT, 8, Cause(21, 0)))
    tap.send(N2U, reply(MessageType.RELEASE, 8, Cause(16, 2), flag=0))  # later cause: ignored
    tap.send(U2N, reply(MessageType.RELEASE_COMPLETE, 8))
    [call] = tap.released
    assert (call.outcome, call.cleared_by, call.cause, call.b_channel) == (
        CallOutcome.REJECTED,
        USER,
        21,
        2,
    )
    assert tap.event_types() == ["call.offered", "call.abandoned"]


def test_the_cause_comes_from_the_first_clearing_message_that_carries_one() -> None:
    tap = Tap()
    tap.send(N2U, setup_message(9, caller=MOBILE))
    tap.send(N2U, reply(MessageType.RELEASE, 9, flag=0))  # no cause (not per the rules)
    tap.send(U2N, reply(MessageType.RELEASE_COMPLETE, 9, Cause(102, 0)))
    [call] = tap.released
    assert (call.cleared_by, call.cause, call.ended_at, call.released_at) == (
        NETWORK,
        102,
        T0 + 1.0,
        T0 + 1.5,
    )
    abandoned = tap.events[-1]
    assert isinstance(abandoned, CallAbandoned)
    assert abandoned.q850_cause is None  # the event went out at the first clearing message
    assert abandoned.cause is EndCause.REMOTE_HANGUP


# -- the caller's identity -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "record", "event"),
    [
        (
            CallingPartyNumber("81311112222", 2, 1, 1, 3),  # withheld (CLIR)
            ("81311112222", Presentation.RESTRICTED),
            (None, Presentation.RESTRICTED),
        ),
        (
            CallingPartyNumber("", 0, 0, 2, 3),  # not available due to interworking
            (None, Presentation.UNAVAILABLE),
            (None, Presentation.UNAVAILABLE),
        ),
        (None, (None, None), (None, Presentation.UNAVAILABLE)),  # no Calling party number
        (
            CallingPartyNumber("6281311112222", 1, 1),  # octet 3a absent: allowed (Q.931)
            ("6281311112222", Presentation.ALLOWED),
            ("+6281311112222", Presentation.ALLOWED),
        ),
        (
            CallingPartyNumber("", 0, 1, 0, 0),  # allowed but empty
            (None, Presentation.ALLOWED),
            (None, Presentation.UNAVAILABLE),
        ),
        (
            CallingPartyNumber("5551234", 4, 1, 0, 3),  # subscriber number: as carried
            ("5551234", Presentation.ALLOWED),
            ("5551234", Presentation.ALLOWED),
        ),
    ],
)
def test_the_caller_as_the_calling_party_number_presents_it(
    number: CallingPartyNumber | None,
    record: tuple[str | None, Presentation | None],
    event: tuple[str | None, Presentation],
) -> None:
    tap = Tap()
    [change] = tap.send(N2U, setup_message(10, caller=number))
    assert (change.call.caller, change.call.caller_presentation) == record
    [offered] = tap.events
    assert isinstance(offered, CallOffered)
    assert (offered.number, offered.presentation) == event
    check_against_contract(tap.events)


def test_presentation_indicator_values() -> None:
    assert caller_presentation(None) is None
    assert caller_presentation(CallingPartyNumber("1")) is Presentation.ALLOWED
    assert caller_presentation(CallingPartyNumber("1", presentation=3)) is Presentation.UNAVAILABLE


# -- overlap receiving ----------------------------------------------------------------------


def test_overlap_receiving_accumulates_the_called_digits_from_information() -> None:
    tap = Tap()
    tap.send(N2U, setup_message(11, caller=MOBILE, called="1", complete=False, channel=None))
    tap.send(U2N, reply(MessageType.SETUP_ACKNOWLEDGE, 11, ChannelIdentification((12,), True)))
    tap.send(N2U, reply(MessageType.INFORMATION, 11, CalledPartyNumber("1", 0, 1), flag=0))
    tap.send(
        N2U,
        reply(MessageType.INFORMATION, 11, CalledPartyNumber("2", 0, 1), SendingComplete(), flag=0),
    )
    tap.send(U2N, reply(MessageType.CALL_PROCEEDING, 11))
    tap.send(U2N, reply(MessageType.CONNECT, 11))
    tap.send(U2N, reply(MessageType.DISCONNECT, 11, Cause(16, 0)))
    tap.send(N2U, reply(MessageType.RELEASE, 11, flag=0))
    tap.send(U2N, reply(MessageType.RELEASE_COMPLETE, 11))
    assert tap.kinds() == [
        "offered",
        "channel",
        "digits",
        "digits",
        "answered",
        "clearing",
        "released",
    ]
    [call] = tap.released
    assert (call.called, call.b_channel, call.cleared_by) == ("112", 12, USER)
    offered, answered, ended = tap.events
    assert isinstance(offered, CallOffered) and offered.called == "1"
    assert isinstance(answered, CallAnswered) and answered.called == "112"
    assert isinstance(ended, CallEnded)
    assert (ended.called, ended.cause) == ("112", EndCause.LOCAL_HANGUP)  # the centre hung up
    check_against_contract(tap.events)


# -- call references ---------------------------------------------------------------------------


def test_glare_the_same_crv_from_both_sides_is_two_calls() -> None:
    tap = Tap()
    tap.send(N2U, setup_message(9, caller=MOBILE, channel=1), after=0.0)
    tap.send(U2N, setup_message(9, caller=CallingPartyNumber("112", 4, 1), called="0215551234"))
    # The user answers the network's call (flag 1: to the originator) ...
    tap.send(U2N, reply(MessageType.CALL_PROCEEDING, 9, ChannelIdentification((1,), True)))
    # ... and the network refuses the user's (no circuit: both wanted channel 1).
    tap.send(N2U, reply(MessageType.RELEASE_COMPLETE, 9, Cause(34, 2)))
    tap.send(U2N, reply(MessageType.CONNECT, 9))
    [refused] = tap.released
    assert (refused.originator, refused.outcome, refused.cleared_by, refused.cause) == (
        USER,
        CallOutcome.REJECTED,
        NETWORK,
        34,
    )
    [(_, incoming)] = tap.tracker.open_calls()
    assert (incoming.originator, incoming.b_channel, incoming.outcome) == (
        NETWORK,
        1,
        CallOutcome.ANSWERED,
    )
    # Only the call coming in to the centre is a call event; the centre's own call is not.
    assert tap.event_types() == ["call.offered", "call.answered"]
    assert tap.tracker.counters.calls == 2


def test_the_user_side_as_the_incoming_side_reports_the_other_calls() -> None:
    tap = Tap(incoming_side=USER)
    tap.send(N2U, setup_message(3, caller=MOBILE))
    tap.send(U2N, setup_message(4, caller=CallingPartyNumber("0215551234", 2, 1, 0, 1)))
    [offered] = tap.events
    assert isinstance(offered, CallOffered) and offered.number == "00215551234"


def test_a_crv_is_a_new_call_after_release_complete() -> None:
    tap = Tap()
    for _ in range(2):
        tap.send(N2U, setup_message(12, caller=MOBILE))
        tap.send(U2N, reply(MessageType.RELEASE_COMPLETE, 12, Cause(17, 0)))
    first, second = tap.released
    assert first.offered_at != second.offered_at
    offered = [event for event in tap.events if isinstance(event, CallOffered)]
    assert len({event.call_id for event in offered}) == 2
    assert [c.serial for c in tap.changes if c.kind is ChangeKind.OFFERED] == [1, 2]
    assert tap.tracker.counters.superseded == 0


def test_a_setup_on_a_crv_still_open_closes_the_call_whose_end_the_tap_missed() -> None:
    tap = Tap()
    tap.send(N2U, setup_message(13, caller=MOBILE, channel=2))
    tap.send(U2N, reply(MessageType.CONNECT, 13, ChannelIdentification((2,), True)))
    # DISCONNECT, RELEASE, RELEASE COMPLETE lost (the tap's source hiccupped)
    tap.send(N2U, setup_message(13, caller=CallingPartyNumber("81399998888", 2, 1, 0, 3)))
    assert tap.tracker.counters.superseded == 1
    [lost] = tap.released
    assert (lost.outcome, lost.cleared_by, lost.released_at) == (
        CallOutcome.ANSWERED,
        None,
        T0 + 1.5,
    )
    assert tap.event_types() == ["call.offered", "call.answered", "call.ended", "call.offered"]
    ended = tap.events[2]
    assert isinstance(ended, CallEnded) and ended.cause is EndCause.UNKNOWN
    assert "cleared_by" not in ended.data()  # nobody was seen clearing it
    assert [hook[0] for hook in tap.hooks].count("cleared") == 1
    check_against_contract(tap.events)


def test_a_setup_repeated_on_t303_is_the_same_call() -> None:
    tap = Tap()
    tap.send(N2U, setup_message(14, caller=MOBILE))
    tap.send(N2U, setup_message(14, caller=MOBILE), after=4.0)  # no answer within T303
    tap.send(U2N, reply(MessageType.ALERTING, 14, ChannelIdentification((1,), True)))
    assert tap.event_types() == ["call.offered"]
    assert tap.tracker.counters.calls == 1
    [(_, call)] = tap.tracker.open_calls()
    assert call.offered_at == T0 + 0.5


def test_global_and_dummy_call_references_are_never_calls() -> None:
    tap = Tap()
    tap.send(N2U, reply(MessageType.STATUS, 0, Cause(30, 0), CallState(0), flag=0))
    tap.send(U2N, Q931Message(MessageType.FACILITY, CallReference(length=0)))
    tap.send(U2N, reply(MessageType.RELEASE_COMPLETE, 77, Cause(81, 0)))  # unknown CRV
    assert tap.changes == [] and tap.events == []
    counters = tap.tracker.counters
    assert (counters.global_call_reference, counters.dummy_call_reference) == (1, 1)
    assert counters.unknown_call == {"RELEASE COMPLETE": 1}
    assert tap.tracker.on_message(setup_message(1), None, T0) == []
    assert counters.no_direction == 1
    tap.send(N2U, Q931Message(MessageType.SETUP, CallReference(15, 1)))
    assert counters.setup_with_flag == 1


# -- restarts, status, link failures -----------------------------------------------------------


def answered_call(tap: Tap, crv: int, channel: int) -> None:
    tap.send(N2U, setup_message(crv, caller=MOBILE, channel=channel, exclusive=True))
    tap.send(U2N, reply(MessageType.CONNECT, crv, ChannelIdentification((channel,), True)))


def restart(channel: int | None) -> Q931Message:
    if channel is None:
        return reply(MessageType.RESTART, 0, RestartIndicator(RestartClass.ALL_INTERFACES), flag=0)
    return reply(
        MessageType.RESTART,
        0,
        ChannelIdentification((channel,), True),
        RestartIndicator(RestartClass.INDICATED_CHANNELS),
        flag=0,
    )


def test_restart_clears_the_calls_on_the_channels_it_names_or_all() -> None:
    tap = Tap()
    answered_call(tap, 20, 1)
    answered_call(tap, 21, 2)
    answered_call(tap, 22, 3)
    tap.send(N2U, restart(1))
    [first] = tap.released
    assert (first.call_ref, first.cleared_by, first.outcome) == (20, NETWORK, CallOutcome.ANSWERED)
    indicated = RestartIndicator(RestartClass.INDICATED_CHANNELS)
    tap.send(
        U2N, reply(MessageType.RESTART_ACKNOWLEDGE, 0, ChannelIdentification((1,), True), indicated)
    )
    assert len(tap.released) == 1
    assert [call.call_ref for _, call in tap.tracker.open_calls()] == [21, 22]
    # An acknowledgement whose RESTART the tap missed still clears the channel.
    tap.send(N2U, reply(MessageType.RESTART_ACKNOWLEDGE, 0, ChannelIdentification((2,), True)))
    assert tap.released[-1].call_ref == 21 and tap.released[-1].cleared_by is USER
    tap.send(U2N, restart(None))
    assert [call.call_ref for call in tap.released] == [20, 21, 22]
    ended = [event for event in tap.events if isinstance(event, CallEnded)]
    assert [event.cause for event in ended] == [EndCause.LINE_LOST] * 3
    assert tap.tracker.counters.restarts == 2 and tap.tracker.counters.restart_cleared == 3
    check_against_contract(tap.events)


def test_status_with_cause_30_is_not_a_clearing_but_the_null_state_is() -> None:
    tap = Tap()
    answered_call(tap, 23, 5)
    tap.send(N2U, reply(MessageType.STATUS_ENQUIRY, 23, flag=0))
    tap.send(U2N, reply(MessageType.STATUS, 23, Cause(30, 0), CallState(CallStateValue.ACTIVE)))
    assert tap.released == []
    [(_, call)] = tap.tracker.open_calls()
    assert (call.ended_at, call.cause) == (None, None)
    tap.send(U2N, reply(MessageType.STATUS, 23, Cause(30, 0), CallState(CallStateValue.NULL)))
    [gone] = tap.released
    assert (gone.outcome, gone.cause, gone.cleared_by) == (CallOutcome.ANSWERED, None, USER)
    assert tap.tracker.counters.status_null_cleared == 1
    assert tap.event_types()[-1] == "call.ended"


def test_a_d_channel_failure_clears_calls_in_set_up_at_once_and_answered_ones_after_t309() -> None:
    tap = Tap()
    answered_call(tap, 24, 6)
    tap.send(N2U, setup_message(25, caller=MOBILE, channel=7, exclusive=True))
    changes = tap.tracker.link_down(T0 + 10)
    assert [(c.kind, c.call.call_ref) for c in changes] == [(ChangeKind.RELEASED, 25)]
    assert tap.tracker.tick(T0 + 10 + 89) == []
    tap.tracker.link_up(T0 + 50)  # back within T309: the answered call goes on
    assert tap.tracker.tick(T0 + 200) == []
    tap.tracker.link_down(T0 + 300)
    [lost] = tap.tracker.tick(T0 + 395)
    assert (lost.call.call_ref, lost.call.outcome) == (24, CallOutcome.ANSWERED)
    assert lost.call.ended_at == T0 + 390  # when T309 ran out
    causes = [e.cause for e in tap.events if isinstance(e, CallEnded | CallAbandoned)]
    assert causes == [EndCause.LINE_LOST, EndCause.LINE_LOST]
    abandoned = next(e for e in tap.events if isinstance(e, CallAbandoned))
    assert "outcome" not in abandoned.data()  # neither side cleared it
    check_against_contract(tap.events)


def test_release_all_ends_every_open_call() -> None:
    tap = Tap()
    answered_call(tap, 26, 8)
    tap.send(N2U, setup_message(27, caller=MOBILE))
    changes = tap.tracker.release_all(T0 + 99, EndCause.UNKNOWN)
    assert sorted(c.call.call_ref for c in changes) == [26, 27]
    assert tap.tracker.open_calls() == []
    call_id = tap.events[0].call_id  # type: ignore[attr-defined]
    assert [hook for hook in tap.hooks if hook[0] == "cleared"] == [("cleared", call_id, 8)]
    assert tap.event_types()[-2:] == ["call.ended", "call.abandoned"]


# -- the tap started during a call ---------------------------------------------------------------


def test_calls_joined_mid_way_are_records_without_events() -> None:
    tap = Tap()
    # An answered call: the tap sees only its end.
    tap.send(N2U, reply(MessageType.DISCONNECT, 30, Cause(16, 2), flag=0))
    tap.send(U2N, reply(MessageType.RELEASE, 30))
    tap.send(N2U, reply(MessageType.RELEASE_COMPLETE, 30, flag=0))
    # A call still ringing: ALERTING shows it was not answered yet.
    tap.send(U2N, reply(MessageType.ALERTING, 31, ChannelIdentification((9,), True)))
    tap.send(N2U, reply(MessageType.DISCONNECT, 31, Cause(16, 2), flag=0))
    tap.send(U2N, reply(MessageType.RELEASE, 31))
    # A call answered just before: the CONNECT ACKNOWLEDGE shows it.
    tap.send(N2U, reply(MessageType.CONNECT_ACKNOWLEDGE, 32, flag=0))
    assert tap.kinds() == [
        "joined",
        "clearing",
        "released",
        "joined",
        "channel",
        "alerted",
        "clearing",
        "joined",
        "answered",
    ]
    [ended] = tap.released
    assert (ended.offered_at, ended.outcome, ended.cause, ended.cleared_by) == (
        None,
        None,  # answered or not: the tap cannot tell
        16,
        NETWORK,
    )
    (_, ringing), (_, talking) = tap.tracker.open_calls()
    assert (ringing.outcome, ringing.b_channel, ringing.originator) == (
        CallOutcome.ABANDONED,
        9,
        NETWORK,
    )
    assert talking.outcome is CallOutcome.ANSWERED
    assert tap.events == [] and tap.hooks == []
    assert tap.tracker.counters.joined_late == 3


# -- robustness -----------------------------------------------------------------------------------


def test_an_emit_or_hook_that_raises_does_not_stop_the_tracker(caplog: Any) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("queue gone")

    tracker = PriCallTracker("span0", broken, on_connected=broken, on_cleared=broken)
    for direction, message in [
        (N2U, setup_message(40, caller=MOBILE, channel=1, exclusive=True)),
        (U2N, reply(MessageType.CONNECT, 40)),
        (N2U, reply(MessageType.DISCONNECT, 40, Cause(16, 2), flag=0)),
        (U2N, reply(MessageType.RELEASE_COMPLETE, 40)),
    ]:
        tracker.on_message(message, direction, T0)
    assert tracker.open_calls() == []
    assert "emitting call.ended failed" in caplog.text
    assert "B-channel stop hook failed" in caplog.text


def test_a_channel_no_e1_has_is_not_taken() -> None:
    tap = Tap()
    tap.send(N2U, setup_message(41, channel=16, exclusive=True))  # the D-channel's timeslot
    tap.send(U2N, reply(MessageType.CALL_PROCEEDING, 41, ChannelIdentification((40,), True)))
    [(_, call)] = tap.tracker.open_calls()
    assert call.b_channel is None
    assert tap.tracker.counters.channel_out_of_range == 2


def test_end_cause_mapping() -> None:
    assert end_cause(16, NETWORK, NETWORK) is EndCause.REMOTE_HANGUP
    assert end_cause(16, USER, NETWORK) is EndCause.LOCAL_HANGUP
    assert end_cause(None, USER, NETWORK) is EndCause.LOCAL_HANGUP
    assert end_cause(None, None, NETWORK) is EndCause.UNKNOWN
    assert end_cause(19, NETWORK, NETWORK) is EndCause.NO_ANSWER
    assert end_cause(38, NETWORK, NETWORK) is EndCause.LINE_LOST
    assert end_cause(42, USER, NETWORK) is EndCause.BUSY
    assert end_cause(127, USER, NETWORK) is EndCause.UNKNOWN


def test_gsm_events_carry_none_of_the_span_additions() -> None:
    """The additions are left out when None: a GSM event is byte for byte what it was."""
    offered = CallOffered(
        call_id="c", line="gsm0", number="+62811", presentation=Presentation.ALLOWED, ring_count=1
    )
    assert list(offered.data()) == ["call_id", "line", "number", "presentation", "ring_count"]
    ended = CallEnded(call_id="c", line="gsm0", duration_ms=5, cause=EndCause.REMOTE_HANGUP)
    assert list(ended.data()) == ["call_id", "line", "duration_ms", "cause"]
    abandoned = CallAbandoned(
        call_id="c", line="gsm0", ring_count=2, ring_time_ms=9, cause=EndCause.BUSY
    )
    assert list(abandoned.data()) == [
        "call_id",
        "line",
        "ring_count",
        "ring_time_ms",
        "cause",
        "category",
    ]
    answered = CallAnswered(call_id="c", line="gsm0", ring_count=2, ring_time_ms=9)
    assert list(answered.data()) == ["call_id", "line", "ring_count", "ring_time_ms"]
    # ``number`` stays present when null: only the additions are left out.
    withheld = CallOffered(
        call_id="c", line="gsm0", number=None, presentation=Presentation.RESTRICTED, ring_count=1
    )
    assert withheld.data()["number"] is None


def test_the_record_as_json_has_exactly_the_documented_fields() -> None:
    call = PriCall(call_ref=5, originator=NETWORK, offered_at=T0 + 0.1234567)
    body = json.loads(json.dumps(call.to_json_dict()))
    assert list(body) == [
        "call_ref",
        "originator",
        "b_channel",
        "caller",
        "caller_presentation",
        "caller_type_of_number",
        "caller_numbering_plan",
        "caller_screening",
        "called",
        "offered_at",
        "alerted_at",
        "answered_at",
        "ended_at",
        "released_at",
        "cleared_by",
        "cause",
        "cause_location",
        "outcome",
    ]
    assert body["originator"] == "network"
    assert body["offered_at"] == round(T0 + 0.1234567, 6)


# -- any sequence at all ------------------------------------------------------------------------

KINDS = [
    MessageType.SETUP,
    MessageType.SETUP_ACKNOWLEDGE,
    MessageType.CALL_PROCEEDING,
    MessageType.ALERTING,
    MessageType.PROGRESS,
    MessageType.CONNECT,
    MessageType.CONNECT_ACKNOWLEDGE,
    MessageType.INFORMATION,
    MessageType.DISCONNECT,
    MessageType.RELEASE,
    MessageType.RELEASE_COMPLETE,
    MessageType.STATUS,
    MessageType.STATUS_ENQUIRY,
    MessageType.RESTART,
    MessageType.RESTART_ACKNOWLEDGE,
    MessageType.NOTIFY,
]


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, Any]:
    """A step: a message in either direction (small CRVs, so calls collide), or a link
    going down or up, or time passing."""
    step = draw(st.sampled_from(["message"] * 12 + ["down", "up", "tick"]))
    if step != "message":
        return step, None
    elements: list[InformationElement] = []
    if draw(st.booleans()):
        elements.append(Cause(draw(st.integers(0, 127)), draw(st.integers(0, 15))))
    if draw(st.booleans()):
        channel = draw(st.integers(0, 127))
        elements.append(ChannelIdentification((channel,), draw(st.booleans())))
    if draw(st.booleans()):
        presentation = draw(st.sampled_from([None, 0, 1, 2, 3]))
        screening = None if presentation is None else draw(st.integers(0, 3))
        digits = draw(st.text("0123456789", max_size=12))
        elements.append(
            CallingPartyNumber(digits, draw(st.integers(0, 7)), 1, presentation, screening)
        )
    if draw(st.booleans()):
        elements.append(CalledPartyNumber(draw(st.text("0123456789*#", max_size=4)), 0, 1))
    if draw(st.booleans()):
        elements.append(CallState(draw(st.sampled_from([0, 1, 4, 7, 10, 12, 19]))))
    if draw(st.booleans()):
        elements.append(RestartIndicator(draw(st.sampled_from([0, 6, 7]))))
    dummy = draw(st.integers(0, 20)) == 0
    reference = (
        CallReference(length=0)
        if dummy
        else CallReference(draw(st.integers(0, 3)), draw(st.integers(0, 1)))
    )
    message = Q931Message(draw(st.sampled_from(KINDS)), reference, tuple(elements))
    return draw(st.sampled_from([N2U, U2N, None])), message


@settings(max_examples=400, deadline=None)
@given(st.lists(messages(), max_size=40))
def test_any_sequence_keeps_the_event_contract(steps: list[tuple[Any, Any]]) -> None:
    """Whatever comes: no exception; per call id exactly offered -> (answered -> ended |
    abandoned), every event valid against its schema, and audio stopped once per start."""
    tap = Tap()
    for direction, message in steps:
        tap.now += 0.25
        if direction == "down":
            tap.tracker.link_down(tap.now)
        elif direction == "up":
            tap.tracker.link_up(tap.now)
        elif direction == "tick":
            tap.tracker.tick(tap.now + 100)
        else:
            tap.tracker.on_message(decode_message(message.to_bytes()), direction, tap.now)
    tap.tracker.release_all(tap.now + 1)
    assert tap.tracker.open_calls() == []
    sequences: dict[str, list[str]] = {}
    for event in tap.events:
        sequences.setdefault(event.call_id, []).append(event.TYPE.value)  # type: ignore[attr-defined]
    for sequence in sequences.values():
        assert sequence in (
            ["call.offered", "call.answered", "call.ended"],
            ["call.offered", "call.abandoned"],
        ), sequence
    check_against_contract(tap.events)
    started = [hook[1:] for hook in tap.hooks if hook[0] == "connected"]
    stopped = [hook[1:] for hook in tap.hooks if hook[0] == "cleared"]
    assert sorted(started) == sorted(stopped)


def test_times_that_are_no_time_are_dropped_or_replaced_by_the_clock() -> None:
    tap = Tap()
    assert tap.tracker.on_message(setup_message(50), N2U, float("nan")) == []
    assert tap.tracker.counters.bad_time == 1
    [change] = tap.tracker.on_message(setup_message(51, caller=MOBILE), N2U, 1e15)  # year 31690
    assert change.call.offered_at == 1e15
    [offered] = tap.events
    assert abs(offered.observed_at.timestamp() - __import__("time").time()) < 60
