"""GsmModemDriver against the simulated modem on a real pseudo-terminal, per model."""

from __future__ import annotations

import logging
import time

import pytest

from drivers.gsm.modem import GsmModemDriver
from drivers.simulated.gsm_modem import CallOutcome, SimulatedCall, SimulatedGsmModem
from gateway.events import (
    CallAbandoned,
    CallAnswered,
    CallEnded,
    CallOffered,
    EndCause,
    LineStatus,
    Presentation,
)
from tests.drivers.gsm.support import running_driver, wait_line_up

NUMBER = "+6281234567890"
RING_S = 0.15
RSSI = 17  # -79 dBm

# model -> (dialect the driver must pick, text its LineStatus detail must name)
MODELS = {
    "quectel_ec25": ("quectel", "EC25"),
    "simcom_sim7600": ("simcom", "SIM7600"),
    "huawei_e173": ("huawei", "E173"),
}
CALL_EVENTS = (CallOffered, CallAnswered, CallEnded, CallAbandoned)


@pytest.mark.parametrize("model", MODELS)
def test_line_comes_up_with_identity_dialect_and_signal(model, link, log, wait_until):
    with (
        SimulatedGsmModem(link, model=model, rssi=RSSI),
        running_driver(link, log) as driver,
    ):
        wait_line_up(log, wait_until)
        dialect = driver.dialect_name

    dialect_name, model_text = MODELS[model]
    up = log.of(LineStatus)[0]
    assert (up.line, up.state, up.signal_dbm) == ("gsm0", "up", -113 + 2 * RSSI)
    assert model_text in up.detail and "registered" in up.detail
    assert dialect == dialect_name


@pytest.mark.parametrize("model", MODELS)
def test_answered_call_with_number(model, link, log, wait_until):
    with (
        SimulatedGsmModem(link, model=model, chunking="random", seed=3) as modem,
        running_driver(link, log, answer_after_rings=2),
    ):
        wait_line_up(log, wait_until)
        placed = modem.place_call(SimulatedCall(NUMBER, ring_interval_s=RING_S, talk_s=0.4))
        assert placed.wait(5.0)
        wait_until(lambda: log.of(CallEnded))

    offered, answered, ended = log.calls()
    assert isinstance(offered, CallOffered)
    assert (offered.number, offered.presentation, offered.ring_count) == (
        NUMBER,
        Presentation.ALLOWED,
        1,
    )
    assert isinstance(answered, CallAnswered)
    assert answered.ring_count == 2
    assert placed.outcome is CallOutcome.ANSWERED and placed.rings == 2
    assert placed.answered_monotonic is not None and placed.first_ring_monotonic is not None
    simulated_ring_time_ms = (placed.answered_monotonic - placed.first_ring_monotonic) * 1000
    assert abs(answered.ring_time_ms - simulated_ring_time_ms) < 150
    assert isinstance(ended, CallEnded)
    assert ended.cause is EndCause.REMOTE_HANGUP
    assert 300 <= ended.duration_ms <= 1200
    assert offered.call_id == answered.call_id == ended.call_id


@pytest.mark.parametrize("model", MODELS)
def test_withheld_call_abandoned_after_two_rings(model, link, log, wait_until):
    with (
        SimulatedGsmModem(link, model=model) as modem,
        running_driver(link, log),
    ):
        wait_line_up(log, wait_until)
        call = SimulatedCall(
            presentation=Presentation.RESTRICTED, hangup_after_rings=2, ring_interval_s=RING_S
        )
        placed = modem.place_call(call)
        assert placed.wait(5.0)
        wait_until(lambda: log.of(CallAbandoned))

    offered, abandoned = log.calls()
    assert (offered.number, offered.presentation, offered.ring_count) == (
        None,
        Presentation.RESTRICTED,
        1,
    )
    assert isinstance(abandoned, CallAbandoned)
    assert (abandoned.ring_count, abandoned.cause) == (2, EndCause.REMOTE_HANGUP)
    assert 2 * RING_S * 1000 - 100 <= abandoned.ring_time_ms <= 2 * RING_S * 1000 + 500
    assert placed.outcome is CallOutcome.ABANDONED


@pytest.mark.parametrize("model", MODELS)
def test_call_without_caller_id_is_offered_after_the_grace_period(model, link, log, wait_until):
    grace_s = 0.3
    with (
        SimulatedGsmModem(link, model=model) as modem,
        running_driver(link, log, caller_id_grace_s=grace_s),
    ):
        wait_line_up(log, wait_until)
        placed = modem.place_call(SimulatedCall(hangup_after_rings=1, ring_interval_s=0.8))
        assert placed.wait(5.0)
        wait_until(lambda: log.of(CallAbandoned))

    offered, abandoned = log.calls()
    assert (offered.number, offered.presentation, offered.ring_count) == (
        None,
        Presentation.UNAVAILABLE,
        1,
    )
    assert placed.first_ring_wall is not None
    offer_delay_s = offered.observed_at.timestamp() - placed.first_ring_wall
    assert grace_s - 0.05 <= offer_delay_s <= grace_s + 0.4
    assert (abandoned.ring_count, abandoned.cause) == (1, EndCause.REMOTE_HANGUP)


