"""The consumer side of the contract: subscribe, check, count.

``FeedMonitor`` is what a regional center runs to check a gateway's feed for
completeness: it subscribes to ``edge112/v1/#`` (or a narrower filter),
parses every event, drops duplicates by ``event_id``, and keeps per gateway
the set of ``seq`` received, so gaps (lost events) and duplicates are counted
exactly. Events with ``seq`` 0 are outside the sequence: the gateway sent them
from memory because its disk refused them (held events, ``event_not_kept``
alarms); they are kept by ``event_id`` in ``unsequenced``, and the same event
may arrive again later with a seq once the gateway could store it.
``edge112 demo`` prints its live view and closing summary from it; the tests
use it as their subscriber.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.events import TOPIC_ROOT


@dataclass
class GatewayFeed:
    """What one gateway sent: events by seq, duplicates, status."""

    events: dict[int, dict[str, Any]] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)  # seqs in arrival order, duplicates included
    duplicates: int = 0
    status: str | None = None
    unsequenced: dict[str, dict[str, Any]] = field(default_factory=dict)  # seq 0, by event_id

    def missing(self, up_to: int | None = None) -> list[int]:
        """Seqs from 1 to ``up_to`` (default: highest seen) never received."""
        top = up_to if up_to is not None else max(self.events, default=0)
        return [seq for seq in range(1, top + 1) if seq not in self.events]


class FeedMonitor:
    """Subscribe to edge112 events and account for every seq."""

    def __init__(
        self,
        url: str,
        topic_filter: str = f"{TOPIC_ROOT}/#",
        *,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        client_id: str = "",
        session_expiry_s: int = 0,
    ) -> None:
        """``session_expiry_s`` > 0 (with a ``client_id``): a persistent session, so the
        broker queues what is published while this monitor is away (a broker with
        persistence keeps it across its own restart too)."""
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 1883
        self.topic_filter = topic_filter
        self.session_expiry_s = session_expiry_s
        self.on_event = on_event
        self.feeds: dict[str, GatewayFeed] = {}
        self.malformed: list[str] = []
        self.received = 0
        self._changed = threading.Condition()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        self._client.on_message = self._on_message
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._subscribed = threading.Event()

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        client.subscribe(self.topic_filter, qos=1)

    def _on_subscribe(self, *_args: Any) -> None:
        self._subscribed.set()  # SUBACK: from now on nothing published is missed

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.received += 1
            levels = message.topic.split("/")
            if len(levels) == 5 and levels[4] == "status":
                self.feeds.setdefault(levels[3], GatewayFeed()).status = message.payload.decode()
            elif len(levels) < 6 or levels[4] == "event":
                self._take_event(message)
            # else a state topic (line/{line}/readiness: a retained copy of an event) or a
            # command: not part of the sequenced feed
            self._changed.notify_all()

    def _take_event(self, message: mqtt.MQTTMessage) -> None:
        try:
            event = json.loads(message.payload)
            gateway_id, seq = event["gateway_id"], int(event["seq"])
        except (ValueError, KeyError, TypeError) as error:
            self.malformed.append(f"{message.topic}: {error}")
            return
        feed = self.feeds.setdefault(gateway_id, GatewayFeed())
        if seq == 0:  # sent from memory, not from the outbox (see the module docstring)
            feed.order.append(seq)
            if event.get("event_id") in feed.unsequenced:
                feed.duplicates += 1
                return
            feed.unsequenced[str(event.get("event_id"))] = event
        elif seq in feed.events:
            feed.duplicates += 1
            feed.order.append(seq)
            return
        else:
            feed.events[seq] = event
            feed.order.append(seq)
        if self.on_event is not None:
            self.on_event(event)

    def start(self, timeout: float = 10.0) -> FeedMonitor:
        if self.session_expiry_s:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.session_expiry_s
            self._client.connect(self.host, self.port, clean_start=False, properties=properties)
        else:
            self._client.connect(self.host, self.port)
        self._client.loop_start()
        if not self._subscribed.wait(timeout):
            raise TimeoutError(f"could not subscribe at {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def wait_for(self, predicate: Callable[[FeedMonitor], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.2))
        return True

    def feed(self, gateway_id: str) -> GatewayFeed:
        with self._changed:
            return self.feeds.setdefault(gateway_id, GatewayFeed())

    def events_of(self, gateway_id: str, event_type: str | None = None) -> list[dict[str, Any]]:
        with self._changed:
            feed = self.feeds.get(gateway_id, GatewayFeed())
            return [
                feed.events[seq]
                for seq in sorted(feed.events)
                if event_type is None or feed.events[seq]["type"] == event_type
            ]

    def everything_of(self, gateway_id: str, event_type: str | None = None) -> list[dict[str, Any]]:
        """Sequenced and unsequenced (seq 0) events, one per ``event_id``, sequenced ones
        first in seq order."""
        with self._changed:
            feed = self.feeds.get(gateway_id, GatewayFeed())
            seen: set[str] = set()
            found = []
            for event in [feed.events[seq] for seq in sorted(feed.events)] + list(
                feed.unsequenced.values()
            ):
                if event["event_id"] in seen:
                    continue
                seen.add(event["event_id"])
                if event_type is None or event["type"] == event_type:
                    found.append(event)
            return found

    def __enter__(self) -> FeedMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
