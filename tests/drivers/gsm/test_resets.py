"""Modem resets (issue 7 step 1): every boot banner re-runs the set-up and is reported; a call
cut by a reset ends with cause modem_reset; a port that vanishes and returns is a reset too.

All against the simulated modem on a real pseudo-terminal, per model and banner shape.
"""

from __future__ import annotations

import pytest

from drivers.simulated.gsm_modem import SimulatedCall, SimulatedGsmModem
from gateway.events import (
    CallAbandoned,
    CallAnswered,
    CallEnded,
    CallOffered,
    EndCause,
    LineReset,
    LineStatus,
    Presentation,
    ResetTrigger,
)
from tests.drivers.gsm.support import running_driver, wait_line_up

NUMBER = "+6281234567890"
RING_S = 0.15

# model -> the first banner line it prints after a reset
BANNER_MODELS = {
    "quectel_ec25": "RDY",
    "simcom_sim7600": "RDY",
    "simcom_sim800": "RDY",
}


@pytest.mark.parametrize(
    ("model", "chunking"),
    [
        ("quectel_ec25", "line"),
        ("simcom_sim7600", "byte"),  # \r\r\n framing, one byte at a time
        ("simcom_sim800", "random"),
    ],
)
def test_a_reset_banner_reruns_the_setup_and_is_reported(model, chunking, link, log, wait_until):
    with (
        SimulatedGsmModem(link, model=model, chunking=chunking, seed=5) as modem,
        running_driver(link, log) as driver,
    ):
        wait_line_up(log, wait_until)
        assert modem.settings.clip and modem.settings.crc

        modem.reboot()
        wait_until(lambda: log.of(LineReset))
        # The reset forgot AT+CLIP=1 and the rest; the driver set them again.
        wait_until(lambda: modem.settings.clip and modem.settings.crc and modem.settings.creg)
        wait_line_up(log, wait_until, count=2)

        # The call after the reset still shows its caller through +CLIP.
        placed = modem.place_call(
            SimulatedCall(NUMBER, hangup_after_rings=1, ring_interval_s=RING_S)
        )
        assert placed.wait(5.0)
        wait_until(lambda: log.of(CallAbandoned))
        resets = driver.resets

    reset = log.of(LineReset)
    assert len(reset) == 1, "one burst of banner lines is one reset"
    assert (reset[0].trigger, reset[0].banner, reset[0].resets, reset[0].call_id) == (
        ResetTrigger.BANNER,
        BANNER_MODELS[model],
        1,
        None,
    )
    assert resets == 1
    states = [(s.state, "reset" in s.detail) for s in log.of(LineStatus)]
    assert states[:3] == [("up", False), ("down", True), ("up", False)]
    offered = log.of(CallOffered)[0]
    assert (offered.number, offered.presentation) == (NUMBER, Presentation.ALLOWED)


def test_a_call_in_progress_when_the_modem_resets_ends_with_modem_reset(link, log, wait_until):
    with (
        SimulatedGsmModem(link, model="quectel_ec25") as modem,
        running_driver(link, log, answer_after_rings=1),
    ):
        wait_line_up(log, wait_until)
        modem.place_call(SimulatedCall(NUMBER, ring_interval_s=RING_S, talk_s=30.0))
        wait_until(lambda: log.of(CallAnswered))

        modem.reboot()
        wait_until(lambda: log.of(CallEnded) and log.of(LineReset))

    ended = log.of(CallEnded)[0]
    assert ended.cause is EndCause.MODEM_RESET
    assert log.of(LineReset)[0].call_id == ended.call_id


def test_a_ringing_call_cut_by_a_reset_is_abandoned_with_modem_reset(link, log, wait_until):
    with (
        SimulatedGsmModem(link, model="simcom_sim800") as modem,
        running_driver(link, log),
    ):
        wait_line_up(log, wait_until)
        modem.place_call(SimulatedCall(NUMBER, ring_interval_s=5.0))
        wait_until(lambda: log.of(CallOffered))
        modem.reboot()
        wait_until(lambda: log.of(CallAbandoned))

    assert log.of(CallAbandoned)[0].cause is EndCause.MODEM_RESET


def test_two_resets_far_apart_are_counted_twice(link, log, wait_until, monkeypatch):
    monkeypatch.setattr("drivers.gsm.modem.RESET_BURST_S", 0.0)
    with (
        SimulatedGsmModem(link, model="simcom_sim800") as modem,
        running_driver(link, log) as driver,
    ):
        wait_line_up(log, wait_until)
        modem.reboot()
        wait_until(lambda: log.of(LineReset) and modem.settings.clip)
        wait_line_up(log, wait_until, count=2)
        modem.reboot()
        wait_until(lambda: len({r.resets for r in log.of(LineReset)}) >= 2)
        resets = driver.resets

    assert [r.resets for r in log.of(LineReset)][:2] == [1, 2]
    assert resets >= 2


def test_a_huawei_stick_that_re_enumerates_is_reported_when_its_port_returns(link, log, wait_until):
    with (
        SimulatedGsmModem(link, model="huawei_e173") as modem,
        running_driver(link, log, answer_after_rings=1),
    ):
        wait_line_up(log, wait_until)
        modem.place_call(SimulatedCall(NUMBER, ring_interval_s=RING_S, talk_s=30.0))
        wait_until(lambda: log.of(CallAnswered))

        modem.reboot()  # a Huawei stick resets by vanishing from USB and coming back
        wait_until(lambda: log.of(LineReset))
        wait_until(lambda: modem.settings.clip)

    ended = log.of(CallEnded)[0]
    assert ended.cause is EndCause.LINE_LOST
    reset = log.of(LineReset)[0]
    assert (reset.trigger, reset.banner, reset.call_id) == (
        ResetTrigger.PORT_RETURNED,
        None,
        ended.call_id,
    )


def test_banners_during_the_first_setup_are_not_a_reset(link, log, wait_until):
    with SimulatedGsmModem(link, model="quectel_ec25") as modem:
        modem.reboot()  # the modem is still printing its banner when the gateway starts
        with running_driver(link, log):
            wait_line_up(log, wait_until)
            wait_until(lambda: modem.settings.clip)

    assert log.of(LineReset) == []
