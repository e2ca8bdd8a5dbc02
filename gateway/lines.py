"""Line drivers: what the gateway needs of one, and the base every family's driver builds on.

A *line* is one source of calls, named in events as ``line``: a GSM modem
(``drivers/gsm``), next an E1 span. Its driver is a plug-in found through
``gateway.families``; the gateway itself needs only ``LineDriver``. Every
family subclasses ``LineDriverBase``, which owns what they all share, so a
driver implements one *session* of its hardware and nothing else::

    start() ─▶ worker thread "edge112-<family>-<line>"
                 ┌─▶ _open_source()          subclass: open the port or streams, raise if it cannot
                 │   _serve(source)          subclass: bring the line up, serve it; say why it ended
                 │     │ _report_health(up | down, detail)    line.status, on changes only
                 │     │ _call_tracker(key).ring() ...         call.* events through CallTracker
                 │     │ _note_progress()                      "still working", every loop
                 │   _close_source(source)
                 │   line.status down (the reason); open calls end LINE_LOST; _session_ended()
                 └── wait 0.5 s, doubling up to 30 s; from 0.5 s again after a session that came up
    stop() ──▶ _close_source() (fails a read or command in flight at once), join,
               open calls end UNKNOWN, _stopped(), line.status down "driver stopped"

Safe emit: events leave through ``_emit_safely``; an emit callback that
raises is logged and never reaches the driver. The emit callback may return
the outbox's pending commit (``Commit``: ``gateway.outbox.Submission`` has
that shape; the daemon's emit returns it); ``_emit_for_commit`` keeps it as
an ``EmitReceipt``, so a driver can act only once its event is stored (a GSM
driver deletes an SMS from the modem only then). An emit that returns None
is taken as storing the event before it returns. A subclass that raises
unexpectedly from ``_serve`` ends the session (logged with the traceback)
and the line is reopened like a lost port: a bug costs a reopen, not the line.

Health: ``health()`` is a snapshot for the daemon: the state last reported,
whether the worker thread is alive, and how long ago it last showed
progress (``progress`` is that monotonic time). The worker bumps it every
loop, after every command and while it waits out a backoff, so a worker
silent for ``stuck_after_s`` is *stuck*, blocked where it should not be,
which an idle but live line never is.

Threads: the worker runs open, serve, close and the backoff; ``start``,
``stop`` and ``health`` may be called from any thread; a subclass may feed
its call trackers from a reader thread of its own (trackers are thread-safe).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar, runtime_checkable

from gateway.calls import CALLER_ID_GRACE_S, CallTracker
from gateway.events import EndCause, Event, LineStatus

LINE_UP = "up"
LINE_DOWN = "down"

REOPEN_BACKOFF_INITIAL_S = 0.5
REOPEN_BACKOFF_MAX_S = 30.0
STOP_TIMEOUT_S = 2.0
STUCK_AFTER_S = 60.0  # a worker silent this long is stuck (well above any step's timeout)
BACKOFF_PROGRESS_S = 1.0  # a worker waiting out a backoff still shows progress this often

Emit = Callable[[Event], object]  # may return a Commit (see EmitReceipt)


@runtime_checkable
class Commit(Protocol):
    """An event's pending commit to the outbox, as ``emit`` may return it."""

    @property
    def done(self) -> bool: ...

    def wait(self, timeout: float | None = ...) -> int: ...


class EmitReceipt:
    """Whether an emitted event is stored: ``committed()`` is True, False (it never will be:
    the emit failed or the outbox refused it) or None (not yet)."""

    __slots__ = ("_commit", "_state")

    def __init__(self, commit: Commit | None, state: bool | None) -> None:
        self._commit, self._state = commit, state

    def committed(self) -> bool | None:
        if self._state is None and self._commit is not None and self._commit.done:
            try:
                self._commit.wait(0)
            except Exception:
                self._state = False
            else:
                self._state = True
        return self._state


SourceT = TypeVar("SourceT")


@dataclass(frozen=True)
class LineSettings:
    """One configured line. Each family subclasses it (``[[modems]]`` -> ``ModemSettings``)."""

    FAMILY: ClassVar[str] = ""  # the family's name in gateway.families: "gsm", "e1"
    name: str

    @property
    def wants_audio(self) -> bool:
        """Whether the line hands call audio to the gateway (then the daemon builds a pipeline)."""
        return False


@dataclass(frozen=True)
class LineHealth:
    """A line driver's health at one moment, for the daemon and for technicians."""

    line: str
    state: str  # "up" or "down" as last reported; "down" before the first report
    detail: str
    started: bool
    stopping: bool
    worker_alive: bool
    progress_age_s: float  # since the worker last showed progress
    sessions: int  # sessions begun: the first open and every reopen
    stuck: bool  # the worker is alive but has shown no progress for stuck_after_s

    @property
    def ok(self) -> bool:
        """Not started, stopping, or a live worker that is not stuck."""
        return not self.started or self.stopping or (self.worker_alive and not self.stuck)


