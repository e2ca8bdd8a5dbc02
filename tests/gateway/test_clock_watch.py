"""Events say when the clock could not be trusted; alarms say when that changes."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.clock_watch import ClockWatch
from gateway.events import CallOffered, Event, GatewayAlarm, Presentation, encode, envelope
from gateway.outbox import Outbox
from tests.conftest import validate_event


def offered() -> CallOffered:
    return CallOffered(
        call_id="c1", line="gsm0", number=None, presentation=Presentation.UNAVAILABLE, ring_count=1
    )


def test_the_mark_is_in_the_envelope_only_while_unsynchronised() -> None:
    event = offered()
    marked = json.loads(encode(event, seq=1, gateway_id="g", region="64.74", clock_unsynced=True))
    plain = json.loads(encode(event, seq=1, gateway_id="g", region="64.74"))
    assert marked["clock_unsynced"] is True and "clock_unsynced" not in plain
    assert marked == envelope(event, seq=1, gateway_id="g", region="64.74", clock_unsynced=True)
    validate_event(marked)
    validate_event(plain)


def test_the_watch_marks_the_outbox_and_raises_one_alarm_per_change(tmp_path: Path) -> None:
    states: list[bool | None] = [False, False, None, True, True, False]
    emitted: list[Event] = []
    with Outbox(tmp_path / "outbox.db", gateway_id="g", region="64.74") as outbox:

        def mark(unsynced: bool) -> None:
            outbox.clock_unsynced = unsynced

        watch = ClockWatch(mark=mark, emit=emitted.append, probe=lambda: states.pop(0))
        watch.check()  # unsynchronised at start
        first = outbox.put(offered())
        watch.check()  # still: nothing new
        watch.check()  # unknown counts as synchronised
        second = outbox.put(offered())
        watch.check()
        watch.check()
        watch.check()  # lost again
        reader = outbox.reader()
        rows = {row.seq: json.loads(row.payload) for row in reader.peek(10)}
        reader.close()
    assert rows[first]["clock_unsynced"] is True
    assert "clock_unsynced" not in rows[second]
    codes = [event.code for event in emitted if isinstance(event, GatewayAlarm)]
    assert codes == ["clock_unsynchronised", "clock_synchronised", "clock_unsynchronised"]
    synced = [e for e in emitted if isinstance(e, GatewayAlarm) and e.code == "clock_synchronised"]
    assert isinstance(synced[0].detail["step_s"], float)
