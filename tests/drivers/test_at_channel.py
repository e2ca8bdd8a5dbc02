"""AtChannel through a real pseudo-terminal whose far end the test writes raw bytes to."""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import serial
from hypothesis import given
from hypothesis import strategies as st

from drivers.at_channel import (
    AtChannel,
    AtChannelClosedError,
    AtCommandError,
    AtTimeoutError,
    ChannelProblem,
    LineFramer,
    LineRole,
    PendingCommand,
    ProblemKind,
    classify_line,
    decode_line,
)

PARTIAL_LINE_TIMEOUT_S = 0.2
NO_HALF_LINE_TIMEOUT_S = 60.0  # for tests about a partial line that must not time out


class ScriptedPeer:
    """The modem end of the PTY: answers scripted commands with literal bytes."""

    def __init__(self, master: int, replies: dict[str, bytes] | None = None) -> None:
        self.master = master
        self.replies = {"AT": b"\r\nOK\r\n", **(replies or {})}
        self.received: list[str] = []
        self.byte_at_a_time = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> None:
        if not self.byte_at_a_time:
            os.write(self.master, data)
            return
        for index in range(len(data)):
            os.write(self.master, data[index : index + 1])
            time.sleep(0.0005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)

    def _serve(self) -> None:
        pending = b""
        while not self._stop.is_set():
            readable, _, _ = select.select([self.master], [], [], 0.05)
            if not readable:
                continue
            try:
                pending += os.read(self.master, 1024)
            except OSError:
                return
            *commands, pending = pending.split(b"\r")
            for raw in commands:
                command = raw.decode()
                self.received.append(command)
                if command in self.replies:
                    self.write(self.replies[command])


class Recorder:
    def __init__(self) -> None:
        self.urcs: list[str] = []
        self.problems: list[ChannelProblem] = []
        self.lost: list[str] = []

    def kinds(self) -> list[ProblemKind]:
        return [problem.kind for problem in self.problems]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def peer(pty_pair) -> Iterator[ScriptedPeer]:
    scripted = ScriptedPeer(pty_pair.master)
    yield scripted
    scripted.stop()


@pytest.fixture
def channel(pty_pair, peer, recorder) -> Iterator[AtChannel]:
    at = AtChannel(
        pty_pair.path,
        on_urc=recorder.urcs.append,
        on_problem=recorder.problems.append,
        on_lost=recorder.lost.append,
        partial_line_timeout_s=PARTIAL_LINE_TIMEOUT_S,
    )
    yield at
    at.close()


def test_command_returns_its_information_lines(channel, peer):
    peer.replies["AT+CSQ"] = b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"

    assert channel.command("AT+CSQ") == ["+CSQ: 20,99"]
    assert peer.received == ["AT+CSQ"]


def test_echo_of_the_command_is_ignored(channel, peer):
    peer.replies["AT+CGMI"] = b"AT+CGMI\r\r\nQuectel\r\n\r\nOK\r\n"

    assert channel.command("AT+CGMI") == ["Quectel"]


def test_urcs_interleaved_with_a_response_go_to_the_callback(channel, peer, recorder):
    clcc = '+CLCC: 1,1,4,0,0,"+6281234567890",145'
    clip = '+CLIP: "+6281234567890",145,"",0,"",0'
    peer.replies["AT+CLCC"] = (
        f'\r\nRING\r\n\r\n{clcc}\r\n\r\n{clip}\r\n\r\n+CMTI: "SM",3\r\n\r\nOK\r\n'.encode()
    )

    assert channel.command("AT+CLCC") == [clcc]
    assert recorder.urcs == ["RING", clip, '+CMTI: "SM",3']
    assert recorder.problems == []


def test_a_urc_prefix_is_the_response_of_the_command_that_asks_for_it(channel, peer, recorder):
    peer.replies["AT+CPIN?"] = b"\r\n+CPIN: READY\r\n\r\nOK\r\n"

    assert channel.command("AT+CPIN?") == ["+CPIN: READY"]
    assert recorder.urcs == []


