"""Configuration: one TOML file, validated on load.

Every problem is a :class:`ConfigError` that names the file, the key (as a
dotted path such as ``modems[1].port``) and what was expected. Unknown keys
are rejected so that a misspelt key cannot silently fall back to a default.
The annotated example ships as ``gateway/edge112.example.toml``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

EXAMPLE_CONFIG = Path(__file__).with_name("edge112.example.toml")


class ConfigError(ValueError):
    """A configuration file that cannot be used, and exactly why."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        where = f"{source}: {key}: " if key else f"{source}: "
        super().__init__(where + problem)


@dataclass(frozen=True)
class GatewaySettings:
    id: str
    region: str
    log_level: str = "info"


@dataclass(frozen=True)
class MqttSettings:
    url: str = "mqtt://127.0.0.1:1883"
    protocol: str = "5"
    username: str | None = None
    password: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 30
    inflight_window: int = 20
    ack_timeout_s: float = 10.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 60.0

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    def resolved_password(self) -> str | None:
        if self.password_file:
            return Path(self.password_file).read_text().strip()
        return self.password


@dataclass(frozen=True)
class OutboxSettings:
    path: str = "/var/lib/edge112/outbox.db"
    synchronous: str = "full"
    max_mb: float = 512.0
    group_commit_max: int = 500
    held_max: int = 1000

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 1024 * 1024)


@dataclass(frozen=True)
class ModemSettings:
    name: str
    port: str
    baudrate: int = 115200
    answer_after_rings: int = 0
    caller_id_grace_ms: int = 500
    audio_port: str | None = None


@dataclass(frozen=True)
class AudioSettings:
    record: bool = True
    recordings_dir: str = "/var/lib/edge112/recordings"
    recording_format: str = "alaw"
    quota_mb: float = 2048.0
    retention_days: float = 0.0
    ghost_after_s: float = 10.0
    silent_prompt: str | None = None
    silent_prompt_after_s: float = 5.0
    silent_listen_s: float = 10.0
    ring_buffer_s: float = 30.0
    min_free_mb: float = 64.0


@dataclass(frozen=True)
class Config:
    gateway: GatewaySettings
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    modems: tuple[ModemSettings, ...] = ()
    audio: AudioSettings = field(default_factory=AudioSettings)
    source: str = "<defaults>"


# ---------------------------------------------------------------- validation

Check = Callable[[Any], str | None]  # returns a problem, or None when fine

_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_REGION = re.compile(r"^\d{2}(\.\d{2}){0,3}$")


def _string(pattern: re.Pattern[str] | None = None, hint: str = "") -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return f"expected a non-empty string, got {value!r}"
        if pattern and not pattern.match(value):
            return f"expected {hint}, got {value!r}"
        return None

    return check


def _choice(*options: str) -> Check:
    def check(value: Any) -> str | None:
        if value not in options:
            return f"expected one of {', '.join(map(repr, options))}, got {value!r}"
        return None

    return check


def _number(low: float, high: float, *, integer: bool = False) -> Check:
    def check(value: Any) -> str | None:
        wrong_kind = isinstance(value, bool) or not isinstance(value, int | float)
        if wrong_kind or (integer and not isinstance(value, int)):
            what = "an integer" if integer else "a number"
            return f"expected {what} from {low:g} to {high:g}, got {value!r}"
        if not low <= float(value) <= high:
            return f"expected a value from {low:g} to {high:g}, got {value!r}"
        return None

    return check


