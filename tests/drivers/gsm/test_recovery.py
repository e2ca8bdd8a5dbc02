"""The recovery ladder (issue 7 step 4) against a simulated modem that hangs until it is
power-cycled: reopen -> AT+CFUN=1,1 -> power key -> power cut -> alarm, each step an event."""

from __future__ import annotations

import pytest

from drivers.gsm.power import ModemPower, PowerResult
from drivers.gsm.recovery import LadderTimings
from drivers.simulated.gsm_modem import Cure, SimulatedGsmModem
from drivers.simulated.gsm_power import SimulatedModemPower
from gateway.events import (
    GatewayAlarm,
    LineRecovery,
    LineStatus,
    RecoveryAction,
    RecoveryOutcome,
)
from tests.drivers.gsm.support import running_driver, wait_line_up

FAST = LadderTimings(
    modem_reset_boot_s=0.3,
    power_key_boot_s=0.3,
    power_cut_boot_s=0.3,
    alarm_repeat_s=600.0,
    reset_command_timeout_s=0.3,
)
LADDER = [
    (1, RecoveryAction.REOPEN_PORT),
    (2, RecoveryAction.MODEM_RESET),
    (3, RecoveryAction.POWER_KEY_CYCLE),
    (4, RecoveryAction.POWER_CUT),
]


@pytest.fixture(autouse=True)
def quick_pings(monkeypatch):
    monkeypatch.setattr("drivers.gsm.modem.PING_TIMEOUT_S", 0.3)


def ladder_options(power: ModemPower | None) -> dict:
    return {
        "liveness_s": 1.0,
        "signal_interval_s": 30.0,
        "command_timeout_s": 1.0,  # a hang may meet a command (AT+CMGL) rather than a ping
        "power": power,
        "ladder_timings": FAST,
    }


def steps(log) -> list[tuple[int, RecoveryAction]]:
    return [(r.step, r.action) for r in log.of(LineRecovery)]


def test_a_modem_that_hangs_until_its_power_is_cut_climbs_the_whole_ladder(link, log, wait_until):
    with SimulatedGsmModem(link, model="quectel_ec25") as modem:
        power = SimulatedModemPower(modem)
        with running_driver(link, log, **ladder_options(power)) as driver:
            wait_line_up(log, wait_until)
            modem.hang(Cure.POWER_CUT)
            wait_until(lambda: len(log.of(LineRecovery)) == 4, timeout=40)
            wait_line_up(log, wait_until, count=2)
            assert modem.settings.clip  # set up again after the power cut
            sessions = driver.health().sessions

    assert steps(log) == LADDER
    recoveries = log.of(LineRecovery)
    assert [r.attempt for r in recoveries] == [1, 2, 3, 4]
    assert all(r.outcome is RecoveryOutcome.DONE for r in recoveries)
    assert all("not answering" in (r.reason or "") for r in recoveries)
    assert [r.actions_last_hour for r in recoveries] == [0, 1, 2, 3]
    assert recoveries[1].detail.startswith("sent AT+CFUN=1,1")
    assert power.actions == [("power_key", False), ("power_cut", True)]
    assert log.of(GatewayAlarm) == []
    assert sessions >= 5
    states = [s.state for s in log.of(LineStatus)]
    assert states[0] == "up" and "down" in states and states[-1] == "down"  # last: the stop


def test_a_reset_command_is_enough_for_a_lighter_hang(link, log, wait_until):
    with SimulatedGsmModem(link, model="simcom_sim800") as modem:
        power = SimulatedModemPower(modem)
        with running_driver(link, log, **ladder_options(power)):
            wait_line_up(log, wait_until)
            modem.hang(Cure.RESET)
            wait_until(lambda: len(log.of(LineRecovery)) >= 2, timeout=30)
            wait_line_up(log, wait_until, count=2)

    assert steps(log) == LADDER[:2]
    assert power.actions == []


def test_a_modem_that_never_comes_back_raises_the_alarm_and_clears_it_later(link, log, wait_until):
    with SimulatedGsmModem(link, model="simcom_sim7600") as modem:
        power = SimulatedModemPower(modem)
        with running_driver(link, log, **ladder_options(power)):
            wait_line_up(log, wait_until)
            modem.hang(Cure.NEVER)
            wait_until(lambda: log.of(GatewayAlarm), timeout=40)
            alarm = log.of(GatewayAlarm)[0]

            modem.reboot()  # someone replaced or revived it
            wait_until(lambda: len(log.of(GatewayAlarm)) == 2, timeout=20)

    assert steps(log)[:4] == LADDER
    assert (alarm.code, alarm.severity.value) == ("modem_unrecoverable", "critical")
    assert alarm.detail["line"] == "gsm0" and alarm.detail["steps"] == 4
    cleared = log.of(GatewayAlarm)[1]
    assert (cleared.code, cleared.severity.value) == ("modem_recovered", "warning")


def test_without_power_control_the_power_steps_are_not_wired_and_the_alarm_follows(
    link, log, wait_until
):
    with (
        SimulatedGsmModem(link, model="huawei_e173") as modem,
        running_driver(link, log, **ladder_options(None)),
    ):
        wait_line_up(log, wait_until)
        modem.hang(Cure.NEVER)
        wait_until(lambda: log.of(GatewayAlarm), timeout=30)

    recoveries = log.of(LineRecovery)
    assert steps(log) == LADDER
    assert [r.outcome for r in recoveries] == [
        RecoveryOutcome.DONE,
        RecoveryOutcome.DONE,
        RecoveryOutcome.NOT_WIRED,
        RecoveryOutcome.NOT_WIRED,
    ]
    assert log.of(GatewayAlarm)[0].code == "modem_unrecoverable"


class ScriptedPower:
    """A ModemPower whose outcomes are scripted (a board that refuses, then allows), acting on
    a simulated modem when it says done."""

    def __init__(self, modem: SimulatedGsmModem, outcomes: list[RecoveryOutcome]) -> None:
        self.modem = modem
        self.outcomes = outcomes
        self.calls: list[str] = []

    def _act(self, name: str, action) -> PowerResult:
        self.calls.append(name)
        outcome = self.outcomes.pop(0) if self.outcomes else RecoveryOutcome.DONE
        if outcome is RecoveryOutcome.DONE:
            action()
        return PowerResult(outcome, f"scripted {name}: {outcome.value}")

    def pulse_power_key(self, on_progress) -> PowerResult:
        return self._act("power_key", self.modem.power_key_pulse)

    def cut_power(self, on_progress) -> PowerResult:
        return self._act("power_cut", lambda: self.modem.power_cut(0.1))


def test_a_rate_limited_step_is_taken_again_not_skipped_to_the_alarm(link, log, wait_until):
    with SimulatedGsmModem(link, model="simcom_sim800") as modem:
        power = ScriptedPower(modem, [RecoveryOutcome.RATE_LIMITED])
        with running_driver(link, log, **ladder_options(power)):
            wait_line_up(log, wait_until)
            modem.hang(Cure.POWER_KEY)
            wait_until(lambda: len(log.of(LineRecovery)) >= 4, timeout=30)
            wait_line_up(log, wait_until, count=2)

    assert power.calls == ["power_key", "power_key"]
    assert [(r.step, r.outcome) for r in log.of(LineRecovery)][2:] == [
        (3, RecoveryOutcome.RATE_LIMITED),
        (3, RecoveryOutcome.DONE),
    ]
    assert log.of(GatewayAlarm) == []