def test_the_same_line_while_idle_is_a_urc(channel, peer, recorder, wait_until):
    peer.write(b"\r\n+CPIN: READY\r\n\r\n+QIND: PB DONE\r\n")

    wait_until(lambda: len(recorder.urcs) == 2)
    assert recorder.urcs == ["+CPIN: READY", "+QIND: PB DONE"]


@pytest.mark.parametrize("final", ["ERROR", "+CME ERROR: 10", "COMMAND NOT SUPPORT"])
def test_error_final_result_codes_raise_a_typed_error(channel, peer, final):
    peer.replies["AT+CVHU=0"] = f"\r\n{final}\r\n".encode()

    with pytest.raises(AtCommandError) as raised:
        channel.command("AT+CVHU=0")

    assert raised.value.command == "AT+CVHU=0"
    assert raised.value.final == final


def test_no_carrier_is_the_final_result_of_ata(channel, peer, recorder):
    peer.replies["ATA"] = b"\r\nNO CARRIER\r\n"

    with pytest.raises(AtCommandError) as raised:
        channel.command("ATA")

    assert raised.value.final == "NO CARRIER"
    assert recorder.urcs == []


def test_no_carrier_during_another_command_is_a_urc(channel, peer, recorder):
    peer.replies["AT+CLCC"] = b"\r\nNO CARRIER\r\n\r\nOK\r\n"

    assert channel.command("AT+CLCC") == []
    assert recorder.urcs == ["NO CARRIER"]


def test_a_command_without_final_result_times_out(channel, peer):
    started = time.monotonic()

    with pytest.raises(AtTimeoutError):
        channel.command("AT+SILENT", timeout=0.3)

    assert 0.25 <= time.monotonic() - started < 1.5
    assert channel.command("AT") == []


def test_sim7600_framing_with_double_cr(channel, peer, recorder, wait_until):
    peer.write(b'\r\r\n+CRING: VOICE\r\r\n\r\r\n+CLIP: "+6281234567890",145,"",0,"",0\r\r\n')

    wait_until(lambda: len(recorder.urcs) == 2)
    assert recorder.urcs == ["+CRING: VOICE", '+CLIP: "+6281234567890",145,"",0,"",0']
    assert recorder.problems == []


def test_one_byte_at_a_time(channel, peer, recorder, wait_until):
    peer.byte_at_a_time = True
    peer.replies["AT+CSQ"] = b"AT+CSQ\r\r\n+CSQ: 17,99\r\n\r\nOK\r\n"
    peer.write(b'\r\nRING\r\n\r\n+CLIP: "0812345678",129,"",0,"",0\r\n')

    wait_until(lambda: len(recorder.urcs) == 2)
    assert channel.command("AT+CSQ") == ["+CSQ: 17,99"]
    assert recorder.urcs == ["RING", '+CLIP: "0812345678",129,"",0,"",0']
    assert recorder.problems == []


def test_garbage_bytes_are_reported_and_a_following_line_survives(
    channel, peer, recorder, wait_until
):
    peer.write(b"\xff\xfe\x00\x1b[A\r\n\xff\xffRING\r\n")

    wait_until(lambda: recorder.urcs == ["RING"])
    assert ProblemKind.NOT_TEXT in recorder.kinds()
    assert all(problem.excerpt.isprintable() for problem in recorder.problems)
    assert channel.command("AT") == []


def test_a_half_line_followed_by_silence_is_reported_and_dropped(
    channel, peer, recorder, wait_until
):
    peer.write(b"+CLI")
    wait_until(lambda: recorder.kinds() == [ProblemKind.HALF_LINE])
    peer.write(b"RING\r\n")

    wait_until(lambda: recorder.urcs == ["RING"])
    assert recorder.problems[0].excerpt == "+CLI"
    assert channel.command("AT") == []


def test_a_half_line_ended_by_a_response_is_not_taken_as_part_of_it(pty_pair, peer, wait_until):
    problems: list[ChannelProblem] = []
    peer.replies["AT+CLCC"] = b'\r\n+CLCC: 1,1,4,0,0,"",128\r\n\r\nOK\r\n'
    with AtChannel(
        pty_pair.path,
        on_urc=lambda line: None,
        on_problem=problems.append,
        partial_line_timeout_s=NO_HALF_LINE_TIMEOUT_S,
    ) as at:
        peer.write(b"+CLI")
        wait_until(lambda: at._framer.has_partial, what="+CLI read and buffered")

        assert at.command("AT+CLCC") == ['+CLCC: 1,1,4,0,0,"",128']

    assert problems == [ChannelProblem(ProblemKind.UNKNOWN_UNSOLICITED, "+CLI")]


