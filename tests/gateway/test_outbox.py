"""The outbox on a real SQLite file: seq, order, group commit, budget, recovery."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.events import (
    CallEnded,
    CallOffered,
    EndCause,
    Event,
    LineStatus,
    Presentation,
    Priority,
)
from gateway.outbox import Outbox, TelemetryRefused
from gateway.outbox_reader import OutboxReader
from gateway.outbox_schema import CURRENT_VERSION, SchemaTooNew, schema_version


def offered(n: int = 0) -> CallOffered:
    return CallOffered(
        call_id=f"call-{n}",
        line="gsm0",
        number=f"+62812000{n:05d}",
        presentation=Presentation.ALLOWED,
        ring_count=1,
    )


def telemetry(n: int = 0) -> LineStatus:
    return LineStatus(line="gsm0", state="up", detail=f"tick {n}", signal_dbm=-70)


def open_outbox(path: Path, **kwargs: object) -> Outbox:
    return Outbox(path, gateway_id="bontang-01", region="64.74", **kwargs)  # type: ignore[arg-type]


def payloads(path: Path) -> list[dict[str, object]]:
    with sqlite3.connect(path) as conn:
        return [
            json.loads(row[0]) for row in conn.execute("SELECT payload FROM events ORDER BY seq")
        ]


def test_seq_starts_at_1_is_contiguous_and_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with open_outbox(path) as outbox:
        seqs = [outbox.put(offered(n)) for n in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    with open_outbox(path) as outbox:
        assert outbox.put(offered(5)) == 6
    stored = payloads(path)
    assert [event["seq"] for event in stored] == [1, 2, 3, 4, 5, 6]
    assert stored[0]["gateway_id"] == "bontang-01" and stored[0]["region"] == "64.74"


def test_seq_is_never_reused_after_acknowledged_events_are_deleted(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with open_outbox(path) as outbox:
        seqs = [outbox.put(offered(n)) for n in range(3)]
        outbox.acknowledge(seqs)
        outbox.flush()
    with open_outbox(path) as outbox:
        assert outbox.reader().stats().pending == 0
        assert outbox.put(offered(9)) == 4


def test_wal_and_synchronous_full_by_default(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "outbox.db") as outbox:
        assert outbox._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert outbox._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert schema_version(outbox._conn) == CURRENT_VERSION


def test_a_burst_is_group_committed(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "outbox.db") as outbox:
        submissions = [outbox.submit(telemetry(n)) for n in range(2000)]
        assert submissions[-1].wait() == 2000
        assert outbox.counters["committed"] == 2000
        assert outbox.counters["transactions"] < 200  # one fsync per event would be 2000


def test_calls_leave_before_telemetry_and_fifo_within_a_priority(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "outbox.db") as outbox:
        for n in range(3):
            outbox.put(telemetry(n))
            outbox.put(offered(n))
        reader = outbox.reader()
        order = [(row.priority, row.seq) for row in reader.peek(10)]
    assert order == [(0, 2), (0, 4), (0, 6), (1, 1), (1, 3), (1, 5)]


def test_acknowledge_deletes_only_the_given_events(tmp_path: Path) -> None:
    done: list[list[int]] = []
    with open_outbox(tmp_path / "outbox.db") as outbox:
        for n in range(4):
            outbox.put(offered(n))
        outbox.acknowledge([1, 3], done.append)
        outbox.flush()
        assert [row.seq for row in outbox.reader().peek()] == [2, 4]
    assert done == [[1, 3]]


def test_over_budget_sheds_oldest_telemetry_and_says_which(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with open_outbox(path, max_bytes=60_000) as outbox:
        calls = [outbox.put(offered(n)) for n in range(20)]
        for n in range(400):
            try:
                outbox.put(telemetry(n))
            except TelemetryRefused:
                pytest.fail("telemetry should replace older telemetry, not be refused")
        stats = outbox.reader().stats()
        assert outbox.counters["shed"] > 0
        assert stats.pending_bytes <= 60_000
    stored = payloads(path)
    kept = {event["seq"] for event in stored}
    assert set(calls) <= kept, "a call event was evicted"
    alarms = [event for event in stored if event["type"] == "gateway.alarm"]
    shed_reported = {
        seq
        for alarm in alarms
        if alarm["data"]["code"] == "telemetry_shed"
        for first, last in alarm["data"]["detail"]["shed_seqs"]
        for seq in range(first, last + 1)
    }
    every_seq = set(range(1, max(kept) + 1))
    assert every_seq - kept == shed_reported, "every missing seq is named by an alarm"


def test_full_of_calls_refuses_telemetry_but_takes_calls(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with open_outbox(path, max_bytes=20_000) as outbox:
        taken = [outbox.put(offered(n)) for n in range(80)]  # more than the budget
        with pytest.raises(TelemetryRefused):
            outbox.put(telemetry())
        assert outbox.put(offered(999)) > max(taken)
        assert outbox.counters["refused"] == 1
    stored = payloads(path)
    codes = [e["data"]["code"] for e in stored if e["type"] == "gateway.alarm"]
    assert "outbox_over_budget" in codes and "outbox_full" in codes
    assert {e["seq"] for e in stored} == set(range(1, len(stored) + 1))


def _wreck(path: Path, start: int, length: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[start : start + length] = b"\x13" * length
    path.write_bytes(bytes(raw))


def test_a_damaged_page_costs_only_its_rows_and_the_alarm_names_them(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with open_outbox(path) as outbox:
        for n in range(300):
            outbox.put(offered(n))
    _wreck(path, path.stat().st_size - 3 * 4096, 4096)  # one leaf page of the events table
    with open_outbox(path) as outbox:
        outbox.flush()
        rows = outbox.reader().peek(1000)
    damaged = [p for p in tmp_path.iterdir() if p.name.startswith("outbox.db.damaged-")]
    assert any(p.suffix not in (".db-wal", ".db-shm") for p in damaged), "damaged file kept"
    alarm = json.loads(rows[-1].payload)
    assert alarm["type"] == "gateway.alarm" and alarm["data"]["code"] == "outbox_damaged"
    detail = alarm["data"]["detail"]
    recovered = {json.loads(row.payload)["seq"] for row in rows[:-1]}
    lost = {s for first, last in detail["unreadable_seqs"] for s in range(first, last + 1)}
    assert 0 < len(lost) < 300
    assert recovered | lost == set(range(1, 301)), "every seq is recovered or named as lost"
    assert alarm["seq"] == 301, "seq continues where it was"


def test_a_lost_database_never_reuses_a_seq(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with open_outbox(path) as outbox:
        for n in range(5):
            outbox.put(offered(n))
    path.write_bytes(b"this is not a database" * 100)  # and no readable meta table
    (tmp_path / "outbox.db-wal").unlink(missing_ok=True)
    with open_outbox(path) as outbox:
        outbox.flush()
        (row,) = outbox.reader().peek()
        next_seq = outbox.put(offered(6))
    alarm = json.loads(row.payload)
    assert alarm["data"]["code"] == "outbox_damaged"
    assert alarm["seq"] > 5 and next_seq == alarm["seq"] + 1
    assert alarm["data"]["detail"]["skipped_seqs"] == [[1, alarm["seq"] - 1]]


def test_a_newer_schema_is_refused_not_clobbered(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with open_outbox(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {CURRENT_VERSION + 1}")
    with pytest.raises(SchemaTooNew):
        open_outbox(path)


def test_reader_fetches_by_priority_after_a_cursor(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "outbox.db") as outbox:
        events: list[Event] = [
            offered(0),
            telemetry(1),
            CallEnded(call_id="x", line="gsm0", duration_ms=1, cause=EndCause.REMOTE_HANGUP),
        ]
        for event in events:
            outbox.put(event)
        reader: OutboxReader = outbox.reader()
        assert [r.seq for r in reader.fetch_after(int(Priority.EMERGENCY), 0, 10)] == [1, 3]
        assert [r.seq for r in reader.fetch_after(int(Priority.EMERGENCY), 1, 10)] == [3]
        assert [r.seq for r in reader.fetch_after(int(Priority.TELEMETRY), 0, 10)] == [2]


def test_a_refused_write_holds_call_events_announces_telemetry_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    """SQLite's own page limit stands in for a full disk here (fast); the real filesystems
    are in tests/gateway/test_storage_faults.py."""
    from gateway.events import GatewayAlarm
    from gateway.outbox import EventHeld, OutboxWriteFailed

    unkept: list[GatewayAlarm] = []
    path = tmp_path / "outbox.db"
    with open_outbox(path, on_unkept=unkept.append, reserve_bytes=0) as outbox:
        kept = [outbox.put(offered(n)) for n in range(10)]
        assert outbox._conn is not None
        pages = outbox._conn.execute("PRAGMA page_count").fetchone()[0]
        outbox._conn.execute(f"PRAGMA max_page_count = {pages}")  # the "disk" is now full
        big = CallOffered(
            call_id="big",
            line="gsm0",
            number="+62" + "1" * 5000,
            presentation=Presentation.ALLOWED,
            ring_count=1,
        )
        with pytest.raises(EventHeld, match="full"):
            outbox.submit(big).wait(timeout=2)
        assert outbox.fault is not None and outbox.fault.kind == "disk_full"
        with pytest.raises(OutboxWriteFailed, match="full") as refused:
            outbox.submit(LineStatus(line="gsm0", state="up", detail="x" * 5000)).wait(2)
        assert not isinstance(refused.value, EventHeld), "telemetry is not held"
        assert [held.event.event_id for held in outbox.held.snapshot()][-1] == big.event_id
        outbox._conn.execute("PRAGMA max_page_count = 1073741823")
        after = outbox.put(offered(2000))
    assert [alarm.data()["code"] for alarm in unkept] == ["event_not_kept"]
    assert unkept[0].data()["detail"]["type"] == "line.status"
    stored = payloads(path)
    assert set(kept) <= {event["seq"] for event in stored}, "nothing already queued was touched"
    by_id = {event["event_id"]: event for event in stored}
    assert big.event_id in by_id, "the held call event was stored once the disk took writes"
    assert by_id[big.event_id]["seq"] < after
    codes = [event["data"].get("code") for event in stored if event["type"] == "gateway.alarm"]
    assert codes == ["storage_fault", "storage_recovered"]


def test_acknowledge_now_deletes_in_the_callers_thread_only_when_the_writer_is_idle(
    tmp_path: Path,
) -> None:
    with open_outbox(tmp_path / "outbox.db") as outbox:
        seqs = [outbox.put(offered(n)) for n in range(4)]
        assert outbox.acknowledge_now(seqs[:2])
        assert [row.seq for row in outbox.reader().peek()] == seqs[2:]
        with outbox._write_lock:  # the writer is in the middle of a transaction
            assert not outbox.acknowledge_now(seqs[2:])
        assert [row.seq for row in outbox.reader().peek()] == seqs[2:]
        assert outbox.counters["acknowledged"] == 2


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    garbage=st.one_of(
        st.binary(max_size=600),
        st.builds(
            lambda count, body: b"edge112-held 1 " + count + b"\n" + body,
            st.sampled_from([b"3", b"-1", b"x", b"99999999999999999999", b""]),
            st.binary(max_size=400),
        ),
    )
)
def test_a_damaged_held_journal_never_stops_the_outbox_nor_touches_the_queue(
    tmp_path_factory: pytest.TempPathFactory, garbage: bytes
) -> None:
    """The journal of held events is read back at start: whatever it holds, the outbox
    starts, the queue is untouched, and what could not be read back is counted."""
    path = tmp_path_factory.mktemp("journal") / "outbox.db"
    with open_outbox(path) as outbox:
        queued = [outbox.put(offered(n)) for n in range(3)]
    path.with_name("outbox.db.held").write_bytes(garbage)
    with open_outbox(path) as outbox:
        outbox.flush()
        assert outbox.writer_alive
        seq = outbox.put(offered(99))
    stored = payloads(path)
    assert [event["seq"] for event in stored][:3] == queued, "nothing queued was touched"
    assert seq in {event["seq"] for event in stored}
    for alarm in (e for e in stored if e["data"].get("code") == "held_events_recovered"):
        detail = alarm["data"]["detail"]
        assert detail["recovered"] + detail["lost"] == detail["held"]
        assert detail["lost"] >= 0
