"""The demo is an example a newcomer runs first: it must keep working and tell the truth."""

from __future__ import annotations

import io
import re

import pytest

from gateway.demo import run_demo


def figure(text: str, pattern: str) -> int:
    found = re.search(pattern, text)
    assert found, f"the summary has no {pattern!r}:\n{text}"
    return int(found.group(1))


@pytest.mark.slow  # ten seconds of calls, then the drain
@pytest.mark.requires_tool("mosquitto")  # the demo starts its own broker
def test_demo_delivers_every_committed_event_with_audio() -> None:
    out = io.StringIO()
    assert run_demo(duration_s=10.0, calls_per_minute=30.0, out=out) == 0
    text = out.getvalue()
    committed = figure(text, r"committed to the outbox:\s+(\d+)")
    delivered = figure(text, r"delivered to the subscriber:\s+(\d+)")
    assert committed > 5 and delivered == committed
    assert re.search(r"lost:\s+0\b", text)
    assert "call.offered" in text and "call.audio_summary" in text
    assert ", unknown" not in text, "the demo lets calls finish before it stops the drivers"

    # the center beside the gateway: its dashboard, and its own completeness check
    assert re.search(r"regional center: dashboard http://127\.0\.0\.1:\d+/", text)
    assert figure(text, r"events stored:\s+(\d+)") == committed
    assert figure(text, r"highest contiguous seq:\s+(\d+)") == committed
    assert re.search(r"gaps:\s+none\b", text)
    assert figure(text, r"duplicates \(stored once\):\s+(\d+)") == 0
    reported = figure(text, r"calls reported \(call\.offered\):\s+(\d+)")
    assert figure(text, r"calls by category:\s+(\d+) in 64\.74") == reported
    rang = figure(text, r"; (\d+) rang the gateway")
    cancelled = re.search(r"(\d+) 'cancelled': .* never rang", text)
    placed = figure(text, r"calls placed by the simulated modems: (\d+)")
    assert placed == rang + (int(cancelled.group(1)) if cancelled else 0)

    # the simulated board's line LEDs change with the calls
    led_lines = [line for line in text.splitlines() if re.match(r"\s+[\d:.]+\s+LEDs ", line)]
    assert any("gsm0 ringing" in line or "gsm1 ringing" in line for line in led_lines)
    assert any(" in call" in line for line in led_lines)
    assert led_lines and "gsm0 ready  gsm1 ready  e1a ready" in led_lines[-1]