def _mqtt_url(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected a URL such as 'mqtt://host:1883' or 'mqtts://host:8883', got {value!r}"
    parts = urlsplit(value)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        return f"expected a URL such as 'mqtt://host:1883' or 'mqtts://host:8883', got {value!r}"
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"expected a port from 1 to 65535 in {value!r}"
    return None


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"expected true or false, got {value!r}"


_AUDIO_KEYS: dict[str, Check] = {
    "record": _boolean,
    "recordings_dir": _string(),
    "recording_format": _choice("alaw", "pcm"),
    "quota_mb": _number(1, 10_000_000),
    "retention_days": _number(0, 36_500),
    "ghost_after_s": _number(1, 3600),
    "silent_prompt": _string(),
    "silent_prompt_after_s": _number(0.5, 600),
    "silent_listen_s": _number(1, 600),
    "ring_buffer_s": _number(1, 600),
    "min_free_mb": _number(0, 1_000_000),
}
_SECTIONS: dict[str, dict[str, Check]] = {
    "gateway": {
        "id": _string(_IDENT, "letters, digits, '-' or '_' (an MQTT topic level)"),
        "region": _string(_REGION, "a kode wilayah such as '64.74'"),
        "log_level": _choice("debug", "info", "warning", "error"),
    },
    "mqtt": {
        "url": _mqtt_url,
        "protocol": _choice("5", "3.1.1"),
        "username": _string(),
        "password": _string(),
        "password_file": _string(),
        "ca_file": _string(),
        "cert_file": _string(),
        "key_file": _string(),
        "keepalive_s": _number(5, 3600, integer=True),
        "inflight_window": _number(1, 1000, integer=True),
        "ack_timeout_s": _number(0.5, 600),
        "reconnect_min_s": _number(0.05, 60),
        "reconnect_max_s": _number(0.1, 3600),
    },
    "outbox": {
        "path": _string(),
        "synchronous": _choice("full", "normal"),
        "max_mb": _number(1, 1_000_000),
        "group_commit_max": _number(1, 100_000, integer=True),
        "held_max": _number(1, 100_000, integer=True),
    },
    "audio": _AUDIO_KEYS,
}
_MODEM_KEYS: dict[str, Check] = {
    "name": _string(_IDENT, "letters, digits, '-' or '_'"),
    "port": _string(),
    "baudrate": _number(300, 4_000_000, integer=True),
    "answer_after_rings": _number(0, 100, integer=True),
    "caller_id_grace_ms": _number(0, 10_000, integer=True),
    "audio_port": _string(),
}
_REQUIRED = {"gateway": ("id", "region"), "modems": ("name", "port")}


def _validate_table(
    source: str, prefix: str, table: Any, keys: Mapping[str, Check]
) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(source, prefix, f"expected a table, got {table!r}")
    for key, value in table.items():
        if key not in keys:
            known = ", ".join(sorted(keys))
            raise ConfigError(source, f"{prefix}.{key}", f"unknown key (known keys: {known})")
        problem = keys[key](value)
        if problem:
            raise ConfigError(source, f"{prefix}.{key}", problem)
    return dict(table)


def parse_config(text: str, source: str = "<string>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(source, "", f"not valid TOML: {error}") from None
    for key in raw:
        if key not in (*_SECTIONS, "modems"):
            known = ", ".join(sorted((*_SECTIONS, "modems")))
            raise ConfigError(source, key, f"unknown section (known sections: {known})")
    if "gateway" not in raw:
        raise ConfigError(source, "gateway", "missing section (needs id and region)")
    tables = {
        name: _validate_table(source, name, raw.get(name, {}), keys)
        for name, keys in _SECTIONS.items()
    }
    for key in _REQUIRED["gateway"]:
        if key not in tables["gateway"]:
            raise ConfigError(source, f"gateway.{key}", "missing required key")

    modems_raw = raw.get("modems", [])
    if not isinstance(modems_raw, list):
        raise ConfigError(source, "modems", "expected an array of tables ([[modems]])")
    modems: list[ModemSettings] = []
    for index, entry in enumerate(modems_raw):
        prefix = f"modems[{index}]"
        table = _validate_table(source, prefix, entry, _MODEM_KEYS)
        for key in _REQUIRED["modems"]:
            if key not in table:
                raise ConfigError(source, f"{prefix}.{key}", "missing required key")
        if any(modem.name == table["name"] for modem in modems):
            raise ConfigError(source, f"{prefix}.name", f"duplicate modem name {table['name']!r}")
        modems.append(ModemSettings(**table))

    mqtt = MqttSettings(**tables["mqtt"])
    if mqtt.reconnect_min_s > mqtt.reconnect_max_s:
        raise ConfigError(source, "mqtt.reconnect_min_s", "must not exceed mqtt.reconnect_max_s")
    if (mqtt.cert_file is None) != (mqtt.key_file is None):
        raise ConfigError(source, "mqtt.cert_file", "cert_file and key_file go together")
    if (mqtt.ca_file or mqtt.cert_file) and not mqtt.tls:
        raise ConfigError(source, "mqtt.url", "TLS files are set: use an mqtts:// URL")
    audio = AudioSettings(**tables["audio"])
    if audio.silent_prompt and not Path(audio.silent_prompt).is_file():
        raise ConfigError(source, "audio.silent_prompt", f"no such file: {audio.silent_prompt}")
    outbox_dir = Path(tables["outbox"].get("path", OutboxSettings.path)).parent
    if audio.record and Path(audio.recordings_dir).resolve() == outbox_dir.resolve():
        raise ConfigError(
            source,
            "audio.recordings_dir",
            "must not be the outbox's directory (the quota deletes files)",
        )
    return Config(
        gateway=GatewaySettings(**tables["gateway"]),
        audio=audio,
        mqtt=mqtt,
        outbox=OutboxSettings(**tables["outbox"]),
        modems=tuple(modems),
        source=source,
    )


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(str(path), "", f"cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "not UTF-8 text") from None
    return parse_config(text, str(path))
