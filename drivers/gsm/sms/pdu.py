"""SMS PDU decoding (3GPP TS 23.040, 23.038): a stored PDU in, a typed message or its problem out.

What a modem hands over with ``AT+CMGR`` in PDU mode is the SMSC address
followed by the TPDU. An SMS-DELIVER, field by field::

    SMSC   len(octets, TOA included) TOA semi-octets         07 91 2658050000F0
    first  bits 1-0 MTI (00 DELIVER, 10 STATUS-REPORT), bit 6 UDHI (a header precedes the text)
    OA     len(digits) TOA semi-octets; TOA 0x91 international, TON 101 alphanumeric (GSM-7)
    PID    protocol identifier
    DCS    data coding: GSM-7, 8-bit data or UCS2 (general, message-class and MWI groups)
    SCTS   yy MM dd hh mm ss tz, each a swapped BCD octet; tz in quarter hours, bit 3 minus
    UDL    user data length: septets for GSM-7, octets otherwise (header included)
    UD     [UDHL IE...] [fill bits up to a septet boundary, GSM-7 only] text
             IE 00 len 3: concatenation, 8-bit reference, total, sequence
             IE 08 len 4: concatenation, 16-bit reference, total, sequence
             IE 04 len 2 / 05 len 4: application port addressing, destination then source

Where python-gsmmodem-new's codec (``gsmmodem.pdu``) is sound it is used:
its GSM-7 default alphabet and extension tables, and ``decodeSmsPdu`` for
status reports. Where it is not, this module does the work itself: it reads
the UCS2 length including the header (and so over-reads), breaks surrogate
pairs (emoji) into halves, skips GSM-7 fill bits after a header by a formula that holds
for the 6-octet header only (text after a 16-bit reference header comes out
shifted),
reads 8-bit data as text, ignores the other DCS groups (a class-1 8-bit
message reads as GSM-7), and lets a truncated PDU escape as
``StopIteration``. Here every part keeps its raw payload (septets or UCS2
octets), so a concatenated message is decoded after its parts are joined:
an emoji split between two parts comes out whole.

Every defect raises ``PduError`` whose message names the field and what is
wrong; nothing else escapes (the fuzz tests hold it to that).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from gsmmodem.exceptions import EncodingError
from gsmmodem.pdu import GSM7_BASIC, GSM7_EXTENDED, decodeSmsPdu

from gateway.events import SmsEncoding

_GSM7_EXTENSION = {
    code if isinstance(code, int) else ord(code): char for char, code in GSM7_EXTENDED.items()
}
ESCAPE = 0x1B
MTI_DELIVER = 0x00
MTI_STATUS_REPORT = 0x02
UDHI = 0x40
TON_ALPHANUMERIC = 0x50
TON_INTERNATIONAL = 0x10


class PduError(ValueError):
    """A PDU that cannot be decoded; the message says which field and why."""


@dataclass(frozen=True)
class Concatenation:
    reference: int
    total: int
    sequence: int
    reference_bits: int  # 8 or 16


@dataclass(frozen=True)
class SmsDeliver:
    """One decoded SMS-DELIVER (maybe one part of a longer message)."""

    smsc: str | None
    sender: str
    protocol_id: int
    encoding: SmsEncoding
    timestamp: datetime  # the service centre time stamp, in its own zone
    payload: bytes  # GSM-7: septet codes; UCS2 and 8-bit: the octets after the header
    concatenation: Concatenation | None
    destination_port: int | None

    @property
    def text(self) -> str | None:
        return decode_payload(self.encoding, self.payload)


@dataclass(frozen=True)
class SmsStatusReport:
    """An SMS-STATUS-REPORT (decoded with python-gsmmodem-new, sound for these)."""

    smsc: str | None
    reference: int
    recipient: str | None
    status: int


def decode_pdu(pdu_hex: str) -> SmsDeliver | SmsStatusReport:
    """Decode a stored PDU (SMSC field first, as ``AT+CMGR`` gives it); PduError if broken."""
    text = pdu_hex.strip()
    try:
        data = bytes.fromhex(text)
    except ValueError as exc:
        raise PduError(f"not hex: {exc}") from exc
    if not data:
        raise PduError("empty PDU")
    reader = _Reader(data)
    smsc = _smsc(reader)
    first = reader.octet("first octet")
    mti = first & 0x03
    if mti == MTI_STATUS_REPORT:
        return _status_report(text, smsc)
    if mti != MTI_DELIVER:
        raise PduError(f"not an SMS-DELIVER: message type {mti} (first octet {first:02X})")
    sender = _address(reader, "originating address")
    protocol_id = reader.octet("protocol identifier")
    encoding, compressed = _data_coding(reader.octet("data coding scheme"))
    if compressed:
        raise PduError("compressed user data (DCS bit 5) is not supported")
    timestamp = _timestamp(reader.take(7, "service centre time stamp"))
    length = reader.octet("user data length")
    concatenation, port, payload = _user_data(reader, length, encoding, bool(first & UDHI))
    return SmsDeliver(smsc, sender, protocol_id, encoding, timestamp, payload, concatenation, port)


def decode_payload(encoding: SmsEncoding, payload: bytes) -> str | None:
    """The text of a (joined) payload; None for 8-bit data."""
    if encoding is SmsEncoding.GSM7:
        return gsm7_text(payload)
    if encoding is SmsEncoding.UCS2:
        # UTF-16 (UCS2 as phones send it): surrogate pairs are emoji; a lone half is replaced
        return payload[: len(payload) // 2 * 2].decode("utf-16-be", errors="replace")
    return None


def gsm7_text(septets: bytes) -> str:
    """GSM-7 default alphabet with the extension table (unknown escapes read as a space)."""
    out: list[str] = []
    escaped = False
    for code in septets:
        if escaped:
            out.append(_GSM7_EXTENSION.get(code, " "))
            escaped = False
        elif code == ESCAPE:
            escaped = True
        else:
            out.append(GSM7_BASIC[code & 0x7F])
    return "".join(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, count: int, field: str) -> bytes:
        if count < 0 or self.at + count > len(self.data):
            missing = self.at + count - len(self.data)
            raise PduError(f"truncated in the {field}: {missing} octet(s) missing")
        chunk = self.data[self.at : self.at + count]
        self.at += count
        return chunk

    def octet(self, field: str) -> int:
        return self.take(1, field)[0]

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.at, "rest")


def _smsc(reader: _Reader) -> str | None:
    length = reader.octet("SMSC length")
    if length == 0:
        return None
    body = reader.take(length, "SMSC address")
    return _number(body[0], body[1:])


def _address(reader: _Reader, field: str) -> str:
    digits = reader.octet(f"{field} length")
    toa = reader.octet(f"{field} type")
    octets = reader.take((digits + 1) // 2, field)
    if toa & 0x70 == TON_ALPHANUMERIC:
        return gsm7_text(_unpack_septets(octets, digits * 4 // 7, 0))
    return _number(toa, octets)[: digits + (1 if toa & 0x70 == TON_INTERNATIONAL else 0)]


def _number(toa: int, octets: bytes) -> str:
    digits = []
    for octet in octets:
        for nibble in (octet & 0x0F, octet >> 4):
            if nibble == 0x0F:
                break
            digits.append("0123456789*#abc"[nibble] if nibble < 15 else "")
    number = "".join(digits)
    return "+" + number if toa & 0x70 == TON_INTERNATIONAL and number else number


def _data_coding(dcs: int) -> tuple[SmsEncoding, bool]:
    """(encoding, compressed) from the DCS groups of 23.038 section 4."""
    group = dcs >> 4
    if group <= 0x7:  # general data coding (00xx) and automatic deletion (01xx)
        alphabet = (dcs >> 2) & 0x03
        encoding = {1: SmsEncoding.DATA_8BIT, 2: SmsEncoding.UCS2}.get(alphabet, SmsEncoding.GSM7)
        return encoding, bool(dcs & 0x20)
    if group in (0xC, 0xD):  # message waiting indication, GSM-7
        return SmsEncoding.GSM7, False
    if group == 0xE:  # message waiting indication, UCS2
        return SmsEncoding.UCS2, False
    if group == 0xF:  # data coding / message class
        return (SmsEncoding.DATA_8BIT if dcs & 0x04 else SmsEncoding.GSM7), False
    return SmsEncoding.GSM7, False  # reserved groups 8-B: read as the default alphabet


def _timestamp(octets: bytes) -> datetime:
    values = []
    for position, octet in enumerate(octets[:6]):
        low, high = octet & 0x0F, octet >> 4
        if low > 9 or high > 9:
            raise PduError(f"service centre time stamp: octet {position + 1} is not BCD")
        values.append(low * 10 + high)
    tz_octet = octets[6]
    tens, units = tz_octet & 0x07, tz_octet >> 4
    if units > 9:
        raise PduError("service centre time stamp: the zone is not BCD")
    quarters = tens * 10 + units
    if quarters > 14 * 4 + 3:
        raise PduError(f"service centre time stamp: zone {quarters} quarter hours is impossible")
    offset = timedelta(minutes=15 * quarters) * (-1 if tz_octet & 0x08 else 1)
    year, month, day, hour, minute, second = values
    try:
        return datetime(2000 + year, month, day, hour, minute, second, tzinfo=timezone(offset))
    except ValueError as exc:
        raise PduError(f"service centre time stamp: {exc}") from exc


def _user_data(
    reader: _Reader, length: int, encoding: SmsEncoding, has_header: bool
) -> tuple[Concatenation | None, int | None, bytes]:
    octets_needed = (length * 7 + 7) // 8 if encoding is SmsEncoding.GSM7 else length
    if octets_needed > 140:
        raise PduError(f"user data length {length} is more than 140 octets hold")
    data = reader.take(octets_needed, f"user data ({octets_needed} octets promised)")
    concatenation, port, header_octets = None, None, 0
    if has_header:
        if not data:
            raise PduError("user data header announced but the user data is empty")
        header_octets = data[0] + 1
        if header_octets > len(data):
            raise PduError(f"user data header of {data[0]} octets is longer than the user data")
        concatenation, port = _header(data[1:header_octets])
    if encoding is SmsEncoding.GSM7:
        header_septets = (header_octets * 8 + 6) // 7
        septets = _unpack_septets(data, length, 0)
        return concatenation, port, septets[header_septets:]
    return concatenation, port, data[header_octets:]


def _header(header: bytes) -> tuple[Concatenation | None, int | None]:
    concatenation, port, at = None, None, 0
    while at < len(header):
        if at + 2 > len(header):
            raise PduError("user data header: an information element is cut short")
        iei, size = header[at], header[at + 1]
        body = header[at + 2 : at + 2 + size]
        if len(body) != size:
            raise PduError(f"user data header: element {iei:02X} promises {size} octets")
        if iei == 0x00 and size == 3:
            concatenation = _concatenation(body[0], body[1], body[2], 8)
        elif iei == 0x08 and size == 4:
            concatenation = _concatenation(body[0] << 8 | body[1], body[2], body[3], 16)
        elif iei == 0x04 and size == 2:
            port = body[0]
        elif iei == 0x05 and size == 4:
            port = body[0] << 8 | body[1]
        at += 2 + size
    return concatenation, port


def _concatenation(reference: int, total: int, sequence: int, bits: int) -> Concatenation | None:
    if total == 0 or sequence == 0 or sequence > total:
        return None  # 23.040 9.2.3.24.1: such an element is ignored
    return Concatenation(reference, total, sequence, bits)


def _unpack_septets(octets: bytes, count: int, skip_bits: int) -> bytes:
    """``count`` 7-bit values packed LSB first, after ``skip_bits`` bits."""
    value = int.from_bytes(octets, "little")
    value >>= skip_bits
    out = bytearray()
    for _ in range(count):
        out.append(value & 0x7F)
        value >>= 7
    return bytes(out)


def _status_report(pdu_hex: str, smsc: str | None) -> SmsStatusReport:
    try:
        decoded = decodeSmsPdu(pdu_hex)
    except (EncodingError, StopIteration, ValueError, IndexError, KeyError) as exc:
        raise PduError(f"status report: {exc or type(exc).__name__}") from exc
    return SmsStatusReport(
        smsc=smsc,
        reference=int(decoded.get("reference", 0)),
        recipient=decoded.get("number"),
        status=int(decoded.get("status", 0)),
    )
