"""CallTracker: the per-line call state machine, driven with an injected clock."""

from __future__ import annotations

import threading
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.calls import CallState, CallTracker
from gateway.events import (
    CallAbandoned,
    CallAnswered,
    CallEnded,
    CallOffered,
    EndCause,
    Event,
    Presentation,
)

NUMBER = "+6281234567890"
GRACE_S = 0.5


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def tracker(clock, events) -> CallTracker:
    return CallTracker("gsm0", events.append, clock=clock, caller_id_grace_s=GRACE_S)


def test_clip_after_ring_offers_the_call_with_its_number(tracker, events):
    tracker.ring()
    assert events == []

    tracker.caller_id(NUMBER, Presentation.ALLOWED)

    assert len(events) == 1
    offered = events[0]
    assert isinstance(offered, CallOffered)
    assert (offered.line, offered.number, offered.presentation, offered.ring_count) == (
        "gsm0",
        NUMBER,
        Presentation.ALLOWED,
        1,
    )


def test_clip_before_ring_offers_at_once_and_stands_for_the_first_ring(tracker, events):
    tracker.caller_id(NUMBER, Presentation.ALLOWED)

    assert [type(event) for event in events] == [CallOffered]
    assert events[0].ring_count == 1
    tracker.ring()
    assert tracker.ring_count == 1
    tracker.ring()
    assert tracker.ring_count == 2
    assert len(events) == 1


def test_repeated_clips_do_not_offer_again(tracker, events):
    for _ in range(3):
        tracker.ring()
        tracker.caller_id(NUMBER, Presentation.ALLOWED)

    assert [type(event) for event in events] == [CallOffered]
    assert tracker.ring_count == 3


def test_withheld_number_is_offered_restricted_without_number(tracker, events):
    tracker.ring()
    tracker.caller_id(None, Presentation.RESTRICTED)

    assert (events[0].number, events[0].presentation) == (None, Presentation.RESTRICTED)


def test_allowed_with_an_empty_number_is_unavailable(tracker, events):
    tracker.ring()
    tracker.caller_id("", Presentation.ALLOWED)

    assert (events[0].number, events[0].presentation) == (None, Presentation.UNAVAILABLE)


def test_without_caller_id_the_offer_waits_for_the_grace_period(tracker, clock, events):
    tracker.ring()
    clock.advance(GRACE_S - 0.01)
    tracker.tick()
    assert events == []

    clock.advance(0.01)
    tracker.tick()

    assert len(events) == 1
    assert (events[0].number, events[0].presentation) == (None, Presentation.UNAVAILABLE)


def test_a_late_clip_after_the_grace_offer_does_not_offer_again(tracker, clock, events):
    tracker.ring()
    clock.advance(GRACE_S)
    tracker.tick()

    tracker.caller_id(NUMBER, Presentation.ALLOWED)

    assert len(events) == 1
    assert events[0].number is None


def test_release_before_the_offer_offers_first(tracker, clock, events):
    tracker.ring()
    clock.advance(0.2)

    tracker.released(EndCause.REMOTE_HANGUP)

    assert [type(event) for event in events] == [CallOffered, CallAbandoned]
    abandoned = events[1]
    assert (abandoned.ring_count, abandoned.ring_time_ms, abandoned.cause) == (
        1,
        200,
        EndCause.REMOTE_HANGUP,
    )
    assert events[0].call_id == abandoned.call_id
    assert tracker.state is CallState.IDLE


def test_answer_before_the_offer_offers_first(tracker, clock, events):
    tracker.ring()
    clock.advance(0.1)

    tracker.answered()

    assert [type(event) for event in events] == [CallOffered, CallAnswered]
    assert events[0].presentation is Presentation.UNAVAILABLE


def test_answered_call_reports_ring_time_then_duration(tracker, clock, events):
    tracker.ring()
    tracker.caller_id(NUMBER, Presentation.ALLOWED)
    clock.advance(5.0)
    tracker.ring()
    clock.advance(2.0)
    tracker.answered()
    assert tracker.state is CallState.ANSWERED
    clock.advance(30.0)

    tracker.released(EndCause.REMOTE_HANGUP)

    offered, answered, ended = events
    assert isinstance(answered, CallAnswered)
    assert (answered.ring_count, answered.ring_time_ms) == (2, 7000)
    assert isinstance(ended, CallEnded)
    assert (ended.duration_ms, ended.cause) == (30000, EndCause.REMOTE_HANGUP)
    assert offered.call_id == answered.call_id == ended.call_id


