"""Center ingest rate: events/s stored exactly once by center workers, into SQLite and PostgreSQL.

    python bench/bench_center.py [--events 20000] [--gateways 500] [--workers 1 2]
                                 [--engines postgresql sqlite] [--dashboard-calls 3000000]
                                 [--dashboard-only]

Each figure comes with baselines measured in the same run, on the same
(shared) cores, so a loaded machine shows as lower figures on both sides:

* ``feed alone``: the publisher and the broker with a plain QoS 1 subscriber
  that stores nothing: the most any worker could receive here.
* ``driver alone``: the same event rows into a fresh ``events`` table with the
  database driver only (PostgreSQL COPY, SQLite executemany; one transaction
  per 500 rows): the most the database takes here.
* ``store in-process``: ``EventStore.store`` (checks excluded) on the checked
  feed in 500-message batches, no MQTT.
* ``N worker(s)``: end to end. A private mosquitto, a fresh database (SQLite
  WAL synchronous=FULL in a temp directory; a private PostgreSQL with fsync
  on), N worker processes (``edge112 center``, shared subscription, HTTP off),
  one publisher process sending the events of ``--gateways`` simulated
  gateways (contract payloads from ``gateway.events.encode``) at QoS 1 as fast
  as the broker takes them. Rate: events stored (counted in the database) over
  the time from the first publish to the last row.
* ``dashboard``: the overview's queries (calls per kabupaten/kota and category,
  answer-time percentiles, escalations) for one month of a whole country's
  calls, in PostgreSQL: ``--dashboard-calls`` calls rows made by
  ``generate_series`` over 514 regions (not timed), then the median of 5 runs.
  The dashboard reads ``calls``, not ``events``: the default 3,000,000 calls
  stand for 10 million events (the feed above has 3.3 events per call). The
  triggers fill the rollups as the rows go in (timed with the generation);
  the same queries are then timed reading ``calls`` only (the baseline).
  ``--dashboard-only`` runs just this part.

On a 2-core machine the publisher, the broker, the database and the workers
share the cores: the figures are a floor, not a ceiling.
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from center.storage.private_postgres import PrivatePostgres  # noqa: E402
from gateway.broker import PrivateBroker  # noqa: E402

# paho walks its in-flight list on every PUBACK: a window of 1,000 made the publisher the
# bottleneck (about 2,800 events/s here); 20 keeps each PUBACK cheap (docs KNOWLEDGE section 5).
PUBLISH_WINDOW = 20


def build_feed(events: int, gateways: int) -> list[tuple[str, bytes]]:
    from tests.center.conftest import EventFactory

    factories = [EventFactory(f"gw-{n:03d}", "64.74") for n in range(gateways)]
    feed: list[tuple[str, bytes]] = []
    index = 0
    while len(feed) < events:
        factory = factories[index % gateways]
        index += 1
        for event in factory.call(answered=index % 4 != 0):
            feed.append(factory.payload(event))
        feed.append(factory.payload(factory.line_status()))
    return feed[:events]


def publish(
    url: str, feed: list[tuple[str, bytes]], started: multiprocessing.synchronize.Event
) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    host, port = url.split("//")[1].split(":")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(PUBLISH_WINDOW)
    client.max_queued_messages_set(0)
    client.connect(host, int(port))
    client.loop_start()
    started.set()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in feed]
    for info in infos:
        info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


def stored(url: str) -> int:
    from sqlalchemy import func, select

    from center.storage import tables
    from center.storage.database import open_engine

    engine = open_engine(url, for_reads=True)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(select(func.count()).select_from(tables.events)).scalar() or 0
            )
    finally:
        engine.dispose()


def run_once(
    engine_name: str, workers: int, feed: list[tuple[str, bytes]], postgres: PrivatePostgres | None
) -> float:
    work = Path(tempfile.mkdtemp(prefix="edge112-bench-center-"))
    with PrivateBroker(workdir=work / "broker") as broker:
        if engine_name == "sqlite":
            url = f"sqlite:///{work / 'center.db'}"
        else:
            assert postgres is not None
            url = postgres.create_database(
                f"bench_{engine_name}_{workers}_{int(time.time() * 1000)}"
            )
        processes = []
        for n in range(workers):
            config = work / f"w{n}.toml"
            config.write_text(
                f'[center]\nid = "bench-{n}"\nlog_level = "warning"\n'
                f'[database]\nurl = "{url}"\n[mqtt]\nurl = "{broker.url}"\n'
                "[http]\nenabled = false\n"
            )
            process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "center", "--config", str(config)],
                cwd=REPO,
                stdout=subprocess.PIPE,
            )
            assert process.stdout is not None
            line = process.stdout.readline()
            if b"ready" not in line:
                raise RuntimeError(f"worker {n} did not start: {line!r}")
            processes.append(process)
        started = multiprocessing.Event()
        publisher = multiprocessing.Process(target=publish, args=(broker.url, feed, started))
        publisher.start()
        started.wait(30)
        begin = time.monotonic()
        deadline = begin + 600
        while stored(url) < len(feed) and time.monotonic() < deadline:
            time.sleep(0.1)
        elapsed = time.monotonic() - begin
        count = stored(url)
        publisher.join(60)
        for process in processes:
            process.terminate()
            process.wait(30)
        if count != len(feed):
            raise RuntimeError(f"{engine_name}: stored {count} of {len(feed)}")
        return len(feed) / elapsed


def feed_alone(feed: list[tuple[str, bytes]]) -> float:
    """Publisher -> broker -> a plain QoS 1 subscriber (paho acks at once): events/s."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    work = Path(tempfile.mkdtemp(prefix="edge112-bench-feed-"))
    with PrivateBroker(workdir=work / "broker") as broker:
        host, port = broker.url.split("//")[1].split(":")
        received = 0
        done = threading.Event()
        subscribed = threading.Event()

        def on_message(*_args: object) -> None:
            nonlocal received
            received += 1
            if received == len(feed):
                done.set()

        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        client.on_connect = lambda c, *_: c.subscribe("edge112/v1/#", qos=1)
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_message = on_message
        client.connect(host, int(port))
        client.loop_start()
        subscribed.wait(10)
        started = multiprocessing.Event()
        publisher = multiprocessing.Process(target=publish, args=(broker.url, feed, started))
        publisher.start()
        started.wait(30)
        begin = time.monotonic()
        done.wait(600)
        elapsed = time.monotonic() - begin
        publisher.join(60)
        client.disconnect()
        client.loop_stop()
        return received / elapsed


