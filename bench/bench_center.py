"""Center ingest rate: events/s stored exactly once by center workers, into SQLite and PostgreSQL.

    python bench/bench_center.py [--events 20000] [--gateways 500] [--workers 1 2]
                                 [--engines sqlite postgresql]

Each run: a private mosquitto, a fresh database (SQLite WAL synchronous=FULL
in a temp directory; a private PostgreSQL with fsync on), N worker processes
(``edge112 center``, shared subscription, HTTP off), and one publisher
process that sends the events of ``--gateways`` simulated gateways (call
events and line status, contract payloads from ``gateway.events.encode``) at
QoS 1 as fast as the broker takes them. The rate is events stored (counted
in the database) divided by the time from the first publish to the last row.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from center.storage.private_postgres import PrivatePostgres  # noqa: E402
from gateway.broker import PrivateBroker  # noqa: E402


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
    client.max_inflight_messages_set(1000)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--gateways", type=int, default=500)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--engines", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    feed = build_feed(args.events, args.gateways)
    postgres = PrivatePostgres(durable=True).start() if "postgresql" in args.engines else None
    try:
        print(f"center ingest: {len(feed)} events from {args.gateways} gateways, QoS 1")
        print(f"{'engine':12} {'workers':>7} {'events/s':>10}")
        for engine_name in args.engines:
            rates = {}
            for workers in args.workers:
                rates[workers] = run_once(engine_name, workers, feed, postgres)
                print(f"{engine_name:12} {workers:7d} {rates[workers]:10,.0f}", flush=True)
            if 1 in rates and 2 in rates:
                print(f"{engine_name:12} two workers / one: {rates[2] / rates[1]:.2f}x")
    finally:
        if postgres is not None:
            postgres.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