def test_a_urc_cut_across_a_command_start_still_arrives(pty_pair, peer, recorder, wait_until):
    with AtChannel(
        pty_pair.path, on_urc=recorder.urcs.append, partial_line_timeout_s=NO_HALF_LINE_TIMEOUT_S
    ) as at:
        peer.write(b"\r\nRI")
        wait_until(lambda: at._framer.has_partial, what="RI read and buffered")
        peer.replies["AT+CSQ"] = b"NG\r\n\r\n+CSQ: 20,99\r\n\r\nOK\r\n"

        assert at.command("AT+CSQ") == ["+CSQ: 20,99"]

    assert recorder.urcs == ["RING"]


def test_an_over_long_line_is_reported_once_and_discarded(channel, peer, recorder, wait_until):
    for _ in range(10):
        peer.write(b"X" * 100)  # 1000 bytes, no line end, over several reads
    peer.write(b"YYY\r\nRING\r\n")

    wait_until(lambda: recorder.urcs == ["RING"])
    assert recorder.kinds() == [ProblemKind.LINE_TOO_LONG]
    assert recorder.problems[0].excerpt.startswith("XXXX")
    assert channel.command("AT") == []


def test_an_unknown_unsolicited_line_is_reported_with_numbers_masked(
    channel, peer, recorder, wait_until
):
    peer.write(b"\r\n+XCALLER: 6281234567890\r\n")

    wait_until(lambda: recorder.problems)
    assert recorder.problems == [
        ChannelProblem(ProblemKind.UNKNOWN_UNSOLICITED, "+XCALLER: 6281*******90")
    ]
    assert recorder.urcs == []
    assert channel.command("AT") == []


def test_a_failing_callback_does_not_stop_the_reader(pty_pair, peer, wait_until):
    seen: list[str] = []

    def explode(line: str) -> None:
        seen.append(line)
        raise RuntimeError("handler bug")

    with AtChannel(pty_pair.path, on_urc=explode) as at:
        peer.write(b"\r\nRING\r\n\r\nRING\r\n")
        wait_until(lambda: len(seen) == 2)
        assert at.command("AT") == []


def test_command_from_a_reader_callback_is_refused(pty_pair, peer, wait_until):
    outcomes: list[BaseException] = []
    holder: list[AtChannel] = []

    def answer_from_reader(line: str) -> None:
        try:
            holder[0].command("ATA", timeout=0.2)
        except BaseException as exc:
            outcomes.append(exc)

    with AtChannel(pty_pair.path, on_urc=answer_from_reader) as at:
        holder.append(at)
        peer.write(b"\r\nRING\r\n")
        wait_until(lambda: outcomes)
        assert isinstance(outcomes[0], RuntimeError)
        assert at.command("AT") == []


def test_a_vanished_port_is_reported_once_and_fails_commands(
    channel, peer, pty_pair, recorder, wait_until
):
    peer.stop()
    pty_pair.close()

    wait_until(lambda: recorder.lost)
    time.sleep(0.3)  # not a wait for something: a window for a wrong second report to show
    assert len(recorder.lost) == 1
    assert channel.lost_reason == recorder.lost[0]
    with pytest.raises(AtChannelClosedError):
        channel.command("AT", timeout=1.0)


def test_a_pending_command_fails_at_once_when_the_port_vanishes(channel, peer, pty_pair):
    peer.stop()  # nobody answers
    threading.Timer(0.2, pty_pair.close).start()
    started = time.monotonic()

    with pytest.raises(AtChannelClosedError):
        channel.command("AT", timeout=4.0)

    assert time.monotonic() - started < 2.0


