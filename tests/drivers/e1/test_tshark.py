"""Cross-check with Wireshark: frames we build, written as a LINKTYPE_LAPD (203) pcap by
``text2pcap``, decoded by ``tshark``; its fields must equal our decoder's.

Skipped with the reason when tshark or text2pcap is missing (Debian: ``apt install
tshark``, which brings text2pcap); failed instead under EDGE112_REQUIRE_TOOLS=1.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

from drivers.e1.lapd import Direction, IFrame, LapdFrame, UFrame, Unnumbered, cr_bit
from drivers.e1.q931 import CallReference, MessageType, Q931Message, decode_message
from drivers.e1.q931_ie import (
    BearerCapability,
    CalledPartyNumber,
    CallingPartyNumber,
    Cause,
    ChannelIdentification,
    Display,
    InformationElement,
    ProgressIndicator,
    RawIe,
    SendingComplete,
    Shift,
)
from tests.conftest import require_tool
from tests.drivers.e1.test_q931 import DISCONNECT_BUSY, RELEASE_COMPLETE, RESTART, SETUP, STATUS

FIELDS = (
    "lapd.sapi",
    "lapd.tei",
    "lapd.cr",
    "lapd.control.n_s",
    "lapd.control.n_r",
    "q931.call_ref",
    "q931.call_ref_flag",
    "q931.message_type",
    "q931.calling_party_number.digits",
    "q931.called_party_number.digits",
    "q931.channel.number",
    "q931.cause_value",
    "q931.cause_location",
)


def random_message(rng: random.Random) -> Q931Message:
    elements: list[InformationElement] = []
    if rng.random() < 0.5:
        elements.append(SendingComplete())
    elements.append(BearerCapability())
    if rng.random() < 0.5:
        elements.append(Cause(rng.randrange(1, 128), rng.choice([0, 1, 2, 3, 4, 5, 7, 10])))
    if rng.random() < 0.6:
        channels = tuple(sorted(rng.sample(range(1, 32), rng.choice([1, 1, 1, 2]))))
        elements.append(ChannelIdentification(channels, rng.random() < 0.5))
    if rng.random() < 0.3:
        elements.append(ProgressIndicator(rng.choice([1, 2, 3, 8]), rng.randrange(6)))
    if rng.random() < 0.3:
        elements.append(Display("PANGGILAN DARURAT"))
    if rng.random() < 0.7:
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 14)))
        presentation = rng.choice([None, 0, 1])
        screening = None if presentation is None else rng.randrange(4)
        elements.append(CallingPartyNumber(digits, rng.randrange(5), 1, presentation, screening))
    if rng.random() < 0.7:
        elements.append(CalledPartyNumber(rng.choice(["112", "110", "0215551234"]), 0, 1))
    if rng.random() < 0.3:  # codeset 6 elements that only look like a cause and a number
        elements += [Shift(6), RawIe(6, 0x08, b"\x80\x91"), RawIe(6, 0x6C, b"\x81\x39\x39")]
    message_type = rng.choice(list(MessageType)[1:])
    return Q931Message(
        message_type, CallReference(rng.randrange(0x8000), rng.randrange(2)), tuple(elements)
    )


def frames() -> list[bytes]:
    rng = random.Random(112)
    out = [
        IFrame(0, 1, 0, 0, 0, False, SETUP).to_bytes(),
        IFrame(0, 0, 0, 0, 1, False, DISCONNECT_BUSY).to_bytes(),
        IFrame(0, 1, 0, 1, 1, True, RELEASE_COMPLETE).to_bytes(),
        IFrame(0, 1, 0, 2, 1, False, RESTART).to_bytes(),
        IFrame(0, 0, 0, 127, 3, False, STATUS).to_bytes(),
        UFrame(0, 1, 0, Unnumbered.SABME, True).to_bytes(),
    ]
    for index in range(40):
        direction = rng.choice(list(Direction))
        payload = random_message(rng).to_bytes()
        out.append(
            IFrame(
                0,
                cr_bit(direction, command=True),
                0,
                index % 128,
                rng.randrange(128),
                rng.random() < 0.2,
                payload,
            ).to_bytes()
        )
    return out


def ours(raw: bytes) -> list[str]:
    frame = LapdFrame.from_bytes(raw)
    row = [str(frame.sapi), str(frame.tei), str(frame.cr)]
    if not isinstance(frame, IFrame):
        return [*row, "", "", "", "", "", "", "", "", "", ""]
    message = decode_message(frame.payload)
    reference = message.call_reference
    calling, called = message.calling_party_number, message.called_party_number
    channel, cause = message.channel_identification, message.cause
    return [
        *row,
        str(frame.ns),
        str(frame.nr),
        reference.value.to_bytes(reference.length, "big").hex() if reference.length else "",
        str(reference.flag) if reference.length else "",
        f"0x{message.message_type:02x}",
        calling.digits if calling and calling.digits else "",
        called.digits if called and called.digits else "",
        ",".join(map(str, channel.channels)) if channel else "",
        str(cause.value) if cause else "",
        str(cause.location) if cause else "",
    ]


def test_tshark_decodes_the_same_fields(tmp_path: Path) -> None:
    text2pcap = require_tool("text2pcap")
    tshark = require_tool("tshark")
    raw_frames = frames()
    dump = tmp_path / "frames.txt"
    dump.write_text(
        "".join(
            "".join(
                f"{offset:06x} {frame[offset : offset + 16].hex(' ')}\n"
                for offset in range(0, len(frame), 16)
            )
            for frame in raw_frames
        )
    )
    pcap = tmp_path / "frames.pcap"
    subprocess.run([text2pcap, "-q", "-l", "203", str(dump), str(pcap)], check=True)
    command = [tshark, "-r", str(pcap), "-T", "fields", "-E", "separator=\t", "-E", "aggregator=,"]
    for name in FIELDS:
        command += ["-e", name]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(rows) == len(raw_frames)
    for index, (theirs, raw) in enumerate(zip(rows, raw_frames, strict=True)):
        mine = ours(raw)
        if mine[5]:  # tshark shows the call reference flag as 0/1 or False/True
            theirs[6] = {"False": "0", "True": "1"}.get(theirs[6], theirs[6])
        assert theirs == mine, f"frame {index}: {raw.hex()}"