class LineDriver(Protocol):
    """What the gateway needs of a line's driver."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def health(self) -> LineHealth: ...


@dataclass(frozen=True)
class SessionEnd:
    """Why a session ended, and whether the line came up in it (the backoff starts over then)."""

    reason: str
    came_up: bool = False


@dataclass(frozen=True)
class _Reported:
    state: str
    detail: str
    signal_dbm: int | None


class LineDriverBase(ABC, Generic[SourceT]):
    """Drives line ``name`` from a source of type ``SourceT``; events go to ``emit``.

    ``emit`` is called from the driver's threads and must be quick and
    thread-safe (typically: put on the outbox writer's queue).
    """

    FAMILY: ClassVar[str] = "line"  # in the worker thread's name
    SOURCE_KIND: ClassVar[str] = "source"  # in "cannot open <kind>: ..." ("port" for a modem)
    OPEN_ERRORS: ClassVar[tuple[type[BaseException], ...]] = (OSError,)  # expected, no traceback
    logger: ClassVar[logging.Logger] = logging.getLogger("edge112.lines")

    def __init__(
        self,
        name: str,
        emit: Emit,
        *,
        reopen_backoff_s: float = REOPEN_BACKOFF_INITIAL_S,
        reopen_backoff_max_s: float = REOPEN_BACKOFF_MAX_S,
        caller_id_grace_s: float = CALLER_ID_GRACE_S,
        stuck_after_s: float = STUCK_AFTER_S,
    ) -> None:
        self.name = name
        self._emit = emit
        self._reopen_backoff_s = reopen_backoff_s
        self._reopen_backoff_max_s = reopen_backoff_max_s
        self._caller_id_grace_s = caller_id_grace_s
        self._stuck_after_s = stuck_after_s
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped_once = False
        self._source: SourceT | None = None
        self._source_lock = threading.Lock()
        self._reported: _Reported | None = None
        self._health_lock = threading.Lock()
        self._progress_at = time.monotonic()
        self._sessions = 0
        self._trackers: dict[Hashable, CallTracker] = {}
        self._trackers_lock = threading.Lock()

    # What a family implements ---------------------------------------------

    @abstractmethod
    def _open_source(self) -> SourceT:
        """Open the line's source; raise (``OSError`` and the like) when it cannot be opened."""

    @abstractmethod
    def _close_source(self, source: SourceT) -> None:
        """Close ``source``; called from any thread, maybe twice; a blocked read must return."""

    @abstractmethod
    def _serve(self, source: SourceT) -> SessionEnd:
        """Bring the line up and serve it until it is lost or ``_stopping`` is set."""

    def _session_ended(self) -> None:
        """After a session that ended without stop(): its calls have ended LINE_LOST."""

    def _stopped(self) -> None:
        """At the end of stop(): the worker is gone and open calls have ended."""

    def _signal_moved(self, last_dbm: int | None, new_dbm: int | None) -> bool:
        """Whether a signal change alone is worth a line.status (by default: any change)."""
        return last_dbm != new_dbm

    # Lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: driver already started")
        self._note_progress()
        self._thread = threading.Thread(
            target=self._run, name=f"edge112-{self.FAMILY}-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop within ``timeout``; a call still up ends with cause UNKNOWN, the line goes down."""
        if self._thread is None or self._stopped_once:
            return
        self._stopped_once = True
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        with self._source_lock:
            source = self._source
        if source is not None:
            self._close_quietly(source)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self.logger.warning("%s: worker did not stop within %.1f s", self.name, timeout)
        self._release_calls(EndCause.UNKNOWN)
        try:
            self._stopped()
        except Exception:
            self.logger.exception("%s: cleaning up after stop failed", self.name)
        self._report_health(LINE_DOWN, "driver stopped")

    def wake(self) -> None:
        """Wake the worker now (it also wakes by itself: see the subclass's tick)."""
        self._wake.set()

    # Health -----------------------------------------------------------------

    @property
    def progress(self) -> float:
        """``time.monotonic()`` when the worker last showed progress."""
        return self._progress_at

    def health(self) -> LineHealth:
        thread = self._thread
        alive = thread is not None and thread.is_alive()
        age = max(0.0, time.monotonic() - self._progress_at)
        with self._health_lock:
            reported = self._reported
        stopping = self._stopping.is_set()
        return LineHealth(
            line=self.name,
            state=reported.state if reported else LINE_DOWN,
            detail=reported.detail if reported else "not reported yet",
            started=thread is not None,
            stopping=stopping,
            worker_alive=alive,
            progress_age_s=age,
            sessions=self._sessions,
            stuck=alive and not stopping and age > self._stuck_after_s,
        )

    def _note_progress(self) -> None:
        """The worker is doing its job: call it every loop and after every blocking step."""
        self._progress_at = time.monotonic()

    def _report_health(self, state: str, detail: str, signal_dbm: int | None = None) -> None:
        """Emit a line.status when state or detail change, or when the signal moved enough."""
        if state not in (LINE_UP, LINE_DOWN):
            raise ValueError(f"line state must be {LINE_UP!r} or {LINE_DOWN!r}, got {state!r}")
        new = _Reported(state, detail, signal_dbm)
        with self._health_lock:
            last = self._reported
            if (
                last is not None
                and (last.state, last.detail) == (state, detail)
                and not self._signal_moved(last.signal_dbm, signal_dbm)
            ):
                return
            self._reported = new
        self._emit_safely(
            LineStatus(line=self.name, state=state, detail=detail, signal_dbm=signal_dbm)
        )

    # Events and calls ---------------------------------------------------------

    def _emit_safely(self, event: Event) -> None:
        """Hand ``event`` to the emit callback; whatever that raises is logged, never raised."""
        self._emit_for_commit(event)

    def _emit_for_commit(self, event: Event) -> EmitReceipt:
        """``_emit_safely`` that tells, through the receipt, when the event is stored."""
        try:
            result = self._emit(event)
        except Exception:
            self.logger.exception("%s: emitting %s failed", self.name, event.TYPE.value)
            return EmitReceipt(None, False)
        if isinstance(result, Commit):
            return EmitReceipt(result, None)
        return EmitReceipt(None, True)

    def _call_tracker(self, key: Hashable = None) -> CallTracker:
        """The tracker of call slot ``key`` (a modem has one; a span one per call), made on use."""
        with self._trackers_lock:
            tracker = self._trackers.get(key)
            if tracker is None:
                tracker = CallTracker(
                    self.name, self._emit_safely, caller_id_grace_s=self._caller_id_grace_s
                )
                self._trackers[key] = tracker
            return tracker

    def _forget_call_tracker(self, key: Hashable) -> None:
        """Drop a slot's tracker (its call must be over: an open call would never end)."""
        with self._trackers_lock:
            self._trackers.pop(key, None)

    def _call_trackers(self) -> list[CallTracker]:
        with self._trackers_lock:
            return list(self._trackers.values())

    def _tick_calls(self) -> None:
        """Let every tracker fire its timers (the caller-id grace period)."""
        for tracker in self._call_trackers():
            tracker.tick()

    def _release_calls(self, cause: EndCause) -> None:
        """End every open call with ``cause``."""
        for tracker in self._call_trackers():
            tracker.released(cause)

    # Worker -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._supervise()
        except Exception:  # only a bug in a hook gets here: health() shows the worker dead
            self.logger.exception("%s: line worker died", self.name)

    def _supervise(self) -> None:
        backoff = self._reopen_backoff_s
        while not self._stopping.is_set():
            end = self._run_session()
            if self._stopping.is_set():
                break
            self._report_health(LINE_DOWN, end.reason)
            self._release_calls(EndCause.LINE_LOST)
            self._session_ended()
            if end.came_up:
                backoff = self._reopen_backoff_s
            self.logger.warning("%s: %s; reopening in %.1f s", self.name, end.reason, backoff)
            if self._wait_out(backoff):
                break
            backoff = min(backoff * 2, self._reopen_backoff_max_s)

    def _run_session(self) -> SessionEnd:
        self._sessions += 1
        self._note_progress()
        try:
            source = self._open_source()
        except Exception as exc:
            if not isinstance(exc, self.OPEN_ERRORS):
                self.logger.exception("%s: opening the %s failed", self.name, self.SOURCE_KIND)
            return SessionEnd(f"cannot open {self.SOURCE_KIND}: {exc}")
        finally:
            self._note_progress()
        with self._source_lock:
            self._source = source
        try:
            if self._stopping.is_set():  # stop() may have looked before the source was set
                return SessionEnd("driver stopped")
            return self._serve(source)
        except Exception as exc:
            self.logger.exception("%s: driver error", self.name)
            return SessionEnd(f"driver error: {exc!r}")
        finally:
            with self._source_lock:
                self._source = None
            self._close_quietly(source)
            self._note_progress()

    def _wait_out(self, seconds: float) -> bool:
        """Wait ``seconds`` unless stopped (then True), showing progress meanwhile."""
        deadline = time.monotonic() + seconds
        step = min(BACKOFF_PROGRESS_S, self._stuck_after_s / 4)
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stopping.wait(min(remaining, step)):
                return True
            self._note_progress()
        return self._stopping.is_set()

    def _close_quietly(self, source: SourceT) -> None:
        try:
            self._close_source(source)
        except Exception:
            self.logger.exception("%s: closing the %s failed", self.name, self.SOURCE_KIND)
