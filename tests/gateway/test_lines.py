"""LineDriverBase: reopen with backoff, health, stuck workers, safe emit, call trackers.

A scripted line stands in for a hardware family: its source fails to open
as often as told, serves until the test loses it, and can hang (no progress)
or raise on request. No serial port, no threads but the driver's own.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gateway.events import (
    CallAbandoned,
    CallOffered,
    EndCause,
    Event,
    LineStatus,
    Presentation,
    envelope,
)
from gateway.lines import LINE_UP, LineDriverBase, SessionEnd
from tests.conftest import validate_event

FAST: dict[str, Any] = {
    "reopen_backoff_s": 0.05,
    "reopen_backoff_max_s": 0.2,
    "caller_id_grace_s": 0.05,
}


def wait_until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.005)


class EventLog:
    """An emit callback that keeps every event; it can be told to raise after keeping it."""

    def __init__(self, *, raises: bool = False) -> None:
        self.raises = raises
        self._lock = threading.Lock()
        self._events: list[Event] = []

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)
        if self.raises:
            raise RuntimeError("the outbox is gone")

    def all(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def of(self, *types: type[Event]) -> list[Any]:
        return [event for event in self.all() if isinstance(event, types)]

    def states(self) -> list[tuple[str, str]]:
        return [(status.state, status.detail) for status in self.of(LineStatus)]


class FakeSource:
    def __init__(self) -> None:
        self.lost = threading.Event()
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()


class ScriptedLine(LineDriverBase[FakeSource]):
    """Fails its first ``fail_opens`` opens, then serves until the test intervenes."""

    FAMILY = "test"

    def __init__(self, emit: Callable[[Event], None], *, fail_opens: int = 0, **options: Any):
        super().__init__("t0", emit, **options)
        self.fail_opens = fail_opens
        self.open_times: list[float] = []
        self.sources: list[FakeSource] = []
        self.hang = threading.Event()  # serve stops showing progress while this is set
        self.hanging = threading.Event()
        self.block_on_read = False  # serve blocks until its source is closed, like a read
        self.raise_in_serve = 0  # raise this many times, then serve normally

    def _open_source(self) -> FakeSource:
        self.open_times.append(time.monotonic())
        if len(self.open_times) <= self.fail_opens:
            raise OSError(2, "No such file or directory")
        source = FakeSource()
        self.sources.append(source)
        return source

    def _close_source(self, source: FakeSource) -> None:
        source.close()

    def _serve(self, source: FakeSource) -> SessionEnd:
        if self.raise_in_serve:
            self.raise_in_serve -= 1
            raise ValueError("a bug in the family")
        self._report_health(LINE_UP, "scripted line up")
        if self.block_on_read:
            source.closed.wait()
            return SessionEnd("read interrupted", came_up=True)
        while not self._stopping.is_set():
            if source.lost.is_set():
                return SessionEnd("source lost", came_up=True)
            if self.hang.is_set():
                self.hanging.set()
                while self.hang.is_set() and not self._stopping.is_set():
                    time.sleep(0.01)  # blocked somewhere: no progress
                self.hanging.clear()
            self._wake.wait(0.01)
            self._wake.clear()
            self._note_progress()
            self._tick_calls()
        return SessionEnd("driver stopped", came_up=True)


@pytest.fixture
def log() -> Iterator[EventLog]:
    """The events of one test; at the end each must match the published JSON Schema."""
    events = EventLog()
    yield events
    for seq, event in enumerate(events.all(), start=1):
        validate_event(envelope(event, seq=seq, gateway_id="test-01", region="64.74"))


def test_a_source_that_fails_three_times_is_reopened_with_doubling_backoff(log):
    line = ScriptedLine(log, fail_opens=3, **FAST)
    line.start()
    try:
        wait_until(lambda: line.health().state == "up")
    finally:
        line.stop()

    gaps = [later - earlier for earlier, later in itertools.pairwise(line.open_times)]
    assert len(gaps) == 3
    for gap, backoff in zip(gaps, (0.05, 0.1, 0.2), strict=True):
        assert backoff - 0.01 <= gap < backoff + 0.5
    assert log.states() == [
        ("down", "cannot open source: [Errno 2] No such file or directory"),  # once, not 3 times
        ("up", "scripted line up"),
        ("down", "driver stopped"),
    ]
    assert line.health().sessions == 4


def test_the_backoff_starts_over_after_a_session_that_came_up(log):
    line = ScriptedLine(log, fail_opens=4, reopen_backoff_s=0.05, reopen_backoff_max_s=2.0)
    line.start()
    try:
        wait_until(lambda: line.sources)  # after waits of 0.05, 0.1, 0.2 and 0.4 s
        line.sources[0].lost.set()
        wait_until(lambda: len(line.sources) == 2)
    finally:
        line.stop()
    assert line.open_times[-1] - line.open_times[-2] < 0.4  # 0.05 s again, not 0.8 s


def test_health_goes_down_with_the_reason_and_ends_open_calls_line_lost_after_it(log):
    line = ScriptedLine(log, **FAST)
    assert line.health().ok and line.health().state == "down"  # not started: nothing wrong
    line.start()
    try:
        wait_until(lambda: line.health().state == "up")
        line._call_tracker("slot-a").caller_id("+6281234567890", Presentation.ALLOWED)
        line._call_tracker("slot-b").ring()
        wait_until(lambda: len(log.of(CallOffered)) == 2)
        line.sources[0].lost.set()
        wait_until(lambda: len(line.sources) == 2 and line.health().state == "up")
        health = line.health()
        assert health.ok and health.worker_alive and health.sessions == 2
        line._call_tracker("slot-a").ring()
        wait_until(lambda: len(log.of(CallOffered)) == 3)
    finally:
        line.stop()

    assert log.states() == [
        ("up", "scripted line up"),
        ("down", "source lost"),
        ("up", "scripted line up"),
        ("down", "driver stopped"),
    ]
    events = log.all()
    lost_at = events.index(log.of(LineStatus)[1])
    lost_calls = [e for e in events[lost_at:] if isinstance(e, CallAbandoned)][:2]
    assert {call.cause for call in lost_calls} == {EndCause.LINE_LOST}
    stopped = log.of(CallAbandoned)[2]
    assert stopped.cause is EndCause.UNKNOWN
    assert events.index(stopped) < events.index(log.of(LineStatus)[-1])
    health = line.health()
    assert (health.state, health.detail) == ("down", "driver stopped")
    assert health.ok and not health.worker_alive
    assert line.sources[0].closed.is_set() and line.sources[1].closed.is_set()


def test_a_stuck_worker_is_told_from_a_live_idle_one_by_its_progress(log):
    line = ScriptedLine(log, stuck_after_s=0.2, **FAST)
    line.start()
    try:
        wait_until(lambda: line.health().state == "up")
        time.sleep(0.4)  # idle, longer than stuck_after_s: still making progress
        idle = line.health()
        assert idle.ok and not idle.stuck and idle.progress_age_s < 0.2
        before = line.progress

        line.hang.set()
        wait_until(line.hanging.is_set)
        wait_until(lambda: line.health().stuck)
        stuck = line.health()
        assert stuck.worker_alive and not stuck.ok and stuck.progress_age_s > 0.2
        assert (stuck.state, stuck.line) == ("up", "t0")  # the last report cannot tell

        line.hang.clear()
        wait_until(lambda: not line.health().stuck)
        assert line.progress > before
    finally:
        line.stop()


def test_a_worker_waiting_out_a_long_backoff_is_not_stuck(log):
    line = ScriptedLine(log, fail_opens=1, reopen_backoff_s=0.6, stuck_after_s=0.2)
    line.start()
    try:
        wait_until(lambda: line.health().state == "down")
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            assert not line.health().stuck
            time.sleep(0.02)
        wait_until(lambda: line.health().state == "up")
    finally:
        line.stop()


def test_an_emit_that_raises_never_reaches_the_worker(caplog):
    caplog.set_level(logging.ERROR, logger="edge112.lines")
    log = EventLog(raises=True)
    line = ScriptedLine(log, fail_opens=2, **FAST)
    line.start()
    try:
        wait_until(lambda: line.health().state == "up")
        line._call_tracker().ring()  # the offer goes out from the worker's tick, and raises
        wait_until(lambda: log.of(CallOffered))
        health = line.health()
        assert health.ok and health.worker_alive and health.sessions == 3
    finally:
        line.stop()  # raises nothing either
    assert [state for state, _ in log.states()] == ["down", "up", "down"]
    assert isinstance(log.all()[-1], LineStatus) and log.of(CallAbandoned)
    assert "t0: emitting line.status failed" in caplog.text
    assert "t0: emitting call.offered failed" in caplog.text


def test_a_bug_in_serve_costs_a_reopen_not_the_line(log, caplog):
    caplog.set_level(logging.ERROR, logger="edge112.lines")
    line = ScriptedLine(log, **FAST)
    line.raise_in_serve = 1
    line.start()
    try:
        wait_until(lambda: line.health().state == "up")
    finally:
        line.stop()
    assert log.states()[0] == ("down", "driver error: ValueError('a bug in the family')")
    assert "a bug in the family" in caplog.text  # with its traceback
    assert line.sources[0].closed.is_set()


def test_stop_closes_the_source_so_a_blocked_read_returns_at_once(log):
    line = ScriptedLine(log, **FAST)
    line.block_on_read = True
    line.start()
    wait_until(lambda: line.health().state == "up")
    started = time.monotonic()
    line.stop()
    assert time.monotonic() - started < 0.5
    assert not line.health().worker_alive
    line.stop()  # a second stop does nothing
    assert log.states()[-1] == ("down", "driver stopped")
    assert log.states().count(("down", "driver stopped")) == 1


def test_a_dead_worker_shows_in_health(log, caplog):
    class DiesAfterASession(ScriptedLine):
        def _session_ended(self) -> None:
            raise RuntimeError("a bug in a hook")

    caplog.set_level(logging.ERROR, logger="edge112.lines")
    line = DiesAfterASession(log, **FAST)
    line.start()
    try:
        wait_until(lambda: line.health().state == "up")
        line.sources[0].lost.set()
        wait_until(lambda: not line.health().worker_alive)
        health = line.health()
        assert not health.ok and not health.stuck
    finally:
        line.stop()
    assert "t0: line worker died" in caplog.text


def test_unchanged_health_is_not_reported_again_and_states_are_checked(log):
    line = ScriptedLine(log)
    line._report_health("up", "fine", -70)
    line._report_health("up", "fine", -70)
    line._report_health("up", "fine", -69)  # the base reports any signal change
    line._report_health("down", "gone")
    assert [(s.state, s.signal_dbm) for s in log.of(LineStatus)] == [
        ("up", -70),
        ("up", -69),
        ("down", None),
    ]
    with pytest.raises(ValueError, match="line state"):
        line._report_health("upp", "typo")


def test_start_twice_is_an_error(log):
    line = ScriptedLine(log, **FAST)
    line.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            line.start()
    finally:
        line.stop()


def test_an_emit_receipt_tells_when_the_outbox_committed_the_event(tmp_path):
    """The emit may return the outbox's pending commit; ``_emit_for_commit`` keeps it."""
    from gateway.outbox import Outbox

    outbox = Outbox(tmp_path / "outbox.db", gateway_id="g", region="64.74")
    status = LineStatus(line="x", state="up", detail="d")
    try:
        line = ScriptedLine(outbox.submit)
        receipt = line._emit_for_commit(status)
        outbox.flush()
        assert receipt.committed() is True
    finally:
        outbox.close()
    closed = ScriptedLine(outbox.submit)._emit_for_commit(status)
    assert closed.committed() is False  # the closed outbox refused it

    def raises(_event: Any) -> None:
        raise RuntimeError("broken emit")

    assert ScriptedLine(raises)._emit_for_commit(status).committed() is False
    assert ScriptedLine(lambda _e: None)._emit_for_commit(status).committed() is True