def checked_feed(feed: list[tuple[str, bytes]]) -> list[Any]:
    from center.ingest.validate import check_message

    now = datetime.now(UTC)
    return [check_message(topic, payload, now) for topic, payload in feed]


def fresh_url(engine_name: str, postgres: PrivatePostgres | None, label: str) -> str:
    if engine_name == "sqlite":
        return f"sqlite:///{Path(tempfile.mkdtemp(prefix='edge112-bench-db-')) / 'center.db'}"
    assert postgres is not None
    return postgres.create_database(f"bench_{label}_{int(time.time() * 1000)}")


def driver_alone(engine_name: str, url: str, checked: list[Any]) -> float:
    """The feed's event rows into ``events`` with the driver only, 500 rows a transaction."""
    import orjson

    from center.storage.database import migrate, open_engine

    engine = open_engine(url)
    migrate(engine)
    rows = [
        (
            m.event_id, m.gateway_id, m.region, m.seq, m.type, m.ts, m.received_at,
            m.counted_at, m.clock_suspect, m.seq == 0, m.seq == 0,
            orjson.dumps(m.data).decode(), "bench",
        )
        for m in checked
        if hasattr(m, "event_id")
    ]  # fmt: skip
    columns = (
        "event_id, gateway_id, region, seq, type, ts, received_at, counted_at, "
        "clock_suspect, unsequenced, held, data, worker"
    )
    begin = time.perf_counter()
    with engine.connect() as connection:
        driver: Any = connection.connection.driver_connection
        connection.commit()
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            if engine_name == "postgresql":
                copying = f"COPY events ({columns}) FROM STDIN"
                with driver.cursor() as cursor, cursor.copy(copying) as copy:
                    for row in chunk:
                        copy.write_row(row)
                driver.commit()
            else:
                chunk = [
                    (*r[:5], *(t.isoformat(" ", "microseconds")[:26] for t in r[5:8]), *r[8:])
                    for r in chunk
                ]
                driver.execute("BEGIN IMMEDIATE")
                driver.executemany(
                    f"INSERT INTO events ({columns}) VALUES ({', '.join('?' * 13)})", chunk
                )
                driver.execute("COMMIT")
    elapsed = time.perf_counter() - begin
    engine.dispose()
    return len(rows) / elapsed


def store_in_process(url: str, checked: list[Any]) -> float:
    from center.ingest.store import EventStore
    from center.storage.database import migrate, open_engine

    engine = open_engine(url)
    migrate(engine)
    store = EventStore(engine, "bench")
    begin = time.perf_counter()
    for start in range(0, len(checked), 500):
        store.store(checked[start : start + 500])
    elapsed = time.perf_counter() - begin
    engine.dispose()
    return len(checked) / elapsed


DASHBOARD_SQL = """
INSERT INTO calls (call_id, gateway_id, region, line, presentation, counted_at, offered_at,
                   answered_at, ended_at, ring_time_ms, duration_ms, cause, abandoned, ghost,
                   gateway_category, desk_category, updated_at)
SELECT 'c' || n, 'gw-' || (n %% 2000), r.code, 'gsm0', 'allowed',
       t, t, CASE WHEN n %% 4 <> 0 THEN t + interval '3 s' END, t + interval '30 s',
       1000 + (n * 7919) %% 20000, 20000, 'remote_hangup', n %% 4 = 0, n %% 10 = 1,
       CASE WHEN n %% 4 = 0 THEN 'terputus' WHEN n %% 10 = 1 THEN 'ghost' END,
       (ARRAY['darurat', 'informasi', 'prank', NULL, NULL])[1 + n %% 5], t
FROM generate_series(1::bigint, %(calls)s::bigint) AS n
CROSS JOIN LATERAL (SELECT timestamptz '2026-11-01 00:00+07'
                    + (n::float8 / %(calls)s) * interval '30 days' AS t) AS at
JOIN (SELECT code, row_number() OVER (ORDER BY code) - 1 AS i FROM unnest(%(codes)s::text[])
      AS code) AS r ON r.i = n %% %(regions)s
"""


