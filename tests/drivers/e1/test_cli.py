"""``edge112 e1 decode | pcap | monitor`` on a scripted D-channel: both directions framed as
TS16 line octets (and as E1 frames), with a bit error on the way; raw streams, pcapng and
classic pcap give the same frames and calls; tshark agrees on the fields and directions."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cython_ext.reference.hdlc import LSB_FIRST, MSB_FIRST, HdlcEncoder
from drivers.e1.lapd import Direction, IFrame, SFrame, Supervisory, UFrame, Unnumbered, cr_bit
from drivers.e1.pcap import CaptureReader, PcapWriter
from drivers.e1.q931 import CallReference, MessageType, Q931Message
from drivers.e1.q931_ie import (
    BearerCapability,
    CalledPartyNumber,
    CallingPartyNumber,
    Cause,
    ChannelIdentification,
    SendingComplete,
)
from gateway.cli import main
from tests.conftest import require_tool, validate_event

N2U = Direction.NETWORK_TO_USER
U2N = Direction.USER_TO_NETWORK
START = "2025-11-28T04:40:12Z"
START_S = 1_764_304_812
TIMESLOT_BITS_PER_SECOND = 64_000


@dataclass
class Sent:
    direction: Direction
    bit: int  # line bit of the first address bit
    frame: bytes
    bad: bool = False


@dataclass
class Line:
    """Both directions of a D-channel kept in step (what one sends, the other idles)."""

    bit_order: str = MSB_FIRST
    encoders: dict[Direction, HdlcEncoder] = field(default_factory=dict)
    ns: dict[Direction, int] = field(default_factory=lambda: {N2U: 0, U2N: 0})
    sent: list[Sent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.encoders = {d: HdlcEncoder(self.bit_order) for d in Direction}
        self.idle(4)

    def idle(self, flags: int) -> None:
        for encoder in self.encoders.values():
            encoder.add_flags(flags)
        target = max(e.bit_position for e in self.encoders.values())
        for encoder in self.encoders.values():
            while encoder.bit_position < target:
                encoder.add_flags(1)

    def frame(self, direction: Direction, raw: bytes, *, bad: bool = False) -> None:
        fcs = b"\x00\x00" if bad else None
        bit = self.encoders[direction].add_frame(raw, fcs=fcs)
        self.sent.append(Sent(direction, bit, raw, bad))
        self.idle(2)

    def q931(self, direction: Direction, message: Q931Message, *, bad: bool = False) -> None:
        number = self.ns[direction]
        if not bad:
            self.ns[direction] = (number + 1) % 128
        frame = IFrame(0, cr_bit(direction, command=True), 0, number, 0, False, message.to_bytes())
        self.frame(direction, frame.to_bytes(), bad=bad)

    def streams(self) -> dict[Direction, bytes]:
        self.idle(4)
        return {d: e.flush() for d, e in self.encoders.items()}


def reply(kind: MessageType, crv: int, *elements: Any, flag: int = 1) -> Q931Message:
    return Q931Message(kind, CallReference(crv, flag), tuple(elements))


def script(line: Line) -> None:
    """Link set-up; an answered call with overlap dialling and a caller who hangs up; a call
    the centre refuses as busy; a SETUP hit by a bit error (dropped) and sent again."""
    line.frame(N2U, UFrame(0, 1, 0, Unnumbered.SABME, True).to_bytes())
    line.frame(U2N, UFrame(0, 1, 0, Unnumbered.UA, True).to_bytes())
    caller = CallingPartyNumber("81311112222", 2, 1, 0, 3)
    setup = Q931Message(
        MessageType.SETUP,
        CallReference(5),
        (BearerCapability(), ChannelIdentification((3,), False), caller, CalledPartyNumber("1")),
    )
    line.q931(N2U, setup)
    line.frame(U2N, SFrame(0, 0, 0, Supervisory.RR, 1).to_bytes())  # RR: no direction in C/R
    line.q931(U2N, reply(MessageType.SETUP_ACKNOWLEDGE, 5, ChannelIdentification((7,), True)))
    line.q931(N2U, reply(MessageType.INFORMATION, 5, CalledPartyNumber("12"), flag=0))
    line.q931(U2N, reply(MessageType.CALL_PROCEEDING, 5))
    line.q931(U2N, reply(MessageType.ALERTING, 5))
    line.idle(400)
    line.q931(U2N, reply(MessageType.CONNECT, 5))
    line.q931(N2U, reply(MessageType.CONNECT_ACKNOWLEDGE, 5, flag=0))
    withheld = CallingPartyNumber("81399998888", 2, 1, 1, 3)
    busy_setup = Q931Message(
        MessageType.SETUP,
        CallReference(6),
        (BearerCapability(), ChannelIdentification((4,), True), withheld),
    )
    line.q931(N2U, busy_setup, bad=True)  # a bit error: bad FCS, dropped by everyone
    line.idle(100)
    line.q931(N2U, busy_setup)
    line.q931(U2N, reply(MessageType.RELEASE_COMPLETE, 6, Cause(17, 0)))
    line.idle(2000)
    line.q931(N2U, reply(MessageType.DISCONNECT, 5, Cause(16, 2), SendingComplete(), flag=0))
    line.q931(U2N, reply(MessageType.RELEASE, 5))
    line.q931(N2U, reply(MessageType.RELEASE_COMPLETE, 5, flag=0))


def write_streams(tmp_path: Path, bit_order: str = MSB_FIRST) -> tuple[Line, list[str]]:
    line = Line(bit_order)
    script(line)
    streams = line.streams()
    (tmp_path / "n2u.ts16").write_bytes(streams[N2U])
    (tmp_path / "u2n.ts16").write_bytes(streams[U2N])
    args = ["--format", "hdlc", "--start", START, "--bit-order", bit_order]
    args += [
        "--from-network",
        str(tmp_path / "n2u.ts16"),
        "--from-user",
        str(tmp_path / "u2n.ts16"),
    ]
    return line, args


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["e1", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def expected_times(line: Line) -> list[tuple[float, str]]:
    """(t, dir) of every frame, in line-time order (ties: n2u first, as read)."""
    rows = [
        (round(START_S + sent.bit / TIMESLOT_BITS_PER_SECOND, 6), sent.direction.value)
        for sent in line.sent
    ]
    return sorted(rows, key=lambda row: row[0])


# -- decode ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bit_order", [MSB_FIRST, LSB_FIRST])
def test_decode_raw_hdlc_streams_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bit_order: str
) -> None:
    line, args = write_streams(tmp_path, bit_order)
    code, out, _ = run(capsys, "decode", *args, "--json")
    assert code == 0
    frames = json_lines(out)
    assert [f["frame.number"] for f in frames] == list(range(1, len(line.sent) + 1))
    good = [f for f in frames if "error" not in f]
    [bad] = [f for f in frames if "error" in f]
    assert bad["error"] == "bad_fcs" and bad["dir"] == "n2u"
    sent_good = [sent for sent in line.sent if not sent.bad]
    assert [(f["t"], f["dir"]) for f in good] == [
        row for row in expected_times(line) if row != expected_times_bad(line)
    ]
    assert len(good) == len(sent_good)
    setup = good[2]
    assert setup == {
        "frame.number": 3,
        "t": setup["t"],
        "dir": "n2u",
        "lapd.sapi": 0,
        "lapd.tei": 0,
        "lapd.cr": 1,
        "lapd.control.ftype": 0,
        "lapd.control.n_s": 0,
        "lapd.control.n_r": 0,
        "lapd.control.p": False,
        "q931.call_ref_len": 2,
        "q931.call_ref": 5,
        "q931.call_ref_flag": 0,
        "q931.message_type": 5,
        "q931.channel.exclusive": False,
        "q931.channel.number": 3,
        "q931.calling_party_number.digits": "81311112222",
        "q931.presentation_ind": 0,
        "q931.screening_ind": 3,
        "q931.called_party_number.digits": "1",
    }
    rr = good[3]
    assert (rr["dir"], rr["lapd.control.ftype"], rr["lapd.control.s_ftype"]) == ("u2n", 1, 0)
    disconnect = good[-3]
    assert (disconnect["q931.cause_value"], disconnect["q931.cause_location"]) == (16, 2)
    assert disconnect["q931.sending_complete"] is True


def expected_times_bad(line: Line) -> tuple[float, str]:
    [sent] = [s for s in line.sent if s.bad]
    return (round(START_S + sent.bit / TIMESLOT_BITS_PER_SECOND, 6), sent.direction.value)


CALLS = [
    {
        "call_ref": 5,
        "originator": "network",
        "b_channel": 7,
        "caller": "81311112222",
        "caller_presentation": "allowed",
        "caller_type_of_number": 2,
        "caller_numbering_plan": 1,
        "caller_screening": 3,
        "called": "112",
        "cleared_by": "network",
        "cause": 16,
        "cause_location": 2,
        "outcome": "answered",
    },
    {
        "call_ref": 6,
        "originator": "network",
        "b_channel": 4,
        "caller": "81399998888",
        "caller_presentation": "restricted",
        "caller_type_of_number": 2,
        "caller_numbering_plan": 1,
        "caller_screening": 3,
        "called": None,
        "alerted_at": None,
        "answered_at": None,
        "cleared_by": "user",
        "cause": 17,
        "cause_location": 0,
        "outcome": "rejected",
    },
]
CALL_FIELDS = [
    "call_ref",
    "originator",
    "b_channel",
    "caller",
    "caller_presentation",
    "caller_type_of_number",
    "caller_numbering_plan",
    "caller_screening",
    "called",
    "offered_at",
    "alerted_at",
    "answered_at",
    "ended_at",
    "released_at",
    "cleared_by",
    "cause",
    "cause_location",
    "outcome",
]


def check_calls(calls: list[dict[str, Any]], line: Line) -> None:
    assert [list(call) for call in calls] == [CALL_FIELDS, CALL_FIELDS]
    for call, expected in zip(calls, CALLS, strict=True):
        assert {key: call[key] for key in expected} == expected
    good = [s for s in line.sent if not s.bad]

    def t(index: int) -> Any:  # a classic pcap keeps microseconds: allow for its rounding
        return pytest.approx(START_S + good[index].bit / TIMESLOT_BITS_PER_SECOND, abs=1e-6)

    answered = calls[0]
    # SETUP is frame 2 of the good ones (after SABME, UA); ALERTING 7, CONNECT 8, DISCONNECT
    # 12, RELEASE COMPLETE 14.
    assert [answered[k] for k in ("offered_at", "alerted_at", "answered_at")] == [t(2), t(7), t(8)]
    assert [answered[k] for k in ("ended_at", "released_at")] == [t(-3), t(-1)]
    assert calls[1]["offered_at"] == t(10) and calls[1]["ended_at"] == t(11)


def test_decode_calls_json_has_exactly_the_documented_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line, args = write_streams(tmp_path)
    code, out, err = run(capsys, "decode", *args, "--calls", "--json")
    assert code == 0
    check_calls(json_lines(out), line)
    assert "bad frames: {'bad_fcs': 1}" in err


def test_decode_calls_as_text_and_frames_as_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, args = write_streams(tmp_path)
    _, out, _ = run(capsys, "decode", *args, "--calls")
    first, second = out.splitlines()
    assert first.startswith(
        "CRV     5 network ch 7  81311112222 (allowed) -> 112  offered 2025-11-28T04:40:12"
    )
    assert first.endswith("cleared by network, cause 16: answered")
    assert second.endswith("cleared by user, cause 17: rejected")
    _, out, _ = run(capsys, "decode", *args)
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["1", "0.000000", "N->U", "LAPD"]
    assert "SABME" in lines[0]
    assert "SETUP, CRV 5, calling 81311112222, called 1, channel 3 preferred" in lines[2]
    assert "U->N LAPD    4  SAPI 0 TEI 0 C RR N(R)=1" in lines[3]
    assert "bad frame: bad fcs" in out


def test_decode_events_match_the_contract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, args = write_streams(tmp_path)
    code, out, _ = run(capsys, "decode", *args, "--events", "--line", "span-bontang")
    assert code == 0
    events = json_lines(out)
    assert [e["type"] for e in events] == [
        "call.offered",
        "call.answered",
        "call.offered",
        "call.abandoned",
        "call.ended",
    ]
    for event in events:
        validate_event(event)
        assert event["data"]["line"] == "span-bontang"
    withheld = events[2]["data"]
    assert (withheld["number"], withheld["presentation"]) == (None, "restricted")
    rejected = events[3]["data"]
    assert (rejected["cause"], rejected["outcome"], rejected["q850_cause"]) == (
        "busy",
        "rejected",
        17,
    )
    ended = events[4]["data"]
    assert (ended["b_channel"], ended["called"], ended["cleared_by"]) == (7, "112", "network")


# -- the same through pcapng, classic pcap and E1 frames ---------------------------------------


def without_numbers(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in f.items() if k != "frame.number"} for f in frames if "error" not in f]


def test_pcap_writes_pcapng_that_decodes_the_same_and_tshark_agrees(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line, args = write_streams(tmp_path)
    out_path = tmp_path / "span.pcapng"
    code, _, err = run(capsys, "pcap", *args, "-o", str(out_path))
    assert code == 0
    assert "15 frames written" in err and "bad_fcs" in err
    _, raw_json, _ = run(capsys, "decode", *args, "--json")
    _, pcap_json, _ = run(capsys, "decode", str(out_path), "--json")
    assert without_numbers(json_lines(pcap_json)) == without_numbers(json_lines(raw_json))
    _, calls_json, _ = run(capsys, "decode", str(out_path), "--calls", "--json")
    check_calls(json_lines(calls_json), line)
    cross_check_with_tshark(out_path, without_numbers(json_lines(pcap_json)))


TSHARK_FIELDS = {
    "frame.time_epoch": "t",
    "lapd.direction": "dir",
    "lapd.sapi": "lapd.sapi",
    "lapd.tei": "lapd.tei",
    "lapd.cr": "lapd.cr",
    "lapd.control.ftype": "lapd.control.ftype",
    "lapd.control.n_s": "lapd.control.n_s",
    "lapd.control.n_r": "lapd.control.n_r",
    "q931.call_ref": "q931.call_ref",
    "q931.call_ref_flag": "q931.call_ref_flag",
    "q931.message_type": "q931.message_type",
    "q931.calling_party_number.digits": "q931.calling_party_number.digits",
    "q931.called_party_number.digits": "q931.called_party_number.digits",
    "q931.channel.number": "q931.channel.number",
    "q931.cause_value": "q931.cause_value",
    "q931.cause_location": "q931.cause_location",
}


def cross_check_with_tshark(path: Path, ours: list[dict[str, Any]]) -> None:
    tshark = require_tool("tshark")
    command = [tshark, "-r", str(path), "-T", "fields", "-E", "separator=\t"]
    for name in TSHARK_FIELDS:
        command += ["-e", name]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    rows = [row.split("\t") for row in result.stdout.splitlines()]
    assert len(rows) == len(ours)
    for row, frame in zip(rows, ours, strict=True):
        theirs = dict(zip(TSHARK_FIELDS.values(), row, strict=True))
        mine: dict[str, str] = {}
        for key in TSHARK_FIELDS.values():
            value = frame.get(key)
            if key == "t":
                value = f"{value:.9f}"
            elif key == "dir":
                value = {"u2n": "0", "n2u": "1"}[value]
            elif key == "q931.call_ref" and value is not None:
                value = value.to_bytes(frame["q931.call_ref_len"], "big").hex()
            mine[key] = "" if value is None else str(value)
        theirs["q931.call_ref_flag"] = {"False": "0", "True": "1"}.get(
            theirs["q931.call_ref_flag"], theirs["q931.call_ref_flag"]
        )
        assert float(theirs.pop("t")) == pytest.approx(float(mine.pop("t")), abs=1e-6)
        assert {k: number(v) for k, v in theirs.items()} == {k: number(v) for k, v in mine.items()}


def number(text: str) -> str:
    """tshark prints some integers in hex (0x03): compare values, not spellings."""
    try:
        return str(int(text, 0))
    except ValueError:
        return text


def test_classic_pcap_directions_come_from_cr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line, args = write_streams(tmp_path)
    pcapng = tmp_path / "span.pcapng"
    run(capsys, "pcap", *args, "-o", str(pcapng))
    classic = tmp_path / "span.pcap"
    with pcapng.open("rb") as source, classic.open("wb") as target:
        writer = PcapWriter(target)
        for packet in CaptureReader(source):
            writer.write(packet.data, packet.time_ns)
    _, out, _ = run(capsys, "decode", str(classic), "--json")
    frames = json_lines(out)
    directions = [f["dir"] for f in frames]
    good = [s for s in line.sent if not s.bad]
    assert directions == [
        None if isinstance(_kind(s.frame), SFrame) else s.direction.value for s in good
    ]
    _, calls, _ = run(capsys, "decode", str(classic), "--calls", "--json")
    check_calls(json_lines(calls), line)


def _kind(frame: bytes) -> Any:
    from drivers.e1.lapd import LapdFrame

    return LapdFrame.from_bytes(frame)


def test_decode_raw_e1_frames_uses_the_d_channel_timeslot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from drivers.e1.generator import E1Generator, mux

    line = Line()
    script(line)
    streams = line.streams()
    for direction, name in ((N2U, "n2u.e1"), (U2N, "u2n.e1")):
        ts16 = streams[direction]
        voice = bytes(range(256)) * (len(ts16) // 256 + 1)
        payload = mux({16: ts16, 1: voice, 17: voice[::-1]}, len(ts16))
        (tmp_path / name).write_bytes(E1Generator(crc4=False).frames(payload))
    args = ["--format", "e1", "--start", START, "--from-network", str(tmp_path / "n2u.e1")]
    args += ["--from-user", str(tmp_path / "u2n.e1")]
    code, out, _ = run(capsys, "decode", *args, "--json")
    assert code == 0
    frames = [f for f in json_lines(out) if "error" not in f]
    good = [s for s in line.sent if not s.bad]
    # TS16 octet k is in E1 frame k, at line bit 256 k + 128: the address bit b of the
    # timeslot stream is at (256 (b // 8) + 128 + b % 8) / 2,048,000 s.
    expected = sorted(
        (round(START_S + (256 * (s.bit // 8) + 128 + s.bit % 8) / 2_048_000, 6), s.direction.value)
        for s in good
    )
    assert [(f["t"], f["dir"]) for f in frames] == expected
    _, calls, _ = run(capsys, "decode", *args, "--calls", "--json")
    assert [c["outcome"] for c in json_lines(calls)] == ["answered", "rejected"]


def test_a_silent_d_channel_goes_down_and_takes_the_calls_with_it() -> None:
    """A live tap's clock: silence past T203 + N200 x T200 is a link down; a call in set-up
    ends at once, an answered one when T309 runs out."""
    from drivers.e1.decode import TapDecoder, TapFrame
    from drivers.e1.lapd_monitor import LinkChange, LinkState

    line = Line()
    script(line)
    good = [s for s in line.sent if not s.bad]
    tap = TapDecoder("span0")
    for sent in good[:10]:  # up to the CONNECT ACKNOWLEDGE of CRV 5: answered, still up
        time_ns = START_S * 1_000_000_000 + sent.bit * 15_625
        tap.feed(TapFrame(time_ns, sent.direction, sent.frame))
    tap.feed(TapFrame(START_S * 1_000_000_000 + good[10].bit * 15_625, N2U, good[10].frame))
    assert [call.call_ref for call in tap.calls()] == [5, 6]
    changes = tap.tick(START_S + 14)
    assert [c.state for c in changes if isinstance(c, LinkChange)] == [LinkState.DOWN]
    released = [c for c in changes if not isinstance(c, LinkChange)]
    assert [(c.call.call_ref, c.call.outcome) for c in released] == [(6, None)]
    [t309] = [c for c in tap.tick(START_S + 14 + 90) if not isinstance(c, LinkChange)]
    assert (t309.call.call_ref, t309.call.outcome) == (5, "answered")
    assert [e.TYPE.value for e in tap.events][-2:] == ["call.abandoned", "call.ended"]


# -- monitor ---------------------------------------------------------------------------------


def test_monitor_replays_files_and_sums_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, args = write_streams(tmp_path)
    code, out, _ = run(capsys, "monitor", *args)
    assert code == 0
    assert "D-channel SAPI 0 TEI 0: unknown -> awaiting_establishment (sabme)" in out
    assert "call CRV 5 (network) offered: from 81311112222 (allowed) to 1" in out
    assert "call CRV 5 (network) digits: called 112" in out
    assert "call CRV 6 (network) released: by user, cause 17, rejected" in out
    assert "calls 2, outcomes {'answered': 1, 'rejected': 1}" in out


def test_monitor_reads_span_source_urls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, args = write_streams(tmp_path)
    urls = [
        "--format",
        "hdlc",
        "--start",
        START,
        "--from-network",
        (tmp_path / "n2u.ts16").as_uri(),
        "--from-user",
        (tmp_path / "u2n.ts16").as_uri(),
    ]
    code, out, _ = run(capsys, "monitor", *urls, "--json")
    assert code == 0
    rows = json_lines(out)
    calls = [row for row in rows if row["kind"] == "call" and row["change"] == "released"]
    assert [(c["call"]["call_ref"], c["call"]["outcome"]) for c in calls] == [
        (6, "rejected"),
        (5, "answered"),
    ]
    assert rows[-1]["kind"] == "summary" and rows[-1]["calls"] == 2
    _, files_out, _ = run(capsys, "monitor", *args, "--json")
    assert [r for r in json_lines(files_out) if r["kind"] == "call"] == [
        r for r in rows if r["kind"] == "call"
    ]


def test_pcap_from_span_source_urls_and_deframed_lapd_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from drivers.e1.sources import lapd_record

    line, args = write_streams(tmp_path)
    from_files, from_urls = tmp_path / "files.pcapng", tmp_path / "urls.pcapng"
    run(capsys, "pcap", *args, "-o", str(from_files))
    urls = [a if not a.endswith(".ts16") else Path(a).as_uri() for a in args]
    code, _, err = run(capsys, "pcap", *urls, "-o", str(from_urls))
    assert code == 0, err
    _, files_json, _ = run(capsys, "decode", str(from_files), "--json")
    _, urls_json, _ = run(capsys, "decode", str(from_urls), "--json")
    assert json_lines(urls_json) == json_lines(files_json)
    # Deframed frames (a card that hands over LAPD frames): stamped as they are read.
    for direction in Direction:
        records = b"".join(
            lapd_record(s.frame) for s in line.sent if s.direction is direction and not s.bad
        )
        (tmp_path / f"{direction.value}.lapd").write_bytes(records)
    lapd = ["--format", "lapd", "--from-network", str(tmp_path / "n2u.lapd")]
    lapd += ["--from-user", str(tmp_path / "u2n.lapd")]
    code, _, err = run(capsys, "pcap", *lapd, "-o", str(tmp_path / "lapd.pcapng"))
    assert code == 0, err
    _, out, _ = run(capsys, "decode", str(tmp_path / "lapd.pcapng"), "--json")
    frames = json_lines(out)
    assert len(frames) == len([s for s in line.sent if not s.bad])
    assert sorted(f["dir"] for f in frames) == sorted(
        s.direction.value for s in line.sent if not s.bad
    )


# -- bad input -----------------------------------------------------------------------------------


def test_bad_usage_and_input_exit_2_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_capture = tmp_path / "notes.txt"
    not_capture.write_text("hello, this is not a capture\n")
    for argv, reason in [
        (["decode", str(tmp_path / "missing.pcap")], "cannot read"),
        (["decode", str(not_capture)], "not_a_capture"),
        (["decode"], "nothing to read"),
        (["decode", "--format", "hdlc"], "needs --from-network"),
        (["decode", str(not_capture), "--format", "hdlc", "--from-user", "x"], "not both"),
        (["decode", "--from-user", "x"], "need --format"),
        (["decode", "--format", "hdlc", "--from-user", "x", "--start", "noon"], "RFC 3339"),
        (["decode", "--format", "e1", "--from-user", "x", "--timeslot", "0"], "1-31"),
    ]:
        code, _, err = run(capsys, *argv)
        assert code == 2, argv
        assert reason in err, (argv, err)


def test_a_capture_cut_short_prints_what_came_before_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, args = write_streams(tmp_path)
    whole = tmp_path / "span.pcapng"
    run(capsys, "pcap", *args, "-o", str(whole))
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(whole.read_bytes()[:-30])
    code, out, err = run(capsys, "decode", str(cut), "--json")
    assert code == 2
    assert len(json_lines(out)) == 14
    assert "cut.pcapng" in err and "truncated" in err


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_damaged_inputs_never_crash_the_tools(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: st.DataObject
) -> None:
    """Bit errors in raw streams, damaged captures: frames reported bad, files refused with a
    reason; never a traceback, for frames, calls and events alike."""
    line = Line()
    script(line)
    streams = line.streams()
    n2u = bytearray(streams[N2U])
    for _ in range(data.draw(st.integers(0, 30))):
        index = data.draw(st.integers(0, len(n2u) - 1))
        n2u[index] ^= 1 << data.draw(st.integers(0, 7))
    (tmp_path / "n2u.bin").write_bytes(bytes(n2u))
    (tmp_path / "u2n.bin").write_bytes(data.draw(st.binary(max_size=2000)))
    capture = bytearray(_capture_bytes(line))
    for _ in range(data.draw(st.integers(1, 10))):
        capture[data.draw(st.integers(0, len(capture) - 1))] = data.draw(st.integers(0, 255))
    (tmp_path / "damaged.pcapng").write_bytes(
        bytes(capture[: data.draw(st.integers(0, len(capture)))])
    )
    raw = ["--format", "hdlc", "--from-network", str(tmp_path / "n2u.bin")]
    raw += ["--from-user", str(tmp_path / "u2n.bin")]
    for inputs in (raw, [str(tmp_path / "damaged.pcapng")]):
        for shown in ([], ["--json"], ["--calls", "--json"], ["--events"]):
            code, out, _ = run(capsys, "decode", *inputs, *shown)
            assert code in (0, 2)
            if "--json" in shown or "--events" in shown:
                json_lines(out)


def _capture_bytes(line: Line) -> bytes:
    import io

    from drivers.e1.pcap import PcapngWriter

    out = io.BytesIO()
    writer = PcapngWriter(out)
    for sent in line.sent:
        if not sent.bad:
            writer.write(sent.frame, START_S * 1_000_000_000 + sent.bit * 15_625, sent.direction)
    return out.getvalue()
