"""The published contract: topic layout and one JSON Schema per event type.

The schemas ship as package data in ``gateway/schemas/``; ``envelope.json``
holds the fields every event carries and each ``<type>.json`` refers to it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from gateway.events import EventType


def schema_text(name: str) -> str:
    return (resources.files("gateway") / "schemas" / f"{name}.json").read_text()


@cache
def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of an event type (``"call.offered"``) or of ``"envelope"``."""
    loaded: dict[str, Any] = json.loads(schema_text(name))
    return loaded


def all_schemas() -> dict[str, dict[str, Any]]:
    return {name: schema(name) for name in ["envelope", *(t.value for t in EventType)]}
