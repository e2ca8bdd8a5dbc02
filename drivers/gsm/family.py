"""The GSM line family: ``[[modems]]`` in the configuration, one ``GsmModemDriver`` per modem.

Registered in ``gateway.families`` as ``"gsm"``. Importing this module is
cheap (settings and validation only); the driver and its serial stack are
imported when the first driver is built.

    [[modems]]
    name = "gsm0"                      required: the line name in events
    port = "/dev/serial/by-id/..."     required: any pyserial URL, or "imei:<IMEI>" /
                                       "iccid:<ICCID>" to find the modem among the serial
                                       ports wherever USB put it (drivers.gsm.binding)
    baudrate = 115200
    answer_after_rings = 0             0: monitor only; N: answer with ATA after N rings
    caller_id_grace_ms = 500           wait this long after RING for +CLIP
    audio_port = "/dev/serial/..."     optional: the modem's PCM voice port
    liveness_s = 4.0                   idle this long: an AT ping (a hung modem shows in < 15 s)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from gateway.audio.contract import AudioSinkFactory
from gateway.config import (
    LINE_NAME_CHECK,
    Check,
    ConfigError,
    check_number,
    check_string,
    validate_entry,
)
from gateway.families import LineFamily
from gateway.lines import Emit, LineDriver, LineSettings

LIVENESS_S = 4.0  # as drivers.gsm.modem.LIVENESS_S (not imported: this module stays light)


@dataclass(frozen=True)
class ModemSettings(LineSettings):
    FAMILY: ClassVar[str] = "gsm"
    port: str
    baudrate: int = 115200
    answer_after_rings: int = 0
    caller_id_grace_ms: int = 500
    audio_port: str | None = None
    liveness_s: float = LIVENESS_S

    @property
    def wants_audio(self) -> bool:
        return self.audio_port is not None


MODEM_KEYS: dict[str, Check] = {
    "name": LINE_NAME_CHECK,
    "port": check_string(),
    "baudrate": check_number(300, 4_000_000, integer=True),
    "answer_after_rings": check_number(0, 100, integer=True),
    "caller_id_grace_ms": check_number(0, 10_000, integer=True),
    "audio_port": check_string(),
    "liveness_s": check_number(1, 11),
}
REQUIRED_KEYS = ("name", "port")


class GsmFamily(LineFamily[ModemSettings]):
    name = "gsm"
    section = "modems"
    line_noun = "modem"

    def validate(self, source: str, key: str, entry: Any) -> ModemSettings:
        settings = ModemSettings(**validate_entry(source, key, entry, MODEM_KEYS, REQUIRED_KEYS))
        kind, _, value = settings.port.partition(":")
        if kind.lower() in ("imei", "iccid") and "/" not in value and not value.strip().isdigit():
            raise ConfigError(source, f"{key}.port", f"{kind.lower()} must be digits")
        return settings

    def build_driver(
        self,
        settings: ModemSettings,
        emit: Emit,
        audio_sink_factory: AudioSinkFactory | None,
    ) -> LineDriver:
        from drivers.gsm.modem import GsmModemDriver

        return GsmModemDriver(
            settings.name,
            settings.port,
            emit,
            baudrate=settings.baudrate,
            liveness_s=settings.liveness_s,
            answer_after_rings=settings.answer_after_rings,
            caller_id_grace_s=settings.caller_id_grace_ms / 1000,
            audio_url=settings.audio_port,
            audio_sink_factory=audio_sink_factory if settings.audio_port else None,
        )
