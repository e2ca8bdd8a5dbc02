"""Fixtures of the GSM driver tests: the modem's link path and the schema-checked event log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.events import envelope
from tests.conftest import validate_event
from tests.drivers.gsm.support import EventLog


@pytest.fixture
def link(tmp_path: Path) -> Path:
    return tmp_path / "gsm0"


@pytest.fixture
def log() -> Iterator[EventLog]:
    """The events of one test; at the end each must match the published JSON Schema."""
    events = EventLog()
    yield events
    for seq, event in enumerate(events.all(), start=1):
        validate_event(envelope(event, seq=seq, gateway_id="test-01", region="64.74"))
