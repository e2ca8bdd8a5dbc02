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
    modem_reset_boot_s = 15.0          recovery ladder: wait after AT+CFUN=1,1 (step 2),
    power_key_boot_s = 30.0            ... after the board's power-key restart (step 3),
    power_cut_boot_s = 30.0            ... after the board's power cut (step 4)
    metrics_interval_s = 300.0         line.metrics (signal, RSRP/RSRQ/SINR) this often

The board's power control of the line (``power``, a
``firmware_py.recovery.BoardModemPower`` the daemon builds) goes to the
driver's recovery ladder (``drivers.gsm.recovery``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

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

if TYPE_CHECKING:
    from firmware_py.recovery import BoardModemPower

LIVENESS_S = 4.0  # as drivers.gsm.modem.LIVENESS_S (not imported: this module stays light)
MODEM_RESET_BOOT_S = 15.0  # as drivers.gsm.recovery's waits after each ladder step
POWER_KEY_BOOT_S = 30.0
POWER_CUT_BOOT_S = 30.0
METRICS_INTERVAL_S = 300.0  # as drivers.gsm.readiness.METRICS_INTERVAL_S


@dataclass(frozen=True)
class ModemSettings(LineSettings):
    FAMILY: ClassVar[str] = "gsm"
    port: str
    baudrate: int = 115200
    answer_after_rings: int = 0
    caller_id_grace_ms: int = 500
    audio_port: str | None = None
    liveness_s: float = LIVENESS_S
    modem_reset_boot_s: float = MODEM_RESET_BOOT_S
    power_key_boot_s: float = POWER_KEY_BOOT_S
    power_cut_boot_s: float = POWER_CUT_BOOT_S
    metrics_interval_s: float = METRICS_INTERVAL_S

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
    "modem_reset_boot_s": check_number(0.1, 120),
    "power_key_boot_s": check_number(0.1, 120),
    "power_cut_boot_s": check_number(0.1, 120),
    "metrics_interval_s": check_number(10, 86_400),
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
        power: BoardModemPower | None = None,
    ) -> LineDriver:
        from drivers.gsm.modem import GsmModemDriver
        from drivers.gsm.recovery import LadderTimings

        return GsmModemDriver(
            settings.name,
            settings.port,
            emit,
            baudrate=settings.baudrate,
            liveness_s=settings.liveness_s,
            metrics_interval_s=settings.metrics_interval_s,
            answer_after_rings=settings.answer_after_rings,
            caller_id_grace_s=settings.caller_id_grace_ms / 1000,
            audio_url=settings.audio_port,
            audio_sink_factory=audio_sink_factory if settings.audio_port else None,
            power=power,
            ladder_timings=LadderTimings(
                modem_reset_boot_s=settings.modem_reset_boot_s,
                power_key_boot_s=settings.power_key_boot_s,
                power_cut_boot_s=settings.power_cut_boot_s,
            ),
        )