def dashboard(postgres: PrivatePostgres, calls: int) -> tuple[float, float, float]:
    """(seconds to generate, median ms of the overview queries, the same reading only ``calls``)
    for a month of calls."""
    from center import rollup, stats
    from center.regions import regions
    from center.storage.database import migrate, open_engine

    url = postgres.create_database(f"bench_dashboard_{int(time.time() * 1000)}")
    engine = open_engine(url)
    migrate(engine)
    codes = sorted(regions())  # the 514 kabupaten/kota
    begin = time.perf_counter()
    with engine.begin() as connection:
        driver: Any = connection.connection.driver_connection
        with driver.cursor() as cursor:
            cursor.execute(DASHBOARD_SQL, {"calls": calls, "codes": codes, "regions": len(codes)})
    with engine.connect() as connection:
        connection.connection.driver_connection.autocommit = True  # type: ignore[union-attr]
        for table in ("calls", "call_rollup", "ring_rollup"):
            connection.exec_driver_sql(f"VACUUM ANALYZE {table}")
    generated = time.perf_counter() - begin
    start = datetime(2026, 11, 1, tzinfo=timezone(timedelta(hours=7)))
    end = start + timedelta(days=30)

    def median_ms() -> float:
        timings = []
        for _ in range(5):
            begin = time.perf_counter()
            with engine.connect() as connection:
                stats.calls_by_region(connection, start, end)
                stats.answer_time(connection, start, end)
                stats.escalations_by_agency(connection, start, end)
            timings.append((time.perf_counter() - begin) * 1000)
        return sorted(timings)[len(timings) // 2]

    with_rollup = median_ms()
    split = rollup.split_period
    rollup.split_period = lambda first, last: ([], [(first, last)])  # type: ignore[assignment]
    try:  # the baseline: the same answers counted from calls only
        scan_only = median_ms()
    finally:
        rollup.split_period = split
    engine.dispose()
    return generated, with_rollup, scan_only


def print_dashboard(postgres: PrivatePostgres, calls: int) -> None:
    generated, query_ms, scan_ms = dashboard(postgres, calls)
    print(
        f"dashboard: one month, {calls:,} calls (~{calls * 10 / 3 / 1e6:.1f} M events) in "
        f"514 regions (generated and rolled up in {generated:.0f} s): overview queries "
        f"{query_ms:,.0f} ms with the rollup, {scan_ms:,.0f} ms from calls only (median of 5)",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--gateways", type=int, default=500)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--engines", nargs="+", default=["postgresql", "sqlite"])
    parser.add_argument("--dashboard-calls", type=int, default=3_000_000, help="0: skip")
    parser.add_argument("--dashboard-only", action="store_true", help="skip the ingest runs")
    args = parser.parse_args()
    if args.dashboard_only:
        server = PrivatePostgres(durable=True).start()
        try:
            print_dashboard(server, args.dashboard_calls)
        finally:
            server.close()
        return 0
    feed = build_feed(args.events, args.gateways)
    checked = checked_feed(feed)
    postgres = PrivatePostgres(durable=True).start() if "postgresql" in args.engines else None
    try:
        print(f"center ingest: {len(feed)} events from {args.gateways} gateways, QoS 1")
        print(f"{'engine':11} {'what':40} {'events/s':>9}")
        print(f"{'mqtt':11} {'feed alone (publisher, broker, subscriber)':40} "
              f"{feed_alone(feed):9,.0f}", flush=True)  # fmt: skip
        for engine_name in args.engines:
            rate = driver_alone(engine_name, fresh_url(engine_name, postgres, "driver"), checked)
            print(f"{engine_name:11} {'driver alone (bulk insert, no checks)':40} {rate:9,.0f}")
            rate = store_in_process(fresh_url(engine_name, postgres, "store"), checked)
            print(f"{engine_name:11} {'store in-process (EventStore, no MQTT)':40} {rate:9,.0f}")
            rates = {}
            for workers in args.workers:
                rates[workers] = run_once(engine_name, workers, feed, postgres)
                what = f"{workers} worker{'s' if workers > 1 else ''} end to end"
                print(f"{engine_name:11} {what:40} {rates[workers]:9,.0f}", flush=True)
            if 1 in rates and 2 in rates:
                print(f"{engine_name:11} {'two workers / one':40} {rates[2] / rates[1]:8.2f}x")
        if postgres is not None and args.dashboard_calls:
            print_dashboard(postgres, args.dashboard_calls)
    finally:
        if postgres is not None:
            postgres.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
