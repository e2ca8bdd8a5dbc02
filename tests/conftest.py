"""Shared fixtures: a real mosquitto on a free loopback port, feed monitors, schema checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from gateway.broker import PrivateBroker
from gateway.consumer import FeedMonitor
from gateway.contract import all_schemas


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    with PrivateBroker(workdir=tmp_path / "broker") as running:
        yield running


@pytest.fixture
def monitor(broker: PrivateBroker) -> Iterator[FeedMonitor]:
    with FeedMonitor(broker.url) as feed:
        yield feed


def _registry() -> Registry:
    resources = [(body["$id"], Resource.from_contents(body)) for body in all_schemas().values()]
    registry: Registry = Registry().with_resources(resources)
    return registry


_REGISTRY = _registry()


def validate_event(event: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless ``event`` matches its type's schema."""
    schemas = all_schemas()
    assert event["type"] in schemas, f"no schema for {event['type']}"
    jsonschema.Draft202012Validator(schemas[event["type"]], registry=_REGISTRY).validate(event)
