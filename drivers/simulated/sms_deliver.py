"""SMS-DELIVER PDUs as a network hands them to a modem (3GPP TS 23.040), for the simulator.

The simulated modem stores these in its SIM and the gateway reads them back
with ``AT+CMGR`` in PDU mode, so every shape the gateway must decode can be
made here: GSM-7 (with the extension table), UCS2 with emoji (surrogate
pairs, split across parts when the split falls there), 8-bit data with an
application port header, concatenated messages with 8- and 16-bit
references, and AML location texts. Layout of one PDU::

    SMSC        len(octets incl. TOA) TOA semi-octets       07 91 2658050000F0
    first       MTI=00 (DELIVER) | MMS 0x04 | UDHI 0x40     44
    OA          len(digits) TOA semi-octets (TOA D0: alphanumeric, septets)
    PID DCS     00, DCS 00 GSM-7 | 04 8-bit | 08 UCS2
    SCTS        7 swapped BCD octets: yy MM dd hh mm ss tz (quarter hours, bit 3 = minus)
    UDL UD      UDL in septets (GSM-7) or octets; UD = [UDHL UDH fill] payload

``encode_deliver`` makes one PDU; ``split_message`` cuts a text into the
PDUs of a concatenated message. Both are pure; the hex is upper case as
modems print it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from gsmmodem.pdu import GSM7_BASIC, GSM7_EXTENDED

WIB = timezone(timedelta(hours=7))
DEFAULT_SMSC = "+6281100000"  # an operator SMSC-shaped number (Telkomsel's begin +62811)
GSM7_SINGLE_SEPTETS = 160
GSM7_PART_SEPTETS = 153  # with an 8-bit concatenation header (6 octets: 7 septets)
UCS2_SINGLE_OCTETS = 140
UCS2_PART_OCTETS = 134  # 140 - 6 header octets, an even number of UCS2 octets


@dataclass(frozen=True)
class Concatenation:
    reference: int
    total: int
    sequence: int
    sixteen_bit: bool = False

    def header(self) -> bytes:
        if self.sixteen_bit:
            high, low = self.reference >> 8, self.reference & 0xFF
            return bytes([0x08, 4, high, low, self.total, self.sequence])
        return bytes([0x00, 3, self.reference & 0xFF, self.total, self.sequence])


def gsm7_septets(text: str) -> bytes:
    """GSM-7 default alphabet codes of ``text`` (ESC + code for the extension table)."""
    out = bytearray()
    for char in text:
        index = GSM7_BASIC.find(char)
        if index >= 0:
            out.append(index)
        elif char in GSM7_EXTENDED:
            code = GSM7_EXTENDED[char]
            out += bytes([0x1B, code if isinstance(code, int) else ord(code)])
        else:
            raise ValueError(f"{char!r} is not in the GSM-7 alphabet")
    return bytes(out)


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack 7-bit values LSB first after ``fill_bits`` zero bits (the fill after a UDH)."""
    accumulator, bits, out = 0, fill_bits, bytearray()
    for septet in septets:
        accumulator |= (septet & 0x7F) << bits
        bits += 7
        while bits >= 8:
            out.append(accumulator & 0xFF)
            accumulator >>= 8
            bits -= 8
    if bits:
        out.append(accumulator & 0xFF)
    return bytes(out)


