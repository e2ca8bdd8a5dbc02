"""Caller id from every source (issue 7 step 2): +CLIP in any order, late or never, AT+CLCC,
the dialects' call-state URCs; auto-answer waits for the caller id (or the grace time).

Each model's own shapes come from the simulated modem on a real pseudo-terminal; the
SIM7600 runs one byte at a time so its ``\\r\\r\\n+CRING: VOICE\\r\\r\\n`` framing is cut
everywhere.
"""

from __future__ import annotations

import pytest

from drivers.simulated.gsm_modem import CallOutcome, SimulatedCall, SimulatedGsmModem
from gateway.events import CallAbandoned, CallAnswered, CallEnded, CallOffered, Presentation
from tests.drivers.gsm.support import running_driver, wait_line_up

NUMBER = "+6281234567890"
RING_S = 0.3

# model -> chunking it is played with
MODELS = {
    "quectel_ec25": "line",  # +QIND: "ccinfo" call states; a data session in AT+CLCC
    "simcom_sim7600": "byte",  # \r\r\n framing; +CLCC URCs
    "simcom_sim800": "random",
    "huawei_e173": "line",  # +CLIP: "...",145,,,,0
}
ORDERS = {
    "clip_after_ring": {},
    "clip_before_ring": {"clip_first": True},
    "clip_late": {"clip_delay_s": 0.25},
    "clip_never": {"network_clip": False},  # only AT+CLCC (or a call-state URC) has it
}


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("model", MODELS)
def test_the_number_is_found_whatever_the_order(model, order, link, log, wait_until):
    with (
        SimulatedGsmModem(link, model=model, chunking=MODELS[model], seed=2) as modem,
        running_driver(link, log, caller_id_grace_s=1.0),
    ):
        wait_line_up(log, wait_until)
        call = SimulatedCall(NUMBER, hangup_after_rings=2, ring_interval_s=RING_S, **ORDERS[order])
        placed = modem.place_call(call)
        assert placed.wait(5.0)
        wait_until(lambda: log.of(CallAbandoned))

    offered, abandoned = log.calls()
    assert (offered.number, offered.presentation, offered.ring_count) == (
        NUMBER,
        Presentation.ALLOWED,
        1,
    )
    assert abandoned.ring_count == 2
    assert offered.call_id == abandoned.call_id


@pytest.mark.parametrize("model", MODELS)
def test_answering_on_the_first_ring_keeps_the_number(model, link, log, wait_until):
    """ATA on the first RING suppresses a +CLIP still on its way: the number comes from
    AT+CLCC (or the call-state URC), and ATA waits until the call is offered with it."""
    with (
        SimulatedGsmModem(link, model=model, chunking=MODELS[model], seed=4) as modem,
        running_driver(link, log, answer_after_rings=1),
    ):
        wait_line_up(log, wait_until)
        placed = modem.place_call(
            SimulatedCall(NUMBER, ring_interval_s=RING_S, talk_s=0.3, clip_delay_s=0.3)
        )
        assert placed.wait(5.0)
        wait_until(lambda: log.of(CallEnded))

    offered, answered, _ended = log.calls()
    assert (offered.number, offered.presentation) == (NUMBER, Presentation.ALLOWED)
    assert isinstance(answered, CallAnswered) and answered.ring_count == 1
    assert placed.outcome is CallOutcome.ANSWERED and placed.rings == 1


def test_a_call_without_caller_id_is_answered_after_the_grace_time(link, log, wait_until):
    """A SIM-less 112 call has no number anywhere: ATA waits out the grace time, then goes."""
    grace_s = 0.4
    with (
        SimulatedGsmModem(link, model="huawei_e173") as modem,
        running_driver(link, log, answer_after_rings=1, caller_id_grace_s=grace_s),
    ):
        wait_line_up(log, wait_until)
        placed = modem.place_call(SimulatedCall(ring_interval_s=2.0, talk_s=0.2))
        assert placed.wait(5.0)
        wait_until(lambda: log.of(CallEnded))

    offered, answered, _ended = log.calls()
    assert (offered.number, offered.presentation) == (None, Presentation.UNAVAILABLE)
    assert grace_s * 1000 - 50 <= answered.ring_time_ms <= grace_s * 1000 + 400


def test_after_a_reset_without_clip_the_number_still_comes_from_clcc(link, log, wait_until):
    """The field failure: the modem reset, +CLIP is off; AT+CLCC has the number and is used."""
    with (
        SimulatedGsmModem(link, model="simcom_sim800") as modem,
        running_driver(link, log),
    ):
        wait_line_up(log, wait_until)
        modem.settings.clip = False  # as after a reset the driver has not seen yet
        placed = modem.place_call(
            SimulatedCall(NUMBER, hangup_after_rings=1, ring_interval_s=RING_S)
        )
        assert placed.wait(5.0)
        wait_until(lambda: log.of(CallAbandoned))

    assert log.of(CallOffered)[0].number == NUMBER


def test_a_withheld_number_is_not_taken_from_clcc(link, log, wait_until):
    with (
        SimulatedGsmModem(link, model="quectel_ec25") as modem,
        running_driver(link, log),
    ):
        wait_line_up(log, wait_until)
        placed = modem.place_call(
            SimulatedCall(
                presentation=Presentation.RESTRICTED,
                hangup_after_rings=1,
                ring_interval_s=RING_S,
            )
        )
        assert placed.wait(5.0)
        wait_until(lambda: log.of(CallAbandoned))

    offered = log.of(CallOffered)[0]
    assert (offered.number, offered.presentation) == (None, Presentation.RESTRICTED)
