"""line.readiness and line.metrics from the real driver on simulated modems, and the readiness
kept retained per line on the broker (issue 7 item 8)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from drivers.simulated.gsm_modem import SimulatedGsmModem
from gateway.broker import PrivateBroker
from gateway.config import MqttSettings
from gateway.events import LineMetrics, LineReadiness, LineStatus, Priority, topic_for
from gateway.forwarder import Forwarder
from gateway.outbox import Outbox
from tests.drivers.gsm.support import EventLog, running_driver, wait_line_up

GATEWAY, REGION = "bontang-01", "64.74"


def readiness(log: EventLog) -> list[LineReadiness]:
    return log.of(LineReadiness)


def test_readiness_is_sent_on_change_only(link: Path, log: EventLog, wait_until) -> None:
    with (
        SimulatedGsmModem(link, model="quectel_ec25") as modem,
        running_driver(link, log, signal_interval_s=0.2),
    ):
        wait_line_up(log, wait_until)
        wait_until(lambda: len(log.of(LineMetrics)) >= 1)
        first = readiness(log)[0]
        assert first.ready and first.reasons == []
        assert (first.imei, first.iccid, first.operator_code) == (modem.imei, modem.iccid, "51010")
        assert (first.sim_state, first.registration, first.rat, first.ims) == (
            "ready",
            "home",
            "lte",
            "registered",
        )
        polls = modem.network
        statuses = len(log.of(LineStatus))
        modem.rssi = 25  # the signal moves: line.status, never line.readiness
        wait_until(lambda: len(log.of(LineStatus)) > statuses)
        assert len(readiness(log)) == 1

        polls.lte_only = True
        polls.ims_registered = False  # VoLTE lost on an LTE-only line
        wait_until(lambda: len(readiness(log)) >= 2)
        lost = readiness(log)[1]
        assert (lost.ready, lost.reasons, lost.ims) == (
            False,
            ["ims_not_registered"],
            "not_registered",
        )

        polls.ims_registered = True
        wait_until(lambda: len(readiness(log)) >= 3)
        assert readiness(log)[2].ready
    assert [event.ready for event in readiness(log)][:3] == [True, False, True]


def test_a_registration_urc_updates_readiness_without_waiting_for_a_poll(
    link: Path, log: EventLog, wait_until
) -> None:
    with (
        SimulatedGsmModem(link, model="simcom_sim7600", chunking="byte") as modem,
        running_driver(link, log, signal_interval_s=60.0),
    ):
        wait_until(lambda: len(readiness(log)) == 1)
        modem.set_registration(3)
        wait_until(lambda: len(readiness(log)) >= 2)
        denied = readiness(log)[-1]
        assert (denied.ready, denied.registration) == (False, "denied")
        assert denied.reasons == ["not_registered:denied"]
        modem.set_registration(5)
        wait_until(lambda: readiness(log)[-1].ready)
        assert readiness(log)[-1].registration == "roaming"


def test_sim_pin_and_a_vanished_modem(link: Path, log: EventLog, wait_until) -> None:
    with SimulatedGsmModem(link, model="simcom_sim800") as modem:
        modem.network.sim_state = "pin_required"
        with running_driver(link, log, signal_interval_s=0.2):
            wait_until(lambda: len(readiness(log)) == 1)
            first = readiness(log)[0]
            assert not first.ready
            assert first.reasons == ["sim_pin_required", "not_registered:not_searching"]
            modem.vanish()
            wait_until(lambda: len(readiness(log)) == 2)
    gone = readiness(log)[1]
    assert (gone.ready, gone.reasons) == (False, ["modem_unreachable"])


def test_metrics_every_interval_with_lte_measurements(
    link: Path, log: EventLog, wait_until
) -> None:
    with (
        SimulatedGsmModem(link, model="quectel_ec25"),
        running_driver(link, log, signal_interval_s=0.1, metrics_interval_s=0.3),
    ):
        wait_until(lambda: len(log.of(LineMetrics)) >= 3)
    metrics = log.of(LineMetrics)[0]
    assert LineMetrics.PRIORITY is Priority.TELEMETRY
    assert (metrics.signal_dbm, metrics.rsrp_dbm, metrics.rsrq_db, metrics.sinr_db) == (
        -73,
        -95,
        -10,
        12,
    )
    assert (metrics.rat, metrics.registration, metrics.ready) == ("lte", "home", True)


def test_the_default_metrics_period_is_five_minutes(link: Path, log: EventLog, wait_until) -> None:
    with (
        SimulatedGsmModem(link, model="huawei_e173"),
        running_driver(link, log, signal_interval_s=0.1) as driver,
    ):
        wait_until(lambda: driver.last_report is not None)
        first = driver.last_report
        wait_until(lambda: driver.last_report is not first)  # another health poll ran
        second = driver.last_report
        wait_until(lambda: driver.last_report is not second)  # and one more
    assert len(log.of(LineMetrics)) == 1


class RetainedReader:
    """Connects after the fact and collects the retained messages under a filter."""

    def __init__(self, broker: PrivateBroker, topic_filter: str) -> None:
        self.messages: dict[str, tuple[bool, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self._client.on_message = self._on_message
        self._client.on_connect = lambda client, *_: client.subscribe(topic_filter, qos=1)
        self._client.connect("127.0.0.1", broker.port)
        self._client.loop_start()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages[message.topic] = (bool(message.retain), json.loads(message.payload))

    def get(self, topic: str) -> tuple[bool, dict[str, Any]] | None:
        with self._lock:
            return self.messages.get(topic)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def test_readiness_is_retained_per_line_and_the_event_topic_is_kept(
    tmp_path: Path, broker: PrivateBroker, wait_until
) -> None:
    ready = LineReadiness(
        line="gsm0",
        ready=False,
        reasons=["sim_not_inserted"],
        modem="Quectel EC25",
        imei="861234567890123",
        iccid=None,
        sim_state="not_inserted",
        registration="not_searching",
        operator=None,
        operator_code=None,
        rat=None,
        ims=None,
    )
    metrics = LineMetrics(
        line="gsm0",
        ready=False,
        registration=None,
        rat=None,
        operator_code=None,
        signal_dbm=None,
        rsrp_dbm=None,
        rsrq_db=None,
        sinr_db=None,
    )
    events = RetainedReader(broker, f"edge112/v1/{REGION}/{GATEWAY}/event/#")
    with Outbox(tmp_path / "outbox.db", gateway_id=GATEWAY, region=REGION) as outbox:
        forwarder = Forwarder(
            outbox,
            MqttSettings(url=broker.url, reconnect_min_s=0.1, reconnect_max_s=0.5),
            gateway_id=GATEWAY,
            region=REGION,
        )
        forwarder.start()
        try:
            outbox.put(ready)
            outbox.put(metrics)
            wait_until(lambda: events.get(topic_for(REGION, GATEWAY, "line.metrics")) is not None)
        finally:
            forwarder.stop()
    events.close()
    retained_topic = f"edge112/v1/{REGION}/{GATEWAY}/line/gsm0/readiness"
    late = RetainedReader(broker, f"edge112/v1/{REGION}/{GATEWAY}/line/#")
    try:
        wait_until(lambda: late.get(retained_topic) is not None)
        retain_flag, document = late.get(retained_topic) or (False, {})
        assert retain_flag
        assert document["event_id"] == ready.event_id
        assert document["data"]["reasons"] == ["sim_not_inserted"]
        assert list(late.messages) == [retained_topic]  # metrics are not retained
    finally:
        late.close()
    event_copy = events.get(topic_for(REGION, GATEWAY, "line.readiness"))
    assert event_copy is not None and event_copy[1]["event_id"] == ready.event_id
