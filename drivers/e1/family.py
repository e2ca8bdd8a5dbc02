"""The E1 line family: ``[[spans]]`` in the configuration, one ``SpanDriver`` per tapped span.

Registered in ``gateway.families`` as ``"e1"``. Importing this module is
cheap (settings and validation only); the driver and the E1 stack (framer,
HDLC, LAPD, Q.931) are imported when the first driver is built.

    [[spans]]
    name = "e1a"                           required: the line name in events
    network_to_user = "tcp://tap:7001"     required: the stream the network (PSTN) sends
    user_to_network = "tcp://tap:7002"     required: the stream the centre's PBX sends
                                           (URLs: tcp://, unix://, file://, a path, any
                                           pyserial URL; see drivers/e1/transports.py)
    format = "e1"                          e1: whole E1 frames | timeslot: the D-channel
                                           timeslot's octets | lapd: length-prefixed frames
    bit_order = "msb-first"                msb-first | lsb-first (e1 and timeslot)
    d_channel_timeslot = 16                e1: the timeslot carrying the D-channel
    crc4 = true                            e1: the span uses the CRC-4 multiframe
    variant = "etsi"                       etsi (EuroISDN) | itu-t: the Q.931 variant
    b_channel_audio = false                e1: analyse and record each answered call's
                                           B-channel (both directions)
    incoming_side = "network"              the side whose calls are reported (the callers')
    national_prefix = "0"                  put before a national caller number
    speed = 1.0                            file streams: replay speed (0: as fast as read)
    baudrate = 115200                      serial streams
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from gateway.audio.contract import AudioSinkFactory
from gateway.config import (
    LINE_NAME_CHECK,
    Check,
    ConfigError,
    check_boolean,
    check_choice,
    check_number,
    check_string,
    validate_entry,
)
from gateway.families import LineFamily
from gateway.lines import Emit, LineDriver, LineSettings

FORMATS = ("e1", "timeslot", "lapd")  # drivers.e1.sources.StreamFormat
BIT_ORDERS = ("msb-first", "lsb-first")
VARIANTS = ("etsi", "itu-t")  # drivers.e1.q931.Variant
SIDES = ("network", "user")


@dataclass(frozen=True)
class SpanSettings(LineSettings):
    FAMILY: ClassVar[str] = "e1"
    network_to_user: str
    user_to_network: str
    format: str = "e1"
    bit_order: str = "msb-first"
    d_channel_timeslot: int = 16
    crc4: bool = True
    variant: str = "etsi"
    b_channel_audio: bool = False
    incoming_side: str = "network"
    national_prefix: str = "0"
    speed: float = 1.0
    baudrate: int = 115200

    @property
    def wants_audio(self) -> bool:
        return self.b_channel_audio


def _digits(value: Any) -> str | None:
    if not isinstance(value, str) or not (value == "" or value.isdigit()):
        return f"expected a string of digits (may be empty), got {value!r}"
    return None


SPAN_KEYS: dict[str, Check] = {
    "name": LINE_NAME_CHECK,
    "network_to_user": check_string(),
    "user_to_network": check_string(),
    "format": check_choice(*FORMATS),
    "bit_order": check_choice(*BIT_ORDERS),
    "d_channel_timeslot": check_number(1, 31, integer=True),  # timeslot 0 is the framing
    "crc4": check_boolean,
    "variant": check_choice(*VARIANTS),
    "b_channel_audio": check_boolean,
    "incoming_side": check_choice(*SIDES),
    "national_prefix": _digits,
    "speed": check_number(0, 1000),
    "baudrate": check_number(300, 4_000_000, integer=True),
}
REQUIRED_KEYS = ("name", "network_to_user", "user_to_network")


class E1Family(LineFamily[SpanSettings]):
    name = "e1"
    section = "spans"
    line_noun = "span"

    def validate(self, source: str, key: str, entry: Any) -> SpanSettings:
        settings = SpanSettings(**validate_entry(source, key, entry, SPAN_KEYS, REQUIRED_KEYS))
        if settings.b_channel_audio and settings.format != "e1":
            raise ConfigError(
                source,
                f"{key}.b_channel_audio",
                f"B-channel audio needs format = 'e1' (a {settings.format!r} stream carries "
                "no B-channels)",
            )
        for name in ("network_to_user", "user_to_network"):
            problem = _url_problem(getattr(settings, name))
            if problem is not None:
                raise ConfigError(source, f"{key}.{name}", problem)
        if settings.network_to_user == settings.user_to_network:
            raise ConfigError(
                source, f"{key}.user_to_network", "the two directions must be different streams"
            )
        return settings

    def build_driver(
        self,
        settings: SpanSettings,
        emit: Emit,
        audio_sink_factory: AudioSinkFactory | None,
        power: object | None = None,  # a span has no modem to power: ignored
    ) -> LineDriver:
        from drivers.e1.span import SpanDriver

        return SpanDriver(settings, emit, audio_sink_factory=audio_sink_factory)


def _url_problem(url: str) -> str | None:
    """What is wrong with a stream URL's form (checked without opening it), or None."""
    from drivers.e1.transports import SourceUrlError, parse_stream_url

    try:
        parse_stream_url(url)
    except SourceUrlError as error:
        return str(error)
    return None