def test_close_stops_the_reader_quickly_without_reporting_a_loss(pty_pair, recorder):
    at = AtChannel(pty_pair.path, on_urc=recorder.urcs.append, on_lost=recorder.lost.append)
    started = time.monotonic()

    at.close()

    assert time.monotonic() - started < 1.0
    assert not any(thread.name == f"edge112-at-{pty_pair.path}" for thread in threading.enumerate())
    assert recorder.lost == []
    with pytest.raises(AtChannelClosedError):
        at.command("AT")


def test_the_port_is_opened_exclusively(channel, pty_pair):
    with pytest.raises(serial.SerialException):
        AtChannel(pty_pair.path, on_urc=lambda line: None)


def test_loop_url_opens_with_exclusive_set():
    at = AtChannel("loop://", on_urc=lambda line: None)
    at.close()


def test_socket_url_works_with_exclusive_set():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        at = AtChannel(f"socket://127.0.0.1:{server.getsockname()[1]}", on_urc=lambda line: None)
        connection, _ = server.accept()
        with connection:
            threading.Timer(0.1, connection.sendall, [b"\r\nOK\r\n"]).start()
            assert at.command("AT", timeout=2.0) == []
            assert connection.recv(16) == b"AT\r"
        at.close()


# Pure layers ----------------------------------------------------------------

STREAM = (
    b'\r\r\n+CRING: VOICE\r\r\n\r\n+CLIP: "+6281234567890",145,,,,0\r\n'
    b"AT+CLCC\r\r\nOK\r\n" + b"Z" * 600 + b"\r\nRING\n\rNO CARRIER\r\n"
)


def framed(data: bytes, pieces: list[int]) -> list[bytes | ChannelProblem]:
    framer = LineFramer(max_line_bytes=512)
    items: list[bytes | ChannelProblem] = []
    start = 0
    for cut in sorted(pieces):
        items += framer.feed(data[start:cut])
        start = cut
    return items + framer.feed(data[start:])


def test_framer_cuts_at_any_cr_or_lf_and_drops_empty_lines():
    items = framed(STREAM, [])

    assert items[:4] == [
        b"+CRING: VOICE",
        b'+CLIP: "+6281234567890",145,,,,0',
        b"AT+CLCC",
        b"OK",
    ]
    assert isinstance(items[4], ChannelProblem)
    assert items[4].kind is ProblemKind.LINE_TOO_LONG
    assert items[5:] == [b"RING", b"NO CARRIER"]


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_framer_output_does_not_depend_on_how_the_bytes_are_split(cuts):
    assert framed(STREAM, cuts) == framed(STREAM, [])


def test_decode_hunts_past_a_garbage_prefix():
    line, problem = decode_line(b"\xff\x00RING")

    assert line == "RING"
    assert problem is not None and problem.kind is ProblemKind.NOT_TEXT
    assert problem.excerpt == "\\xff\\x00RING"


def test_decode_of_clean_text_reports_nothing():
    assert decode_line(b"  OK ") == ("OK", None)


@pytest.mark.parametrize(
    ("line", "command", "role"),
    [
        ("RING", None, LineRole.UNSOLICITED),
        ("OK", None, LineRole.UNKNOWN),
        ('+CLCC: 1,1,4,0,0,"",128', "AT+CLCC", LineRole.INFORMATION),
        ('+CLCC: 1,1,4,0,0,"",128', None, LineRole.UNSOLICITED),
        ("+CREG: 0,1", "AT+CREG?", LineRole.INFORMATION),
        ("+CREG: 0,1", "AT+CSQ", LineRole.UNSOLICITED),
        ("AT+CSQ", "AT+CSQ", LineRole.ECHO),
        ("Quectel", "AT+CGMI", LineRole.INFORMATION),
        ("BUSY", "ATD112;", LineRole.FINAL_ERROR),
        ("BUSY", "AT+CSQ", LineRole.UNSOLICITED),
        ("CONNECT 115200", "ATD*99#", LineRole.FINAL_OK),
        ("+CMS ERROR: 500", "AT+CMGS=20", LineRole.FINAL_ERROR),
    ],
)
def test_classify_line(line, command, role):
    pending = PendingCommand(command) if command else None

    assert classify_line(line, pending) is role
