"""The simulated modem seen from a plain serial terminal on its link: exact bytes per model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from drivers.simulated.gsm_modem import (
    CallOutcome,
    SimulatedCall,
    SimulatedGsmModem,
)
from gateway.events import Presentation

NUMBER = "+6281234567890"
FINALS = (b"OK\r\n", b"ERROR\r\n", b"COMMAND NOT SUPPORT\r\n", b"NO CARRIER\r\n")


class Terminal:
    """What a technician's terminal program sees on the link."""

    def __init__(self, path: Path) -> None:
        self.port = serial.serial_for_url(str(path), baudrate=115200, timeout=0.05)

    def send(self, command: str) -> bytes:
        self.port.write(command.encode() + b"\r")
        return self.read_until(FINALS)

    def read_until(self, endings: tuple[bytes, ...], timeout: float = 3.0) -> bytes:
        data = b""
        deadline = time.monotonic() + timeout
        while not data.endswith(endings):
            if time.monotonic() > deadline:
                pytest.fail(f"no {endings!r} within {timeout} s; got {data!r}")
            data += self.port.read(256)
        return data

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def link(tmp_path: Path) -> Path:
    return tmp_path / "modem"


@pytest.fixture
def ec25(link: Path) -> Iterator[SimulatedGsmModem]:
    with SimulatedGsmModem(link, model="quectel_ec25", seed=1) as modem:
        yield modem


@pytest.fixture
def terminal(ec25: SimulatedGsmModem, link: Path) -> Iterator[Terminal]:
    term = Terminal(link)
    yield term
    term.close()


def test_echo_is_on_until_ate0(terminal):
    assert terminal.send("AT") == b"AT\r\r\nOK\r\n"
    assert terminal.send("ATE0") == b"ATE0\r\r\nOK\r\n"
    assert terminal.send("AT") == b"\r\nOK\r\n"


def test_ec25_answers_unknown_commands_with_plain_error_even_after_cmee(terminal):
    terminal.send("ATE0")
    terminal.send("AT+CMEE=1")

    assert terminal.send("AT+QNOSUCH") == b"\r\nERROR\r\n"


@pytest.mark.parametrize(
    ("model", "identity", "unknown"),
    [
        ("quectel_ec25", b"\r\nQuectel\r\n\r\nOK\r\n", b"\r\nERROR\r\n"),
        ("simcom_sim7600", b"\r\nSIMCOM INCORPORATED\r\n\r\nOK\r\n", b"\r\nERROR\r\n"),
        ("huawei_e173", b"\r\nhuawei\r\n\r\nOK\r\n", b"\r\nCOMMAND NOT SUPPORT\r\n"),
    ],
)
def test_identity_and_unknown_command_reply_per_model(link, model, identity, unknown):
    with SimulatedGsmModem(link, model=model):
        terminal = Terminal(link)
        terminal.send("ATE0")
        assert terminal.send("AT+CGMI") == identity
        assert terminal.send("AT+CVHU=9") == unknown
        terminal.close()


def test_imei_is_valid_and_reproducible_from_the_seed(link, tmp_path):
    with SimulatedGsmModem(link, seed=5) as first:
        imei = first.imei
    with SimulatedGsmModem(link, seed=5) as again:
        assert again.imei == imei
    digits = [int(d) for d in imei]
    checksum = sum(d if i % 2 == 0 else sum(divmod(2 * d, 10)) for i, d in enumerate(digits))
    assert len(imei) == 15 and checksum % 10 == 0


@pytest.mark.parametrize(
    ("model", "crc", "expected"),
    [
        (
            "quectel_ec25",
            False,
            b'\r\nRING\r\n\r\n+CLIP: "+6281234567890",145,"",0,"",0\r\n',
        ),
        (
            "simcom_sim7600",
            True,
            b'\r\r\n+CRING: VOICE\r\r\n\r\r\n+CLIP: "+6281234567890",145,"",0,"",0\r\r\n',
        ),
        (
            "huawei_e173",
            True,
            b'\r\n+CRING: VOICE\r\n\r\n+CLIP: "+6281234567890",145,,,,0\r\n',
        ),
    ],
)
def test_ring_shapes_per_model(link, model, crc, expected):
    with SimulatedGsmModem(link, model=model) as modem:
        terminal = Terminal(link)
        terminal.send("ATE0")
        terminal.send("AT+CLIP=1")
        terminal.send(f"AT+CRC={int(crc)}")
        modem.place_call(SimulatedCall(NUMBER, hangup_after_rings=1, ring_interval_s=0.1))
        assert terminal.read_until((b",0\r\n", b",0\r\r\n")) == expected
        terminal.close()


def test_withheld_sends_an_empty_clip_and_unavailable_none(ec25, terminal):
    terminal.send("ATE0")
    terminal.send("AT+CLIP=1")

    withheld = ec25.place_call(
        SimulatedCall(
            presentation=Presentation.RESTRICTED, hangup_after_rings=1, ring_interval_s=0.1
        )
    )
    assert terminal.read_until((b"NO CARRIER\r\n",)) == (
        b'\r\nRING\r\n\r\n+CLIP: "",128,"",0,"",1\r\n\r\nNO CARRIER\r\n'
    )
    assert withheld.wait(2.0)
    ec25.place_call(SimulatedCall(hangup_after_rings=1, ring_interval_s=0.1))
    assert terminal.read_until((b"NO CARRIER\r\n",)) == b"\r\nRING\r\n\r\nNO CARRIER\r\n"


