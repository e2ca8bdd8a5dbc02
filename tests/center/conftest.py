"""Fixtures for the center: a private PostgreSQL per session, a database per test on both engines.

* ``postgres_server`` (session): ``center.storage.private_postgres`` on a free
  loopback port, fsync off (tests only). Missing binaries skip the test with
  the reason, or fail it with ``EDGE112_REQUIRE_TOOLS=1`` (CI).
* ``database_url``: parametrised ``sqlite`` / ``postgresql``: a fresh SQLite
  file, or a fresh schema on the session's server.
* ``database``: an engine on it with the schema migrated.
* ``make_event``: contract payloads built by ``gateway.events.encode``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from center.storage.database import migrate, open_engine
from center.storage.private_postgres import PostgresUnavailable, PrivatePostgres
from gateway.events import (
    CallAbandoned,
    CallAnswered,
    CallAudioSummary,
    CallEnded,
    CallOffered,
    EndCause,
    Event,
    LineStatus,
    Presentation,
    encode,
    topic_for,
)
from gateway.ids import uuid7_str
from tests.conftest import REQUIRE_TOOLS_ENV, tools_required

ENGINES = ["sqlite", "postgresql"]
_schema_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePostgres]:
    try:
        server = PrivatePostgres(tmp_path_factory.mktemp("postgres"), durable=False).start()
    except PostgresUnavailable as error:
        reason = f"PostgreSQL server not available (apt install postgresql): {error}"
        if tools_required():
            pytest.fail(f"{reason}; {REQUIRE_TOOLS_ENV} is set", pytrace=False)
        pytest.skip(reason)
    yield server
    server.close()


def _url_for(engine_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if engine_name == "sqlite":
        return f"sqlite:///{tmp_path / 'center.db'}"
    server: PrivatePostgres = request.getfixturevalue("postgres_server")
    return server.create_schema(f"t{next(_schema_numbers)}")


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _url_for(request.param, request, tmp_path)


@pytest.fixture
def database(database_url: str) -> Iterator[Engine]:
    engine = open_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


REGION = "64.74"
GATEWAY = "bontang-01"


class EventFactory:
    """Contract payloads (the exact bytes a gateway publishes) with a running seq."""

    def __init__(self, gateway_id: str = GATEWAY, region: str = REGION) -> None:
        self.gateway_id = gateway_id
        self.region = region
        self.seq = 0

    def payload(self, event: Event, seq: int | None = None) -> tuple[str, bytes]:
        if seq is None:
            self.seq += 1
            seq = self.seq
        topic = topic_for(self.region, self.gateway_id, event.TYPE.value)
        return topic, encode(event, seq=seq, gateway_id=self.gateway_id, region=self.region)

    def call(
        self,
        *,
        answered: bool = True,
        ghost: bool = False,
        ring_time_ms: int = 3000,
        at: datetime | None = None,
    ) -> list[Event]:
        """The events of one call, in the order a gateway emits them."""
        call_id = uuid7_str()
        moment = at or datetime.now(UTC)
        common: dict[str, Any] = {"call_id": call_id, "line": "gsm0", "observed_at": moment}
        events: list[Event] = [
            CallOffered(
                **common, number="+6281200000000", presentation=Presentation.ALLOWED, ring_count=1
            )
        ]
        if not answered:
            events.append(
                CallAbandoned(
                    **common, ring_count=2, ring_time_ms=ring_time_ms, cause=EndCause.REMOTE_HANGUP
                )
            )
            return events
        events += [
            CallAnswered(**common, ring_count=1, ring_time_ms=ring_time_ms),
            CallEnded(**common, duration_ms=20_000, cause=EndCause.REMOTE_HANGUP),
            CallAudioSummary(
                **common,
                duration_ms=20_000,
                speech_ratio=0.0 if ghost else 0.6,
                first_speech_ms=None if ghost else 800,
                level_dbov=-60.0 if ghost else -20.0,
                noise_floor_dbov=-70.0,
                clipped_samples=0,
                digits="",
                silent=ghost,
                category="ghost" if ghost else None,  # type: ignore[arg-type]
                recording=None,
                silent_call=None,
            ),
        ]
        return events

    def line_status(self, state: str = "up", line: str = "gsm0") -> LineStatus:
        return LineStatus(line=line, state=state, detail="registered", signal_dbm=-71)


@pytest.fixture
def make_events() -> Callable[..., EventFactory]:
    return EventFactory