def semi_octets(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes(int(digits[i + 1] + digits[i], 16) for i in range(0, len(digits), 2))


def address(number: str, *, smsc: bool = False) -> bytes:
    """An address field: international (+...), national digits, or alphanumeric."""
    if number.startswith("+") and number[1:].isdigit():
        digits, toa = number[1:], 0x91
    elif number.isdigit():
        digits, toa = number, 0x81
    else:
        packed = pack_septets(gsm7_septets(number))
        return bytes([len(packed) * 2, 0xD0]) + packed
    body = semi_octets(digits)
    length = len(body) + 1 if smsc else len(digits)
    return bytes([length, toa]) + body


def timestamp(moment: datetime) -> bytes:
    """The 7-octet service centre time stamp, in the moment's own zone."""
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("the time stamp needs a zone")
    quarters = int(offset.total_seconds() // 900)
    tz = f"{abs(quarters):02d}"
    octets = bytearray(semi_octets(moment.strftime("%y%m%d%H%M%S")))
    tz_octet = semi_octets(tz)[0]
    if quarters < 0:
        tz_octet |= 0x08
    octets.append(tz_octet)
    return bytes(octets)


def encode_deliver(
    sender: str,
    *,
    text: str | None = None,
    data: bytes | None = None,
    encoding: str = "gsm7",
    concat: Concatenation | None = None,
    port: int | None = None,
    sent_at: datetime | None = None,
    smsc: str | None = DEFAULT_SMSC,
) -> str:
    """One SMS-DELIVER PDU as hex. ``encoding``: gsm7, ucs2 (``text``) or 8bit (``data``)."""
    header = b""
    if concat is not None:
        header += concat.header()
    if port is not None:
        header += bytes([0x05, 4, port >> 8, port & 0xFF, 0, 0])
    udh = bytes([len(header)]) + header if header else b""
    if encoding == "gsm7":
        septets = gsm7_septets(text or "")
        fill = (7 - (len(udh) * 8) % 7) % 7 if udh else 0
        header_septets = (len(udh) * 8 + fill) // 7
        # The text starts on a septet boundary: after the header's octets and the fill bits.
        user_data = udh + pack_septets(septets, fill)
        udl, dcs = header_septets + len(septets), 0x00
    elif encoding == "ucs2":
        user_data = udh + (text or "").encode("utf-16-be")
        udl, dcs = len(user_data), 0x08
    elif encoding == "8bit":
        user_data = udh + (data or b"")
        udl, dcs = len(user_data), 0x04
    else:
        raise ValueError(f"unknown encoding {encoding!r}")
    first = 0x04 | (0x40 if udh else 0)
    moment = sent_at or datetime.now(WIB).replace(microsecond=0)
    pdu = (
        (address(smsc, smsc=True) if smsc else b"\x00")
        + bytes([first])
        + address(sender)
        + bytes([0x00, dcs])
        + timestamp(moment)
        + bytes([udl])
        + user_data
    )
    return pdu.hex().upper()


def split_message(
    sender: str,
    text: str,
    *,
    encoding: str = "gsm7",
    reference: int = 1,
    sixteen_bit: bool = False,
    sent_at: datetime | None = None,
) -> list[str]:
    """The PDUs of ``text`` as a concatenated message (one PDU when it fits in one)."""
    if encoding == "gsm7":
        septets = gsm7_septets(text)
        if len(septets) <= GSM7_SINGLE_SEPTETS:
            return [encode_deliver(sender, text=text, sent_at=sent_at)]
        chunks = _cut_gsm7(text, GSM7_PART_SEPTETS - (1 if sixteen_bit else 0))
    elif encoding == "ucs2":
        raw = text.encode("utf-16-be")
        if len(raw) <= UCS2_SINGLE_OCTETS:
            return [encode_deliver(sender, text=text, encoding="ucs2", sent_at=sent_at)]
        size = UCS2_PART_OCTETS - (2 if sixteen_bit else 0)
        raw_chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
        return [
            _ucs2_part(
                sender, chunk, Concatenation(reference, len(raw_chunks), n, sixteen_bit), sent_at
            )
            for n, chunk in enumerate(raw_chunks, start=1)
        ]
    else:
        raise ValueError(f"cannot split {encoding!r}")
    return [
        encode_deliver(
            sender,
            text=chunk,
            concat=Concatenation(reference, len(chunks), n, sixteen_bit),
            sent_at=sent_at,
        )
        for n, chunk in enumerate(chunks, start=1)
    ]


def _cut_gsm7(text: str, septets_per_part: int) -> list[str]:
    chunks, current, used = [], "", 0
    for char in text:
        size = len(gsm7_septets(char))
        if used + size > septets_per_part:
            chunks.append(current)
            current, used = "", 0
        current += char
        used += size
    chunks.append(current)
    return chunks


def _ucs2_part(sender: str, raw: bytes, concat: Concatenation, sent_at: datetime | None) -> str:
    """A UCS2 part from raw UTF-16 octets: a surrogate pair may be split between parts."""
    header = concat.header()
    udh = bytes([len(header)]) + header
    moment = sent_at or datetime.now(WIB).replace(microsecond=0)
    pdu = (
        address(DEFAULT_SMSC, smsc=True)
        + bytes([0x44])
        + address(sender)
        + bytes([0x00, 0x08])
        + timestamp(moment)
        + bytes([len(udh) + len(raw)])
        + udh
        + raw
    )
    return pdu.hex().upper()


def aml_text(
    *,
    latitude: float = -0.50213,
    longitude: float = 117.15368,
    radius_m: int = 12,
    positioned_at: datetime | None = None,
    confidence_pct: int = 68,
    method: str = "G",
    imsi: str = "510101234567890",
    imei: str = "3569820123456780",
    mcc: str = "510",
    mnc: str = "10",
) -> str:
    """An AML SMS text (ETSI TS 103 625 text form); ``ml`` is the length of the whole text."""
    moment = (positioned_at or datetime.now(UTC)).astimezone(UTC)
    body = (
        f'A"ML=1;lt={latitude:+.5f};lg={longitude:+.5f};rd={radius_m};'
        f"top={moment:%Y%m%d%H%M%S};lc={confidence_pct};pm={method};si={imsi};ei={imei};"
        f"mcc={mcc};mnc={mnc};ml="
    )
    length = len(body) + 3
    return f"{body}{length}"


def encode_status_report(
    recipient: str,
    *,
    reference: int = 1,
    status: int = 0,
    sent_at: datetime | None = None,
    smsc: str | None = DEFAULT_SMSC,
) -> str:
    """An SMS-STATUS-REPORT PDU (MTI 10): message ``reference`` to ``recipient`` has ``status``
    (0 delivered)."""
    moment = sent_at or datetime.now(WIB).replace(microsecond=0)
    pdu = (
        (address(smsc, smsc=True) if smsc else b"\x00")
        + bytes([0x06, reference & 0xFF])
        + address(recipient)
        + timestamp(moment)
        + timestamp(moment)
        + bytes([status])
    )
    return pdu.hex().upper()
