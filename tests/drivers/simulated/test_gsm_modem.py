"""The simulated modem seen from a plain serial terminal on its link: exact bytes per model."""

from __future__ import annotations

import os
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from drivers.simulated.caller_audio import AudioSegment
from drivers.simulated.gsm_modem import (
    CallOutcome,
    PlacedCall,
    SimulatedCall,
    SimulatedGsmModem,
)
from gateway.events import Presentation
from tests.conftest import WAIT_TIMEOUT_S

NUMBER = "+6281234567890"
FINALS = (b"OK\r\n", b"ERROR\r\n", b"COMMAND NOT SUPPORT\r\n", b"NO CARRIER\r\n")


class Terminal:
    """What a technician's terminal program sees on the link."""

    def __init__(self, path: Path) -> None:
        self.port = serial.serial_for_url(str(path), baudrate=115200, timeout=0.05)

    def send(self, command: str) -> bytes:
        self.port.write(command.encode() + b"\r")
        return self.read_until(FINALS)

    def read_until(self, endings: tuple[bytes, ...], timeout: float = WAIT_TIMEOUT_S) -> bytes:
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


# Call audio ------------------------------------------------------------------


class AudioTerminal:
    """The gateway's side of the simulated audio port, read and written raw."""

    def __init__(self, path: Path) -> None:
        self.port = serial.serial_for_url(str(path), timeout=0.05)

    def read_for(self, seconds: float) -> bytes:
        """Everything that comes within ``seconds`` (to show that nothing comes)."""
        data = b""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            data += self.port.read(4096)
        return data

    def read_at_least(self, count: int, timeout: float = WAIT_TIMEOUT_S) -> bytes:
        """``count`` bytes or more: what the simulator says it sent."""
        data = b""
        deadline = time.monotonic() + timeout
        while len(data) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"{len(data)} of {count} bytes within {timeout} s")
            data += self.port.read(4096)
        return data

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def audio_link(tmp_path: Path) -> Path:
    return tmp_path / "modem-audio"


def answer_call(terminal: Terminal, modem: SimulatedGsmModem, call: SimulatedCall) -> PlacedCall:
    placed = modem.place_call(call)
    terminal.read_until((b"RING\r\n", b"RING\r\r\n"))  # SIM7600 frames URCs with CR CR LF
    terminal.port.write(b"ATA\r")
    urc = modem.model.answer_urc  # VOICE CALL: BEGIN or ^CONN follows the OK
    ends = (urc.encode() + b"\r\n", urc.encode() + b"\r\r\n") if urc else (b"OK\r\n",)
    assert terminal.read_until(ends).startswith(b"\r\nOK\r\n")
    return placed


def test_audio_flows_only_while_answered_and_switched_on(link, audio_link):
    call = SimulatedCall(NUMBER, ring_interval_s=0.1, talk_s=1.0, audio=(AudioSegment.speech(2),))
    with SimulatedGsmModem(link, model="simcom_sim7600", audio_link=audio_link) as modem:
        terminal, audio = Terminal(link), AudioTerminal(audio_link)
        terminal.send("ATE0")
        placed = answer_call(terminal, modem, call)
        assert audio.read_for(0.2) == b""  # answered, but audio is off

        before_switching_on = time.monotonic()
        assert terminal.send("AT+CPCMREG=1") == b"\r\nOK\r\n"
        switched_on_by = time.monotonic()  # the reply is read with a 50 ms timeout
        assert placed.wait(2.0)
        received = audio.read_at_least(320 * placed.audio_log.frames_sent)
        received += audio.read_for(0.1)  # and nothing more once the call is over
        terminal.close()
        audio.close()

    assert placed.ended_monotonic is not None
    most = (placed.ended_monotonic - before_switching_on) / 0.02 + 1
    least = (placed.ended_monotonic - switched_on_by) / 0.02 - 1
    assert len(received) % 320 == 0 and received.strip(b"\0")
    assert len(received) // 320 == placed.audio_log.frames_sent
    assert least <= placed.audio_log.frames_sent <= most  # one frame every 20 ms, in real time