def test_abandoned_call_reports_rings_and_ring_time(tracker, clock, events):
    tracker.ring()
    tracker.caller_id(None, Presentation.RESTRICTED)
    for _ in range(2):
        clock.advance(5.0)
        tracker.ring()
    clock.advance(1.5)

    tracker.released(EndCause.REMOTE_HANGUP)

    abandoned = events[-1]
    assert isinstance(abandoned, CallAbandoned)
    assert (abandoned.ring_count, abandoned.ring_time_ms) == (3, 11500)


def test_each_call_gets_its_own_uuid7(tracker, events):
    for _ in range(2):
        tracker.ring()
        tracker.released(EndCause.REMOTE_HANGUP)

    first, second = events[0].call_id, events[2].call_id
    assert first != second
    assert uuid.UUID(first).version == 7
    assert first < second  # UUIDv7 sorts by creation


def test_rings_during_an_answered_call_are_ignored(tracker, events):
    tracker.ring()
    tracker.answered()
    tracker.ring()
    tracker.answered()

    assert [type(event) for event in events] == [CallOffered, CallAnswered]
    assert tracker.ring_count == 1


def test_signals_for_another_call_are_ignored(tracker, events):
    tracker.ring()
    tracker.caller_id(NUMBER, Presentation.ALLOWED)

    tracker.answered(call_id="not-this-call")
    tracker.released(EndCause.UNKNOWN, call_id="not-this-call")

    assert [type(event) for event in events] == [CallOffered]
    assert tracker.state is CallState.RINGING


def test_release_when_idle_does_nothing(tracker, events):
    tracker.released(EndCause.LINE_LOST)
    tracker.tick()

    assert events == []
    assert (tracker.state, tracker.call_id, tracker.ring_count) == (CallState.IDLE, None, 0)


def test_concurrent_ticks_and_caller_id_offer_exactly_once(clock, events):
    tracker = CallTracker("gsm0", events.append, clock=clock, caller_id_grace_s=0.0)
    tracker.ring()
    start = threading.Barrier(9)

    def tick() -> None:
        start.wait()
        for _ in range(200):
            tracker.tick()

    def clip() -> None:
        start.wait()
        tracker.caller_id(NUMBER, Presentation.ALLOWED)

    threads = [threading.Thread(target=tick) for _ in range(8)] + [threading.Thread(target=clip)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [type(event) for event in events] == [CallOffered]


SIGNALS = st.sampled_from(["ring", "clip", "withheld", "answer", "release", "tick", "wait"])


@given(st.lists(SIGNALS, max_size=40))
def test_any_signal_sequence_yields_well_formed_calls(signals):
    clock = Clock()
    events: list[Event] = []
    tracker = CallTracker("gsm0", events.append, clock=clock, caller_id_grace_s=GRACE_S)
    actions = {
        "ring": tracker.ring,
        "clip": lambda: tracker.caller_id(NUMBER, Presentation.ALLOWED),
        "withheld": lambda: tracker.caller_id(None, Presentation.RESTRICTED),
        "answer": tracker.answered,
        "release": lambda: tracker.released(EndCause.REMOTE_HANGUP),
        "tick": tracker.tick,
        "wait": lambda: clock.advance(0.3),
    }
    for signal in signals:
        actions[signal]()
    tracker.released(EndCause.LINE_LOST)

    by_call: dict[str, list[type[Event]]] = {}
    for event in events:
        by_call.setdefault(event.call_id, []).append(type(event))
    for kinds in by_call.values():
        assert kinds in (
            [CallOffered, CallAbandoned],
            [CallOffered, CallAnswered, CallEnded],
        )
    ids = [event.call_id for event in events]
    runs = [call_id for index, call_id in enumerate(ids) if index == 0 or ids[index - 1] != call_id]
    assert len(runs) == len(set(runs))  # one call's events never interleave with another's