def test_byte_at_a_time_with_garbage_still_yields_the_right_call(link, log, wait_until):
    with (
        SimulatedGsmModem(link, model="simcom_sim7600", chunking="byte") as modem,
        running_driver(link, log),
    ):
        wait_line_up(log, wait_until)
        modem.inject(b"\xff\xfe\x00\r\n+XNOISE: 1\r\n")
        placed = modem.place_call(
            SimulatedCall(NUMBER, hangup_after_rings=1, ring_interval_s=RING_S)
        )
        assert placed.wait(5.0)
        wait_until(lambda: log.of(CallAbandoned))

    offered, abandoned = log.calls()
    assert (offered.number, offered.presentation) == (NUMBER, Presentation.ALLOWED)
    assert abandoned.cause is EndCause.REMOTE_HANGUP


def test_lost_end_urc_is_caught_by_clcc_despite_the_ec25_data_session(link, log, wait_until):
    with (
        SimulatedGsmModem(link, model="quectel_ec25") as modem,
        running_driver(link, log, answer_after_rings=1, poll_interval_s=0.1),
    ):
        wait_line_up(log, wait_until)
        call = SimulatedCall(NUMBER, ring_interval_s=RING_S, talk_s=0.3, announce_end=False)
        placed = modem.place_call(call)
        assert placed.wait(5.0)
        wait_until(lambda: log.of(CallEnded))

    ended = log.of(CallEnded)[0]
    assert ended.cause is EndCause.UNKNOWN  # no URC said why: only AT+CLCC showed it gone
    assert [type(event) for event in log.calls()] == [CallOffered, CallAnswered, CallEnded]


def test_vanished_modem_ends_the_call_line_lost_and_the_driver_reconnects(link, log, wait_until):
    modem = SimulatedGsmModem(link, model="quectel_ec25")
    with running_driver(link, log, answer_after_rings=1):
        wait_line_up(log, wait_until)
        modem.place_call(SimulatedCall(NUMBER, ring_interval_s=RING_S, talk_s=30.0))
        wait_until(lambda: log.of(CallAnswered))

        modem.vanish()
        wait_until(lambda: log.of(CallEnded))
        statuses = log.of(LineStatus)
        assert [status.state for status in statuses] == ["up", "down"]
        assert "port lost" in statuses[1].detail
        ended = log.of(CallEnded)[0]
        assert ended.cause is EndCause.LINE_LOST
        events = log.all()
        assert events.index(statuses[1]) < events.index(ended)

        with SimulatedGsmModem(link, model="quectel_ec25") as replacement:
            wait_line_up(log, wait_until, count=2)
            placed = replacement.place_call(
                SimulatedCall(NUMBER, ring_interval_s=RING_S, talk_s=0.2)
            )
            assert placed.wait(5.0)
            wait_until(lambda: len(log.of(CallEnded)) == 2)
        assert log.of(CallEnded)[1].cause is EndCause.REMOTE_HANGUP


def test_stop_is_quick_and_closes_an_open_call(link, log, wait_until):
    with SimulatedGsmModem(link, model="huawei_e173") as modem:
        driver = GsmModemDriver("gsm0", str(link), log)
        driver.start()
        wait_line_up(log, wait_until)
        modem.place_call(SimulatedCall(NUMBER, ring_interval_s=RING_S))
        wait_until(lambda: log.of(CallOffered))

        started = time.monotonic()
        driver.stop()
        stop_s = time.monotonic() - started

    assert stop_s < 2.0
    abandoned = log.of(CallAbandoned)[0]
    assert abandoned.cause is EndCause.UNKNOWN
    last = log.all()[-1]
    assert isinstance(last, LineStatus)
    assert (last.state, last.detail) == ("down", "driver stopped")


def test_an_absent_port_is_reported_down_and_picked_up_when_it_appears(link, log, wait_until):
    with running_driver(link, log):
        wait_until(lambda: log.of(LineStatus))
        down = log.of(LineStatus)[0]
        assert down.state == "down" and "cannot open" in down.detail

        with SimulatedGsmModem(link, model="simcom_sim7600"):
            wait_line_up(log, wait_until)


def test_caller_numbers_never_reach_the_logs(link, log, wait_until, caplog):
    caplog.set_level(logging.DEBUG, logger="edge112")
    with (
        SimulatedGsmModem(link, model="huawei_e173") as modem,
        running_driver(link, log, answer_after_rings=1, poll_interval_s=0.1),
    ):
        wait_line_up(log, wait_until)
        placed = modem.place_call(SimulatedCall(NUMBER, ring_interval_s=RING_S, talk_s=0.3))
        assert placed.wait(5.0)
        wait_until(lambda: log.of(CallEnded))

    assert log.of(CallOffered)[0].number == NUMBER  # the event carries it...
    assert NUMBER[1:] not in caplog.text  # ...the logs do not
    assert "+6281*******90" in caplog.text
