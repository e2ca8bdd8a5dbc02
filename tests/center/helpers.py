"""Helpers for center tests: configs, a QoS 1 publisher, a subscriber for center alarms."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import Engine, func, select

from center.config import CenterConfig, parse_center_config
from center.storage import tables
from gateway.broker import free_port


def config_text(
    broker_url: str,
    database_url: str,
    *,
    center_id: str = "center-1",
    http: bool = False,
    port: int | None = None,
    token: str | None = None,
    extra: str = "",
) -> str:
    listen = f"127.0.0.1:{port or free_port()}"
    token_line = f'desk_token = "{token}"\n' if token else ""
    return (
        f'[center]\nid = "{center_id}"\nlog_level = "warning"\n'
        f'[database]\nurl = "{database_url}"\n'
        f'[mqtt]\nurl = "{broker_url}"\nreconnect_min_s = 0.1\nreconnect_max_s = 0.5\n'
        f'[http]\nenabled = {"true" if http else "false"}\nlisten = "{listen}"\n{token_line}'
        "[completeness]\ncheck_interval_s = 0.2\n" + extra
    )


def center_config(broker_url: str, database_url: str, **options: Any) -> CenterConfig:
    return parse_center_config(config_text(broker_url, database_url, **options), "<test>")


def write_config(path: Path, broker_url: str, database_url: str, **options: Any) -> Path:
    path.write_text(config_text(broker_url, database_url, **options))
    return path


class Publisher:
    """Publishes prepared (topic, payload) pairs at QoS 1 and waits for every PUBACK."""

    def __init__(self, url: str) -> None:
        host, port = url.rsplit(":", 1)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.max_inflight_messages_set(100)
        self.client.connect(host.split("//")[1], int(port))
        self.client.loop_start()

    def publish(
        self, messages: list[tuple[str, bytes]], *, retain: bool = False, timeout: float = 30
    ) -> None:
        infos = [self.client.publish(t, p, qos=1, retain=retain) for t, p in messages]
        for info in infos:
            info.wait_for_publish(timeout)
            assert info.is_published(), "the broker did not acknowledge a publish"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class TopicRecorder:
    """Records every message on a topic filter (center alarms, commands)."""

    def __init__(self, url: str, topic_filter: str) -> None:
        host, port = url.rsplit(":", 1)
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host.split("//")[1], int(port))
        self.client.loop_start()
        assert self._subscribed.wait(10), "could not subscribe"

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, json.loads(message.payload)))

    def received(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def count_rows(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(table).where(*where)).scalar() or 0
        )


def stored_events(engine: Engine) -> int:
    return count_rows(engine, tables.events)