def test_simcom_forgets_audio_after_each_call_and_quectel_keeps_it(link, audio_link):
    call = SimulatedCall(NUMBER, ring_interval_s=0.1, talk_s=0.3, audio=(AudioSegment.speech(1),))
    for model, command, frames_on_second_call in (
        ("simcom_sim7600", "AT+CPCMREG=1", False),
        ("quectel_ec25", "AT+QPCMV=1,0", True),
    ):
        with SimulatedGsmModem(link, model=model, audio_link=audio_link) as modem:
            terminal = Terminal(link)
            terminal.send("ATE0")
            assert terminal.send(command) == b"\r\nOK\r\n"
            first = answer_call(terminal, modem, call)
            assert first.wait(2.0)
            second = answer_call(terminal, modem, call)
            assert second.wait(2.0)
            terminal.close()
        assert first.audio_log.frames_sent > 5
        assert (second.audio_log.frames_sent > 5) is frames_on_second_call


def test_a_wav_recording_is_played_sample_exact(link, audio_link, tmp_path):
    recording = tmp_path / "caller.wav"
    samples = bytes(range(200)) * 16  # 1600 samples: 0.2 s
    write_wav(recording, samples)
    call = SimulatedCall(
        NUMBER, ring_interval_s=0.1, talk_s=0.5, audio=(AudioSegment.wav(recording),)
    )
    with SimulatedGsmModem(link, audio_link=audio_link) as modem:
        terminal, audio = Terminal(link), AudioTerminal(audio_link)
        terminal.send("ATE0")
        terminal.send("AT+QPCMV=1,0")  # before the answer: nothing is lost
        placed = answer_call(terminal, modem, call)
        assert placed.wait(2.0)
        received = audio.read_at_least(320 * placed.audio_log.frames_sent)
        terminal.close()
        audio.close()

    assert received.startswith(samples)
    assert received[len(samples) :] == bytes(len(received) - len(samples))
    assert AudioSegment.wav(recording).duration_s == pytest.approx(0.2)


def write_wav(path: Path, pcm: bytes, rate: int = 8000, channels: int = 1, width: int = 2) -> None:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(pcm)


@pytest.mark.parametrize(
    ("rate", "channels", "width", "message"),
    [
        (16000, 1, 2, "got 16000 Hz, 1 channel"),
        (8000, 2, 2, "2 channel"),
        (8000, 1, 1, "8-bit"),
    ],
)
def test_a_wav_that_is_not_8khz_mono_16bit_is_refused(tmp_path, rate, channels, width, message):
    path = tmp_path / "music.wav"
    write_wav(path, bytes(64), rate, channels, width)

    with pytest.raises(ValueError, match="need 8000 Hz mono 16-bit PCM WAV") as refused:
        AudioSegment.wav(path)
    assert message in str(refused.value)


def test_a_file_that_is_not_wav_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")

    with pytest.raises(ValueError, match="not a readable WAV file"):
        AudioSegment.wav(path)


def test_simulated_call_checks_its_audio():
    with pytest.raises(ValueError, match="DTMF digits"):
        SimulatedCall(respond_to_prompt="5x")
    with pytest.raises(ValueError, match="DTMF digits"):
        AudioSegment.dtmf("")
    with pytest.raises(ValueError, match="seconds >= 0"):
        AudioSegment.silence(-1)
    with pytest.raises(ValueError, match="level_dbov"):
        AudioSegment.speech(1, level_dbov=3)
    listed = SimulatedCall(audio=[AudioSegment.silence(1)])  # type: ignore[arg-type]
    assert listed.audio == (AudioSegment.silence(1),)


def test_segments_render_to_their_duration():
    for segment in (
        AudioSegment.silence(0.25),
        AudioSegment.speech(0.5, seed=3),
        AudioSegment.noise(0.33, level_dbov=-40),
        AudioSegment.dtmf("12#", tone_ms=50, gap_ms=30),
    ):
        pcm = b"".join(segment.pcm_blocks())
        assert len(pcm) == round(segment.duration_s * 8000) * 2
    assert set(b"".join(AudioSegment.silence(0.1).pcm_blocks())) == {0}


# Issue 7 faults and features, as a terminal sees them ---------------------------------


