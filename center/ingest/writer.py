"""The writer thread: takes what the MQTT session received, stores it, hands back the acks.

::

    inbox ─▶ up to batch_max messages (whatever is waiting, no extra delay)
          ─▶ check_message each (validate.py) ─▶ EventStore.store (one transaction)
          ─▶ commit ─▶ session.ack_many (in arrival order) ─▶ listeners (live view)
          ─▶ center alarms raised by the batch ─▶ session.publish

One writer per worker owns the store's write transactions. A database that
is down holds the batch (retried inside ``EventStore.store``) and so holds the
acks: the broker keeps the messages (up to ``receive_maximum`` in flight).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from center.ingest.session import MqttSession, Received
from center.ingest.store import BatchResult, EventStore
from center.ingest.validate import (
    Checked,
    ClockRule,
    Reason,
    Rejected,
    check_message,
    warm_up,
)

log = logging.getLogger("edge112.center.writer")

IDLE_WAIT_S = 0.2


class IngestWriter:
    def __init__(
        self,
        store: EventStore,
        session: MqttSession,
        inbox: queue.Queue[Received],
        *,
        center_id: str,
        batch_max: int = 500,
        clock_rule: ClockRule | None = None,
    ) -> None:
        self.store = store
        self.session = session
        self.inbox = inbox
        self.center_id = center_id
        self.batch_max = batch_max
        self.clock_rule = clock_rule or ClockRule()
        self.batches = 0
        self.failed: BaseException | None = None
        self._listeners: list[Callable[[BatchResult], None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="center-writer", daemon=True)
        warm_up()  # before the worker says it is ready

    def add_listener(self, listener: Callable[[BatchResult], None]) -> None:
        """Called on the writer thread after each committed batch (keep it quick)."""
        self._listeners.append(listener)

    def start(self) -> IngestWriter:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self.inbox.get(timeout=IDLE_WAIT_S)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < self.batch_max:
                try:
                    batch.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            try:
                self._store(batch)
            except Exception as error:  # only when stopping during a database outage
                self.failed = error
                log.error(
                    "stopped with %d messages not stored (not acknowledged): %s", len(batch), error
                )
                return

    def _check(self, message: Received) -> Checked:
        try:
            return check_message(
                message.topic, message.payload, message.received_at, self.clock_rule
            )
        except Exception as error:  # a checker bug must not stop the feed: keep the message
            log.exception("checking a message failed")
            return Rejected(
                message.topic,
                message.payload,
                Reason.STORE_FAILED,
                f"check failed: {type(error).__name__}: {error}"[:500],
                message.received_at,
            )

    def _store(self, batch: list[Received]) -> None:
        checked = [self._check(m) for m in batch]
        result = self.store.store(checked, stop=self._stop.is_set)
        self.batches += 1
        self.session.ack_many(batch)
        if result.quarantined:
            log.warning("quarantined %s", dict(result.quarantined))
        for notice in result.alarms:
            log.warning("center alarm: %s", notice.message)
            self.session.publish(notice.topic(self.center_id), notice.payload(self.center_id))
        for listener in self._listeners:
            try:
                listener(result)
            except Exception:
                log.exception("listener failed")