def test_placed_call_records_first_ring_times_and_outcome(ec25, terminal):
    terminal.send("ATE0")
    before_wall, before_monotonic = time.time(), time.monotonic()

    placed = ec25.place_call(SimulatedCall(NUMBER, hangup_after_rings=2, ring_interval_s=0.1))

    assert placed.wait(3.0)
    assert placed.first_ring_wall is not None and placed.first_ring_monotonic is not None
    assert before_wall <= placed.first_ring_wall <= time.time()
    assert before_monotonic <= placed.first_ring_monotonic
    assert (placed.outcome, placed.rings) == (CallOutcome.ABANDONED, 2)
    assert placed.summary()["ended_after_s"] == pytest.approx(0.2, abs=0.1)


def test_ata_answers_and_the_caller_hangs_up_after_talking(ec25, terminal):
    terminal.send("ATE0")
    placed = ec25.place_call(SimulatedCall(NUMBER, ring_interval_s=0.1, talk_s=0.2))
    terminal.read_until((b"RING\r\n",))

    assert terminal.send("ATA") == b"\r\nOK\r\n"
    assert terminal.send("AT+CLCC") == (
        b'\r\n+CLCC: 1,0,0,1,0,"",128\r\n'  # the EC25 lists its data session too
        b'\r\n+CLCC: 2,1,0,0,0,"+6281234567890",145\r\n\r\nOK\r\n'
    )
    assert terminal.read_until((b"NO CARRIER\r\n",)).endswith(b"\r\nNO CARRIER\r\n")
    assert placed.wait(2.0) and placed.outcome is CallOutcome.ANSWERED


def test_ata_without_a_call_is_no_carrier_and_ath_rejects_a_ringing_call(ec25, terminal):
    terminal.send("ATE0")
    assert terminal.send("ATA") == b"\r\nNO CARRIER\r\n"

    placed = ec25.place_call(SimulatedCall(NUMBER, ring_interval_s=0.1))
    terminal.read_until((b"RING\r\n",))
    terminal.send("ATH")

    assert placed.wait(2.0) and placed.outcome is CallOutcome.REJECTED


def test_calls_are_played_one_at_a_time(ec25, terminal):
    first = ec25.place_call(SimulatedCall(NUMBER, hangup_after_rings=1, ring_interval_s=0.1))
    second = ec25.place_call(SimulatedCall(hangup_after_rings=1, ring_interval_s=0.1))

    assert second.wait(3.0) and first.done
    assert first.ended_monotonic is not None and second.first_ring_monotonic is not None
    assert second.first_ring_monotonic >= first.ended_monotonic
    assert (first.sequence, second.sequence) == (1, 2)


def test_byte_chunking_delivers_the_same_bytes(link):
    with SimulatedGsmModem(link, model="huawei_e173", chunking="byte"):
        terminal = Terminal(link)
        assert terminal.send("ATI") == (
            b"ATI\r\r\nManufacturer: huawei\r\n\r\nModel: E173\r\n\r\n"
            b"Revision: 11.126.85.00.209\r\n\r\nIMEI: " + terminal_imei(terminal) + b"\r\n"
            b"\r\n+GCAP: +CGSM,+DS,+ES\r\n\r\nOK\r\n"
        )
        terminal.close()


def terminal_imei(terminal: Terminal) -> bytes:
    return terminal.send("AT+CGSN").split(b"\r\n")[1]


def test_inject_writes_raw_bytes(ec25, terminal):
    ec25.inject(b"\xff\x00half")

    assert terminal.read_until((b"half",)) == b"\xff\x00half"


def test_reboot_prints_the_boot_urcs_and_turns_echo_back_on(ec25, terminal):
    terminal.send("ATE0")
    assert terminal.send("AT+CFUN=1,1") == b"\r\nOK\r\n"

    assert terminal.read_until((b"+QIND: PB DONE\r\n",)) == (
        b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\n+QIND: SMS DONE\r\n"
        b"\r\n+QIND: PB DONE\r\n"
    )
    assert terminal.send("AT") == b"AT\r\r\nOK\r\n"


def test_vanish_fails_the_port_and_ends_calls(link):
    modem = SimulatedGsmModem(link)
    terminal = Terminal(link)
    ringing = modem.place_call(SimulatedCall(NUMBER, ring_interval_s=0.1))
    queued = modem.place_call(SimulatedCall(NUMBER, ring_interval_s=0.1))
    terminal.read_until((b"RING\r\n",))

    modem.vanish()

    with pytest.raises(serial.SerialException):
        for _ in range(20):
            terminal.port.read(1)
    assert ringing.outcome is CallOutcome.LOST and queued.outcome is CallOutcome.CANCELLED
    assert not link.is_symlink()
    terminal.close()


def test_a_stale_link_is_replaced_and_removed_on_close(link):
    link.symlink_to("/dev/pts/nonexistent")

    with SimulatedGsmModem(link) as modem:
        assert link.resolve() == Path(modem.device).resolve()

    assert not link.is_symlink()


def test_a_real_file_at_the_link_is_never_replaced(link):
    link.write_text("precious")

    with pytest.raises(FileExistsError):
        SimulatedGsmModem(link)
    assert link.read_text() == "precious"


def test_unknown_model_is_refused(link):
    with pytest.raises(ValueError, match="huawei_e173"):
        SimulatedGsmModem(link, model="nokia_3310")


def test_simulated_call_checks_its_presentation():
    with pytest.raises(ValueError):
        SimulatedCall(presentation=Presentation.ALLOWED)
    with pytest.raises(ValueError):
        SimulatedCall(NUMBER, presentation=Presentation.RESTRICTED)
    assert SimulatedCall().presentation is Presentation.UNAVAILABLE
