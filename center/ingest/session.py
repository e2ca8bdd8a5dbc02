"""The center worker's MQTT session: one thread owns the paho client.

::

    connect (MQTT 5, clean_start off, session expiry, receive maximum)
      ─▶ SUBSCRIBE $share/{group}/edge112/v1/+/+/event/#   QoS 1 (the feed, split)
                   edge112/v1/+/+/status                   QoS 1 (every worker: retained)
      ─▶ loop: PUBLISH in ─▶ inbox (to the writer thread)
               acks from the writer ─▶ PUBACK (manual ack, paho 2 ``manual_ack=True``)
               publishes (center alarms, commands) ─▶ PUBLISH QoS 1 ─▶ on PUBACK: callback

* **At least once, acked after the commit.** paho does not acknowledge a
  message by itself (``manual_ack``); the writer hands back each message's
  ack only after its transaction committed. A worker killed before that gets
  the message again from the broker (its persistent session, same client id),
  and the store drops the duplicate.
* **Acks belong to a connection.** Each message carries the number of the
  connection it came on; an ack for an older connection is dropped (packet
  ids restart), the broker resends that message and the store drops it.
* **Why two subscriptions.** A broker sends no retained messages on a shared
  subscription (MQTT 5, 4.8.2), so the retained status of every gateway comes
  on a plain subscription that every worker has; storing a status twice is
  harmless. Only events are split between the workers.
* **Scale-out.** Workers with the same ``share_group`` split the events. A
  worker that dies keeps its session on the broker for ``session_expiry_s``:
  mosquitto 2 keeps its unacknowledged and queued messages for it rather than
  handing them to the other workers, so run each worker under a supervisor
  that restarts it with the same ``center.id`` (systemd ``Restart=always``).
* Nothing touches paho from another thread: others use the queues and a
  wake-up pipe.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import random
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from center.config import CenterMqttSettings
from gateway.events import TOPIC_ROOT

log = logging.getLogger("edge112.center.mqtt")

LOOP_TIMEOUT_S = 0.05  # select() timeout; the wake-up pipe cuts it short
CONNACK_TIMEOUT_S = 10.0
EVENT_FILTER = f"{TOPIC_ROOT}/+/+/event/#"
STATUS_FILTER = f"{TOPIC_ROOT}/+/+/status"


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    mid: int
    qos: int
    connection: int  # which connection it came on (acks for older ones are dropped)
    received_at: datetime


@dataclass
class SessionStats:
    connections: int = 0
    received: int = 0
    acked: int = 0
    stale_acks: int = 0
    published: int = 0
    publish_acked: int = 0
    last_error: str = ""
    connected: bool = False


@dataclass
class _Outgoing:
    topic: str
    payload: bytes
    on_acked: Callable[[], None] | None = None
    retain: bool = False


@dataclass
class _Connection:
    number: int
    client: mqtt.Client
    connected: threading.Event = field(default_factory=threading.Event)
    failed: str = ""
    pending: dict[int, _Outgoing] = field(default_factory=dict)


class MqttSession:
    """Receives the feed into ``inbox``; sends acks and publishes handed to it."""

    def __init__(
        self,
        settings: CenterMqttSettings,
        client_id: str,
        inbox: queue.Queue[Received],
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.inbox = inbox
        self.stats = SessionStats()
        group = settings.share_group  # "" (one worker): a plain subscription, see docs/center.md
        self.event_filter = f"$share/{group}/{EVENT_FILTER}" if group else EVENT_FILTER
        self._acks: collections.deque[tuple[int, int, int]] = collections.deque()
        self._outgoing: collections.deque[_Outgoing] = collections.deque()
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name="center-mqtt", daemon=True)
        self._connection_number = 0

    # ------------------------------------------------------------ other threads

    def start(self) -> MqttSession:
        self._thread.start()
        return self

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    def ack(self, message: Received) -> None:
        if message.qos > 0:
            self._acks.append((message.connection, message.mid, message.qos))
            self._wake()

    def ack_many(self, messages: list[Received]) -> None:
        self._acks.extend((m.connection, m.mid, m.qos) for m in messages if m.qos > 0)
        self._wake()

    def publish(
        self,
        topic: str,
        payload: bytes,
        on_acked: Callable[[], None] | None = None,
        *,
        retain: bool = False,
    ) -> None:
        """QoS 1 publish from any thread; ``on_acked`` runs on the MQTT thread at PUBACK."""
        self._outgoing.append(_Outgoing(topic, payload, on_acked, retain))
        self._wake()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"!")

    # ------------------------------------------------------------ MQTT thread

    def _run(self) -> None:
        delay = self.settings.reconnect_min_s
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._session()
            except Exception as error:  # a broken connection must never end the thread
                self.stats.last_error = f"{type(error).__name__}: {error}"
                log.warning("MQTT connection to %s failed: %s", self.settings.url, error)
            self.stats.connected = False
            if self._stop.is_set():
                break
            if time.monotonic() - started > 30:
                delay = self.settings.reconnect_min_s  # it had been up for a while
            pause = delay * random.uniform(0.8, 1.2)
            self._stop.wait(pause)
            delay = min(delay * 2, self.settings.reconnect_max_s)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _new_client(self, connection: _Connection) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if self.settings.username:
            client.username_pw_set(self.settings.username, self.settings.resolved_password())
        if self.settings.tls:
            client.tls_set(
                ca_certs=self.settings.ca_file,
                certfile=self.settings.cert_file,
                keyfile=self.settings.key_file,
            )

        def on_connect(_c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
            if reason.is_failure:
                connection.failed = str(reason)
                return
            client.subscribe([(self.event_filter, 1), (STATUS_FILTER, 1)])
            connection.connected.set()

        def on_subscribe(_c: Any, _u: Any, _mid: int, reasons: Any, _props: Any) -> None:
            failures = [str(r) for r in reasons if r.is_failure]
            if failures:
                connection.failed = f"subscription refused: {', '.join(failures)}"
                return
            self._subscribed.set()

        def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
            self.stats.received += 1
            self.inbox.put(
                Received(
                    message.topic,
                    bytes(message.payload),
                    message.mid,
                    message.qos,
                    connection.number,
                    datetime.now(UTC),
                )
            )

        def on_publish(_c: Any, _u: Any, mid: int, _reason: Any, _props: Any) -> None:
            sent = connection.pending.pop(mid, None)
            self.stats.publish_acked += 1
            if sent is not None and sent.on_acked is not None:
                try:
                    sent.on_acked()
                except Exception:
                    log.exception("publish callback failed")

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.on_publish = on_publish
        return client

    def _session(self) -> None:
        self._connection_number += 1
        connection = _Connection(self._connection_number, mqtt.Client(CallbackAPIVersion.VERSION2))
        client = self._new_client(connection)
        connection.client = client
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.settings.session_expiry_s
        properties.ReceiveMaximum = self.settings.receive_maximum
        client.connect(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=False,
            properties=properties,
        )
        sock = client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stats.connections += 1
        deadline = time.monotonic() + CONNACK_TIMEOUT_S
        try:
            while not self._stop.is_set():
                if connection.failed:
                    raise ConnectionError(f"broker refused: {connection.failed}")
                if not connection.connected.is_set() and time.monotonic() > deadline:
                    raise TimeoutError("no CONNACK")
                self.stats.connected = connection.connected.is_set()
                if connection.connected.is_set():
                    self._send_acks(client, connection.number)
                    self._send_publishes(client, connection)
                self._wait(client)
                code = client.loop(timeout=0)
                if code != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    raise ConnectionError(f"connection lost: {mqtt.error_string(code)}")
            # a clean stop: what the writer committed is acknowledged first
            self._send_acks(client, connection.number)
            client.loop(timeout=0)
        finally:
            self._subscribed.clear()
            with contextlib.suppress(Exception):
                client.disconnect()
            with contextlib.suppress(Exception):
                client.loop(timeout=0)
            for unsent in connection.pending.values():  # not acknowledged: send again
                self._outgoing.appendleft(unsent)

    def _wait(self, client: mqtt.Client) -> None:
        sock = client.socket()
        if not isinstance(sock, socket.socket):
            raise ConnectionError("socket closed")
        want_write = client.want_write()
        readers: list[Any] = [sock, self._wake_r]
        readable, _writable, _ = select.select(
            readers, [sock] if want_write else [], [], LOOP_TIMEOUT_S
        )
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)

    def _send_acks(self, client: mqtt.Client, number: int) -> None:
        while self._acks:
            connection, mid, qos = self._acks.popleft()
            if connection != number:
                self.stats.stale_acks += 1
                continue
            client.ack(mid, qos)
            self.stats.acked += 1

    def _send_publishes(self, client: mqtt.Client, connection: _Connection) -> None:
        while self._outgoing:
            item = self._outgoing.popleft()
            info = client.publish(item.topic, item.payload, qos=1, retain=item.retain)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._outgoing.appendleft(item)
                return
            connection.pending[info.mid] = item
            self.stats.published += 1
