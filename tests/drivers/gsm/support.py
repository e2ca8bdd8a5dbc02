"""Helpers for GSM driver tests: the event log a driver emits to, running a driver, waiting.

Fixtures (``link``, ``log``) live in ``conftest.py`` beside this file.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from drivers.gsm.modem import GsmModemDriver
from gateway.events import (
    CallAbandoned,
    CallAnswered,
    CallEnded,
    CallOffered,
    Event,
    LineStatus,
)

CALL_EVENTS = (CallOffered, CallAnswered, CallEnded, CallAbandoned)


class EventLog:
    """The driver's emit callback: keeps every event, thread-safely."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def all(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def of(self, *types: type[Event]) -> list[Any]:
        return [event for event in self.all() if isinstance(event, types)]

    def calls(self) -> list[Any]:
        return self.of(*CALL_EVENTS)


@contextlib.contextmanager
def running_driver(link: Path, log: EventLog, **options: Any) -> Iterator[GsmModemDriver]:
    settings: dict[str, Any] = {
        "poll_interval_s": 0.2,
        "signal_interval_s": 0.5,
        "reopen_backoff_s": 0.1,
        "reopen_backoff_max_s": 0.2,
        **options,
    }
    driver = GsmModemDriver("gsm0", str(link), log, **settings)
    driver.start()
    try:
        yield driver
    finally:
        driver.stop()


def wait_line_up(log: EventLog, wait_until, count: int = 1) -> None:
    wait_until(lambda: len([s for s in log.of(LineStatus) if s.state == "up"]) >= count)
