"""Advanced Mobile Location (ETSI TS 103 625): the AML SMS text a handset sends beside a 112 call.

Text form, ``key=value`` pairs separated by ``;``, the first ``A"ML=<version>``::

    A"ML=1;lt=-0.50213;lg=+117.15368;rd=12;top=20261205010203;lc=68;pm=G;
    si=510101234567890;ei=3569820123456780;mcc=510;mnc=10;ml=129

    lt, lg   latitude, longitude in WGS84 degrees (signed decimal)
    rd       radius of the confidence area, metres
    top      time of positioning, UTC, YYYYMMDDhhmmss
    lc       level of confidence, percent
    pm       positioning method: G GNSS, W Wi-Fi, C cell, N none (no position)
    si, ei   IMSI, IMEI of the handset
    mcc, mnc the network the handset is on
    ml       the length of the whole message in characters

The same text may come as 8-bit data (a data SMS, often with an application
port header): ``aml_text_of`` takes it from either. ``parse_aml`` raises
``AmlError`` naming the first problem; with ``pm=N`` a message without a
position is valid (latitude and longitude None). Unknown keys are kept out
(later versions may add some); a wrong ``ml`` is tolerated (handsets differ
on what they count) but a field that is there must be readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.events import PositioningMethod

AML_PREFIX = 'A"ML='
_METHODS = {
    "G": PositioningMethod.GNSS,
    "W": PositioningMethod.WIFI,
    "C": PositioningMethod.CELL,
    "N": PositioningMethod.NONE,
}


class AmlError(ValueError):
    """An AML message that cannot be decoded; the message says why."""


@dataclass(frozen=True)
class AmlLocation:
    version: str
    latitude: float | None
    longitude: float | None
    radius_m: float | None
    positioned_at: datetime | None
    confidence_pct: int | None
    method: PositioningMethod
    imsi: str | None
    imei: str | None
    mcc: str | None
    mnc: str | None


def is_aml(text: str | None) -> bool:
    return bool(text) and text.lstrip().startswith(AML_PREFIX)  # type: ignore[union-attr]


def aml_text_of(text: str | None, data: bytes | None) -> str | None:
    """The AML text of a message: its text, or its 8-bit data read as ASCII; None if not AML."""
    if is_aml(text):
        return text
    if data:
        try:
            decoded = data.decode("ascii")
        except UnicodeDecodeError:
            return None
        return decoded if is_aml(decoded) else None
    return None


def parse_aml(text: str) -> AmlLocation:
    body = text.strip()
    if not body.startswith(AML_PREFIX):
        raise AmlError('does not start with A"ML=')
    version, _, rest = body[len(AML_PREFIX) :].partition(";")
    if not version.strip():
        raise AmlError('no version after A"ML=')
    fields: dict[str, str] = {}
    for item in rest.split(";"):
        if not item.strip():
            continue
        key, separator, value = item.partition("=")
        if not separator:
            raise AmlError(f"field {item[:20]!r} has no '='")
        key = key.strip().lower()
        if key in fields:
            raise AmlError(f"field {key} appears twice")
        fields[key] = value.strip()
    method_code = fields.get("pm", "").upper()
    method = _METHODS.get(method_code, PositioningMethod.UNKNOWN)
    needs_position = method is not PositioningMethod.NONE
    latitude = _number(fields, "lt", -90.0, 90.0, needs_position)
    longitude = _number(fields, "lg", -180.0, 180.0, needs_position)
    radius = _number(fields, "rd", 0.0, 1e7, False)
    confidence = _number(fields, "lc", 0.0, 100.0, False)
    return AmlLocation(
        version=version.strip(),
        latitude=latitude,
        longitude=longitude,
        radius_m=radius,
        positioned_at=_time(fields.get("top")),
        confidence_pct=None if confidence is None else round(confidence),
        method=method,
        imsi=_digits(fields, "si"),
        imei=_digits(fields, "ei"),
        mcc=_digits(fields, "mcc"),
        mnc=_digits(fields, "mnc"),
    )


def _number(
    fields: dict[str, str], key: str, low: float, high: float, required: bool
) -> float | None:
    value = fields.get(key, "")
    if not value:
        if required:
            raise AmlError(f"{key} is missing")
        return None
    try:
        number = float(value)
    except ValueError as exc:
        raise AmlError(f"{key}={value[:20]!r} is not a number") from exc
    if not low <= number <= high:
        raise AmlError(f"{key}={value[:20]} is outside {low:g}..{high:g}")
    return number


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError as exc:
        raise AmlError(f"top={value[:20]!r} is not a time YYYYMMDDhhmmss") from exc


def _digits(fields: dict[str, str], key: str) -> str | None:
    value = fields.get(key, "")
    if not value:
        return None
    if not value.isdigit():
        raise AmlError(f"{key} is not digits")
    return value
