"""What tells the dashboards that something changed: a poller of the database, for SSE.

The database is the one place every worker writes to, so a dashboard served
by one worker sees what the others stored: a thread reads a few cheap maxima
(``ChangeFeed.POLL_S``, or at once when this worker's writer commits) and
bumps ``version`` when they move. Each server-sent-event stream waits for the
version to change and sends ``event: change`` with what moved; the page then
fetches what it shows again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Engine, func, select

from center.storage import tables

log = logging.getLogger("edge112.center.live")


class ChangeFeed:
    POLL_S = 0.5
    MIN_POLL_S = 0.1  # at most this often, however often writers commit (each poll: 6 queries)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.version = 0
        self.changed: dict[str, bool] = {}
        self._token: dict[str, Any] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="center-live", daemon=True)

    def start(self) -> ChangeFeed:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def notify(self, *_args: object) -> None:
        """Something was committed here: look now rather than at the next poll."""
        self._wake.set()

    def _read_token(self) -> dict[str, Any]:
        events, calls, gateways, alarms, lines, quarantine = (
            tables.events,
            tables.calls,
            tables.gateways,
            tables.alarms,
            tables.lines,
            tables.quarantine,
        )
        with self.engine.connect() as connection:
            return {
                "events": connection.execute(select(func.max(events.c.id))).scalar(),
                "calls": connection.execute(select(func.max(calls.c.updated_at))).scalar(),
                "gateways": connection.execute(select(func.max(gateways.c.updated_at))).scalar(),
                "lines": connection.execute(
                    select(func.max(lines.c.seq), func.count()).select_from(lines)
                ).one()[:],
                "alarms": connection.execute(
                    select(func.max(alarms.c.id), func.count(alarms.c.cleared_at))
                ).one()[:],
                "quarantine": connection.execute(select(func.max(quarantine.c.id))).scalar(),
            }

    def poll_once(self) -> bool:
        token = self._read_token()
        if token == self._token:
            return False
        self.changed = {key: token[key] != self._token.get(key) for key in token}
        self._token = token
        self.version += 1
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as error:  # a database outage must not end the live view
                log.debug("live poll failed: %s", error)
            self._stop.wait(self.MIN_POLL_S)  # a commit meanwhile keeps _wake set
            self._wake.wait(self.POLL_S - self.MIN_POLL_S)
            self._wake.clear()