def test_sms_is_stored_announced_read_and_deleted_in_pdu_mode(ec25, terminal):
    from drivers.simulated.sms_deliver import encode_deliver

    terminal.send("ATE0")
    terminal.send("AT+CMGF=0")
    terminal.send("AT+CNMI=2,1,0,2,0")
    pdu = encode_deliver(NUMBER, text="Halo")
    assert ec25.deliver_sms(pdu) == 0
    assert terminal.read_until((b'+CMTI: "SM",0\r\n',)) == b'\r\n+CMTI: "SM",0\r\n'
    length = len(pdu) // 2 - 1 - int(pdu[:2], 16)
    assert terminal.send("AT+CMGR=0") == (
        f"\r\n+CMGR: 0,,{length}\r\n\r\n{pdu}\r\n\r\nOK\r\n".encode()
    )
    assert terminal.send("AT+CPMS?") == (b'\r\n+CPMS: "SM",1,20,"SM",1,20,"SM",1,20\r\n\r\nOK\r\n')
    assert terminal.send("AT+CMGD=0") == b"\r\nOK\r\n"
    assert terminal.send("AT+CMGR=0") == b"\r\nOK\r\n"
    assert [(memory, index) for memory, index, _ in ec25.sms.deletions] == [("SM", 0)]


def test_ec25_announces_status_reports_as_sm_but_stores_them_in_sr(ec25, terminal):
    from drivers.simulated.sms_deliver import encode_status_report

    terminal.send("ATE0")
    terminal.send("AT+CNMI=2,1,0,2,0")
    ec25.deliver_sms(encode_status_report(NUMBER), status_report=True)
    assert terminal.read_until((b"\r\n",)) == b'\r\n+CDSI: "SM",0\r\n'
    assert ec25.sms.stored_pdus("SM") == [] and len(ec25.sms.stored_pdus("SR")) == 1


def test_a_full_sim_refuses_the_next_message(link):
    from drivers.simulated.sms_deliver import encode_deliver

    with SimulatedGsmModem(link, sim_capacity=1) as modem:
        assert modem.deliver_sms(encode_deliver(NUMBER, text="1")) == 0
        assert modem.deliver_sms(encode_deliver(NUMBER, text="2")) is None
        assert modem.sms.refused == 1


def test_a_hung_modem_answers_nothing_until_its_cure(ec25, terminal):
    from drivers.simulated.gsm_modem import Cure

    ec25.hang(Cure.POWER_KEY)
    terminal.port.write(b"AT\r")
    assert terminal.port.read(64) == b""
    assert ec25.power_cut(0.0) is True  # stronger than the cure: it comes back
    assert terminal.read_until((b"+QIND: PB DONE\r\n",)).endswith(b"+QIND: PB DONE\r\n")
    assert terminal.send("AT") == b"AT\r\r\nOK\r\n"


def test_a_modem_hung_for_good_ignores_the_power_key(ec25):
    from drivers.simulated.gsm_modem import Cure

    ec25.hang(Cure.NEVER)
    assert ec25.power_key_pulse() is False and ec25.hung


def test_registration_urcs_follow_creg(ec25, terminal):
    terminal.send("ATE0")
    terminal.send("AT+CREG=2")
    ec25.set_registration(2)
    assert terminal.read_until((b"\r\n",)) == b"\r\n+CREG: 2\r\n"
    ec25.set_registration(1)
    assert terminal.read_until((b"7\r\n",)) == b'\r\n+CREG: 1,"1A2B","01C3D4E5",7\r\n'
    assert terminal.send("AT+CREG?") == b"\r\n+CREG: 2,1\r\n\r\nOK\r\n"


def test_ccinfo_announces_an_incoming_call_before_its_ring(ec25, terminal):
    terminal.send("ATE0")
    terminal.send('AT+QINDCFG="ccinfo",1')
    ec25.place_call(SimulatedCall(NUMBER, hangup_after_rings=1, ring_interval_s=0.2))
    assert terminal.read_until((b"RING\r\n",)) == (
        b'\r\n+QIND: "ccinfo",2,1,4,0,0,"+6281234567890",145\r\n\r\nRING\r\n'
    )


def test_a_replugged_port_comes_back_under_a_new_device(link):
    """While the gateway still holds the old node open, the new one gets another name."""
    with SimulatedGsmModem(link, model="huawei_e173") as modem:
        before = modem.device
        held = os.open(before, os.O_RDWR | os.O_NOCTTY)
        try:
            modem.replug(gap_s=0.05)
            deadline = time.monotonic() + 5
            while modem.device == before and time.monotonic() < deadline:
                time.sleep(0.02)
            with pytest.raises(OSError):
                os.read(held, 1)  # the old node is dead
        finally:
            os.close(held)
        assert modem.device != before and link.resolve() == Path(modem.device)
