"""The forwarder: one thread owns the MQTT client and drains the outbox.

Per connection (a fresh paho client each time, so paho never replays an old
session queue on its own, paho #492)::

    connect ─▶ CONNACK ─▶ retained "online" ─▶ loop:
        fill the in-flight window from the outbox (priority, then seq)
        select() on the socket and a wake-up pipe (new commits, stop)
        PUBACK ─▶ outbox.acknowledge(seq) ─▶ DELETE committed ─▶ slot freed

* QoS 1, at least once. A slot in the window is freed only when the row's
  DELETE is committed, so after a crash at most ``inflight_window`` events
  are sent twice; consumers drop them by ``event_id``.
* No PUBACK for ``ack_timeout_s`` while messages are in flight: the link is
  half-dead, so the forwarder drops it and reconnects (paho retries QoS 1
  only on reconnect).
* Reconnect with exponential backoff and jitter, from ``reconnect_min_s`` to
  ``reconnect_max_s``. TCP_NODELAY on the socket (paho leaves Nagle on).
* The Last Will is a retained ``offline`` on the status topic; a clean stop
  publishes ``offline`` itself before disconnecting.
* Events the outbox *holds* because its disk refuses writes
  (``gateway.outbox_faults``) are published from memory with seq 0, once per
  connection. They stay held until the outbox stores them; then they go out
  again with their seq (same ``event_id``), so the sequenced record is
  complete even if the broker lost the copy sent from memory.
* A read of the outbox that fails (the disk is failing, the file cannot be
  opened) does not stop the forwarder: held events still go out, and the
  read is tried again; the reader is reopened when the outbox reopens its file.
* Nothing here touches paho from another thread: other threads only write a
  byte to the wake-up pipe.
* Desk commands from the center (``take_commands``, ``gateway.annotations``):
  the session is then persistent (MQTT 5 clean start off with a session expiry
  of ``COMMAND_SESSION_EXPIRY_S``; 3.1.1 clean session off), the forwarder
  subscribes to ``edge112/v1/{region}/{gateway_id}/command/#`` at QoS 1 and
  hands each message to the handler with an ``ack``. Acks are manual (paho
  ``manual_ack``): the handler calls ``ack`` from any thread once the event is
  committed; the PUBACK is sent by this thread. A command not acked when the
  connection drops is redelivered by the broker.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import random
import select
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config import MqttSettings
from gateway.events import (
    RETAINED_TYPES,
    TOPIC_ROOT,
    Priority,
    retained_topic,
    status_topic,
)
from gateway.outbox import Outbox
from gateway.outbox_reader import OutboxReader, PendingRow

log = logging.getLogger("edge112.forwarder")

STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"
CONNACK_TIMEOUT_S = 10.0
SHUTDOWN_DRAIN_S = 1.5  # on a clean stop, keep sending what is queued this long
STATUS_GOODBYE_S = 0.5  # then wait this long for the broker to take the retained offline
MISC_INTERVAL_S = 1.0
MEMORY_TAIL_MAX = 5_000  # rows held in memory per priority before falling back to the database
FRESH_MAX = 10_000  # committed rows waiting for the forwarder thread to pick them up
COMMAND_SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps commands for an offline gateway

CommandHandler = Callable[[str, bytes, Callable[[], None]], None]  # (topic, payload, ack)


class SessionEnded(Exception):
    """The current MQTT connection is over; the reason says why."""


@dataclass
class ForwarderStats:
    connected: bool = False
    connects: int = 0
    published: int = 0
    acknowledged: int = 0
    refused_by_broker: int = 0
    ack_timeouts: int = 0
    last_error: str = ""
    inflight: int = 0
    connected_since: float | None = None
    history: list[str] = field(default_factory=list)


def backoff_delays(
    minimum: float, maximum: float, rng: random.Random | None = None
) -> Iterator[float]:
    """Exponential backoff with equal jitter: each delay is in [d/2, d], d doubling to max."""
    rng = rng or random.Random()
    delay = minimum
    while True:
        yield delay / 2 + rng.uniform(0, delay / 2)
        delay = min(maximum, delay * 2)


class _Session:
    """State of one connection: the client, in-flight mids, outbox cursors."""

    def __init__(self, client: mqtt.Client, sock: socket.socket, window: int) -> None:
        self.client = client
        self.sock = sock
        self.window = window
        self.connack: ReasonCode | None = None
        self.inflight: dict[int, int] = {}  # mid -> seq
        self.acked: list[int] = []  # seqs acknowledged, DELETE not yet requested
        self.awaiting_delete = 0
        self.cursors: dict[int, int] = {int(p): 0 for p in Priority}
        self.last_progress = time.monotonic()
        self.refused: str | None = None
        self.status_mids: set[int] = set()
        self.held_mids: dict[int, str] = {}  # mid -> event_id of a held event sent from memory
        self.held_sent: set[str] = set()
        self.held_version = -1
        # A priority is "live" once a database fetch found nothing past its cursor:
        # from then on every new row of it arrives through the commit listener, so
        # the forwarder serves it from memory instead of reading it back.
        self.live: set[int] = set()
        self.tails: dict[int, collections.deque[PendingRow]] = {
            int(p): collections.deque() for p in Priority
        }

    @property
    def unsettled(self) -> int:
        return len(self.inflight) + len(self.acked) + self.awaiting_delete

    @property
    def awaiting_puback(self) -> bool:
        return bool(self.inflight or self.held_mids)


class Forwarder:
    """Moves committed events from the outbox to the broker, at least once, in order."""

    def __init__(
        self,
        outbox: Outbox,
        settings: MqttSettings,
        *,
        gateway_id: str,
        region: str,
        client_id: str | None = None,
    ) -> None:
        self.outbox = outbox
        self.settings = settings
        self.gateway_id = gateway_id
        self.region = region
        self.client_id = client_id or f"edge112-{gateway_id}"
        self.stats = ForwarderStats()
        self.heartbeat = time.monotonic()  # the thread's last sign of life: see silent_for_s
        self._status_topic = status_topic(region, gateway_id)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._wake_lock = threading.Lock()
        self._wake_closed = False
        self._deleted: collections.deque[tuple[int, int]] = collections.deque()
        self._direct: collections.deque[tuple[str, bytes]] = collections.deque()
        self._session_id = 0
        self._thread = threading.Thread(target=self._run, name="mqtt-forwarder", daemon=True)
        self._fresh: collections.deque[PendingRow] = collections.deque()  # from the writer
        self._fresh_dropped = False
        self._command_handler: CommandHandler | None = None
        self._command_acks: collections.deque[tuple[int, int, int]] = collections.deque()
        outbox.add_commit_listener(self._on_commit)

    # ------------------------------------------------------------ other threads

    def start(self) -> None:
        self._thread.start()

    def take_commands(self, handler: CommandHandler) -> None:
        """Subscribe to this gateway's command topics (call before ``start``)."""
        self._command_handler = handler

    def _ack_later(self, session_id: int, mid: int, qos: int) -> None:
        self._command_acks.append((session_id, mid, qos))
        self.wake()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def silent_for_s(self) -> float:
        """Seconds since the forwarder thread last went round a loop (connected or waiting to
        reconnect, it does at least every second or two): a large value means it is stuck."""
        return max(0.0, time.monotonic() - self.heartbeat)

    def _on_commit(self, rows: list[PendingRow]) -> None:
        if len(self._fresh) + len(rows) > FRESH_MAX:  # nobody drains (offline): stop holding
            self._fresh_dropped = True  # set before skipping: see _take_fresh
        else:
            self._fresh.extend(rows)
        self.wake()

    def wake(self) -> None:
        with self._wake_lock:
            if not self._wake_closed:
                with contextlib.suppress(BlockingIOError):
                    os.write(self._wake_w, b"!")

    def publish_direct(self, topic: str, payload: bytes) -> None:
        """Best-effort QoS 1 publish of something the outbox could not keep."""
        self._direct.append((topic, payload))
        self.wake()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.wake()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._wake_lock:
            if not self._thread.is_alive() and not self._wake_closed:
                self._wake_closed = True
                os.close(self._wake_r)
                os.close(self._wake_w)

    # ------------------------------------------------------------ forwarder thread

    def _run(self) -> None:
        reader = _ResilientReader(self.outbox)
        delays = backoff_delays(self.settings.reconnect_min_s, self.settings.reconnect_max_s)
        try:
            while not self._stop.is_set():
                self.heartbeat = time.monotonic()
                try:
                    self._session(reader)
                    delays = backoff_delays(
                        self.settings.reconnect_min_s, self.settings.reconnect_max_s
                    )
                except (SessionEnded, OSError, ssl.SSLError, ValueError) as reason:
                    if not self._stop.is_set():  # a stop mid-connect is not a broker fault
                        self._note(f"connection ended: {reason}")
                self.stats.connected = False
                self.stats.connected_since = None
                if self._stop.is_set():
                    break
                delay = next(delays)
                log.info("reconnecting to %s in %.2f s", self.settings.url, delay)
                deadline = time.monotonic() + delay
                while not self._stop.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
                    self.heartbeat = time.monotonic()
                    if self.heartbeat >= deadline:
                        break
        finally:
            reader.close()

    def _note(self, message: str) -> None:
        self.stats.last_error = message
        self.stats.history = [*self.stats.history[-19:], message]
        log.warning("%s", message)

    def _new_client(self) -> mqtt.Client:
        v5 = self.settings.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else self._command_handler is None,
            reconnect_on_failure=False,
            manual_ack=self._command_handler is not None,
        )
        client.connect_timeout = 5.0
        client.max_inflight_messages_set(self.settings.inflight_window)
        client.max_queued_messages_set(0)
        client.will_set(self._status_topic, STATUS_OFFLINE, qos=1, retain=True)
        if self.settings.username:
            client.username_pw_set(self.settings.username, self.settings.resolved_password())
        if self.settings.tls:
            client.tls_set(
                ca_certs=self.settings.ca_file,
                certfile=self.settings.cert_file,
                keyfile=self.settings.key_file,
            )
        return client

    def _session(self, reader: _ResilientReader) -> None:
        client = self._new_client()
        kwargs: dict[str, Any] = {"keepalive": self.settings.keepalive_s}
        if self.settings.protocol == "5":
            kwargs["clean_start"] = self._command_handler is None
            if self._command_handler is not None:
                kwargs["properties"] = Properties(PacketTypes.CONNECT)
                kwargs["properties"].SessionExpiryInterval = COMMAND_SESSION_EXPIRY_S
        client.connect(self.settings.host, self.settings.port, **kwargs)
        raw_sock = client.socket()
        if not isinstance(raw_sock, socket.socket):
            raise SessionEnded("paho returned no TCP socket")
        raw_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._session_id += 1
        session = _Session(client, raw_sock, self.settings.inflight_window)
        self._bind_callbacks(session)
        try:
            self._await_connack(session)
            self.stats.connected = True
            self.stats.connects += 1
            self.stats.connected_since = time.time()
            log.info("connected to %s", self.settings.url)
            session.status_mids.add(self._publish(session, self._status_topic, STATUS_ONLINE, True))
            if self._command_handler is not None:
                commands = f"{TOPIC_ROOT}/{self.region}/{self.gateway_id}/command/#"
                session.client.subscribe(commands, qos=1)
            self._pump(session, reader)
        finally:
            self.stats.inflight = 0
            with contextlib.suppress(OSError):
                raw_sock.close()  # paho's own clean-up is not needed: this client is dropped

    def _bind_callbacks(self, session: _Session) -> None:
        def on_connect(
            _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
        ) -> None:
            session.connack = reason

        def on_publish(
            _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode, _props: Any
        ) -> None:
            self._on_puback(session, mid, reason)

        session.client.on_connect = on_connect
        session.client.on_publish = on_publish
        handler, session_id = self._command_handler, self._session_id
        if handler is not None:

            def on_command(_client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
                mid, qos = message.mid, message.qos
                payload = bytes(message.payload)
                handler(message.topic, payload, lambda: self._ack_later(session_id, mid, qos))

            session.client.on_message = on_command

    def _await_connack(self, session: _Session) -> None:
        deadline = time.monotonic() + CONNACK_TIMEOUT_S
        while session.connack is None:
            self.heartbeat = time.monotonic()
            if time.monotonic() > deadline or self._stop.is_set():
                raise SessionEnded("no CONNACK from the broker")
            try:
                self._io(session, 0.2)
            except SessionEnded:
                if session.connack is None:
                    raise
                # the broker sent its refusal and closed: report the refusal
        if session.connack.is_failure:
            raise SessionEnded(f"broker refused the connection: {session.connack}")

    def _publish(self, session: _Session, topic: str, payload: bytes, retain: bool) -> int:
        # No MQTT 5 properties: packing them costs paho ~10% of a publish, and the
        # contract (JSON events, text status) is fixed by the topic.
        info = session.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_QUEUE_SIZE):
            raise SessionEnded(f"publish failed: {mqtt.error_string(info.rc)}")
        self.stats.published += 1
        return info.mid

    def _on_puback(self, session: _Session, mid: int, reason: ReasonCode) -> None:
        session.last_progress = time.monotonic()
        if mid in session.status_mids:
            session.status_mids.discard(mid)
            return
        if session.held_mids.pop(mid, None) is not None:
            return  # held events stay held until stored: nothing to release
        seq = session.inflight.pop(mid, None)
        if seq is None:  # PUBACKs are read in this thread, after publish() returned the mid
            log.debug("PUBACK for unknown mid %d ignored", mid)
            return
        if reason.is_failure:
            self.stats.refused_by_broker += 1
            session.refused = f"broker refused seq {seq}: {reason}"
            return
        session.acked.append(seq)

    def _fill_window(self, session: _Session, reader: _ResilientReader) -> None:
        self._take_fresh(session)
        for priority in sorted(session.cursors):
            room = session.window - session.unsettled
            if room <= 0:
                return
            cursor = session.cursors[priority]
            if priority in session.live:
                tail = session.tails[priority]
                while tail and tail[0].seq <= cursor:
                    tail.popleft()
                rows = [tail.popleft() for _ in range(min(room, len(tail)))]
            else:
                fetched = reader.fetch_after(priority, cursor, room)
                if fetched is None:
                    continue  # the outbox cannot be read now: held events still go out
                rows = fetched
                if len(rows) < room:
                    session.live.add(priority)
            for row in rows:
                session.inflight[self._publish(session, row.topic, row.payload, False)] = row.seq
                session.cursors[priority] = row.seq
                if row.type in RETAINED_TYPES:
                    self._publish_retained_copy(session, row)

    def _publish_retained_copy(self, session: _Session, row: PendingRow) -> None:
        """An event of a type marked ``RETAINED_AS`` (line.readiness) also goes out retained
        on its state topic; that copy's PUBACK releases nothing (the event topic's does)."""
        try:
            data = json.loads(row.payload)["data"]
        except (ValueError, KeyError, TypeError):
            return
        topic = retained_topic(self.region, self.gateway_id, row.type, data)
        if topic is not None:
            session.status_mids.add(self._publish(session, topic, row.payload, True))

    def _send_held(self, session: _Session) -> None:
        """Publish (seq 0, from memory) the events the outbox holds and has not stored yet."""
        held = self.outbox.held
        if held.version == session.held_version:
            return
        session.held_version = held.version
        for item in held.snapshot():
            if item.event.event_id not in session.held_sent:
                mid = self._publish(session, item.topic, item.payload, False)
                session.held_mids[mid] = item.event.event_id
                session.held_sent.add(item.event.event_id)

    def _take_fresh(self, session: _Session) -> None:
        """Move rows the writer just committed to the tails of live priorities.

        If the writer had to drop rows (the queue was full), everything in memory
        is forgotten and the database is read again. The flag is checked after the
        drain: rows drained before a drop all precede the dropped ones.
        """
        drained = []
        while self._fresh:
            drained.append(self._fresh.popleft())
        if self._fresh_dropped:
            self._fresh_dropped = False
            session.live.clear()
            for tail in session.tails.values():
                tail.clear()
            return
        for row in drained:
            if row.priority not in session.live:
                continue  # the database has it; a fetch will find it
            tail = session.tails[row.priority]
            tail.append(row)
            if len(tail) > MEMORY_TAIL_MAX:  # far behind: read from the database again
                session.live.discard(row.priority)
                tail.clear()

    def _flush_acks(self, session: _Session, session_id: int) -> None:
        if not session.acked:
            return
        seqs, session.acked = session.acked, []
        self.stats.acknowledged += len(seqs)
        if self.outbox.acknowledge_now(seqs):
            return
        session.awaiting_delete += len(seqs)

        def deleted(done: list[int], count: int = len(seqs)) -> None:
            self._deleted.append((session_id, count))
            self.wake()

        self.outbox.acknowledge(seqs, deleted)

    def _settle_deleted(self, session: _Session, session_id: int) -> None:
        while self._deleted:
            owner, count = self._deleted.popleft()
            if owner == session_id:
                session.awaiting_delete -= count

    def _io(self, session: _Session, timeout: float) -> None:
        client = session.client
        sock_fd = session.sock.fileno()
        writers = [sock_fd] if client.want_write() else []
        readable, writable, _ = select.select([sock_fd, self._wake_r], writers, [], timeout)
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)
        if sock_fd in readable:
            rc = client.loop_read()
            pending = getattr(session.sock, "pending", None)
            while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and pending and pending():
                rc = client.loop_read()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise SessionEnded(f"connection lost: {mqtt.error_string(rc)}")
        if writable:
            rc = client.loop_write()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise SessionEnded(f"write failed: {mqtt.error_string(rc)}")

    def _pump(self, session: _Session, reader: _ResilientReader) -> None:
        session_id = self._session_id
        next_misc = time.monotonic() + MISC_INTERVAL_S
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            self._settle_deleted(session, session_id)
            while self._direct:
                topic, payload = self._direct.popleft()
                session.status_mids.add(self._publish(session, topic, payload, False))
            while self._command_acks:
                owner, mid, qos = self._command_acks.popleft()
                if owner == session_id and qos > 0:  # an older session's: the broker resends it
                    session.client.ack(mid, qos)
            self._send_held(session)
            self._fill_window(session, reader)
            self.stats.inflight = session.unsettled
            self._io(session, 0.5)
            self._flush_acks(session, session_id)
            if session.refused:
                raise SessionEnded(session.refused)
            now = time.monotonic()
            stalled = now - session.last_progress > self.settings.ack_timeout_s
            if session.awaiting_puback and stalled:
                self.stats.ack_timeouts += 1
                raise SessionEnded(
                    f"no PUBACK for {self.settings.ack_timeout_s:g} s with "
                    f"{len(session.inflight) + len(session.held_mids)} in flight"
                )
            if not session.awaiting_puback:
                session.last_progress = now
            if now >= next_misc:
                next_misc = now + MISC_INTERVAL_S
                if session.client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    raise SessionEnded("keepalive failed")
        self._say_goodbye(session, session_id, reader)

    def _say_goodbye(self, session: _Session, session_id: int, reader: _ResilientReader) -> None:
        """Clean stop: send what is still queued (briefly), publish retained offline, disconnect.

        The drivers stop before the forwarder, so their last events (a line going
        down, a call cut short) are usually committed just now; they go out here
        if the broker takes them within ``SHUTDOWN_DRAIN_S``, else on the next start.
        """
        drain_deadline = time.monotonic() + SHUTDOWN_DRAIN_S
        with contextlib.suppress(SessionEnded, OSError):
            while time.monotonic() < drain_deadline:
                self._settle_deleted(session, session_id)
                published = self.stats.published
                self._send_held(session)
                self._fill_window(session, reader)
                if not session.awaiting_puback and self.stats.published == published:
                    break  # nothing in flight and nothing left to send
                self._io(session, 0.05)
                self._flush_acks(session, session_id)
            status_deadline = time.monotonic() + STATUS_GOODBYE_S
            session.status_mids.add(
                self._publish(session, self._status_topic, STATUS_OFFLINE, True)
            )
            while session.status_mids and time.monotonic() < status_deadline:
                self._io(session, 0.05)
                self._flush_acks(session, session_id)
            session.client.disconnect()
            session.client.loop_write()
        log.info("disconnected from %s", self.settings.url)


class _ResilientReader:
    """The forwarder's read side of the outbox, which survives a disk that fails under it.

    A failed read returns None (logged once per distinct error) instead of
    raising; the connection is reopened after a failure and whenever the
    outbox reopened its own file (a storage fault ended).
    """

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._reader: OutboxReader | None = None
        self._epoch = -1
        self._last_error = ""

    def fetch_after(self, priority: int, after_seq: int, limit: int) -> list[PendingRow] | None:
        try:
            if self._reader is None or self._epoch != self._outbox.epoch:
                self.close()
                self._epoch = self._outbox.epoch
                self._reader = self._outbox.reader()
            rows = self._reader.fetch_after(priority, after_seq, limit)
        except (sqlite3.Error, OSError) as error:
            if str(error) != self._last_error:
                self._last_error = str(error)
                log.error("cannot read the outbox (held events are still sent): %s", error)
            self.close()
            return None
        if self._last_error:
            log.warning("the outbox can be read again")
            self._last_error = ""
        return rows

    def close(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(sqlite3.Error):
                self._reader.close()
            self._reader = None
