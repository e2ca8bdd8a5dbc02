"""The demo is an example a newcomer runs first: it must keep working and tell the truth."""

from __future__ import annotations

import io
import re

import pytest

from gateway.demo import run_demo


@pytest.mark.requires_tool("mosquitto")  # the demo starts its own broker
def test_demo_delivers_every_committed_event_with_audio() -> None:
    out = io.StringIO()
    assert run_demo(duration_s=10.0, calls_per_minute=30.0, out=out) == 0
    text = out.getvalue()
    committed = int(re.search(r"committed to the outbox:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    delivered = int(re.search(r"delivered to the subscriber:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    assert committed > 5 and delivered == committed
    assert re.search(r"lost:\s+0\b", text)
    assert "call.offered" in text and "call.audio_summary" in text
    assert ", unknown" not in text, "the demo lets calls finish before it stops the drivers"
