"""The center's configuration: one TOML file, validated on load.

Same rules as the gateway's (``gateway.config``): every problem is a
``ConfigError`` naming the file, the key as a dotted path and what was
expected; unknown sections and keys are refused. The annotated example ships
as ``center/center.example.toml`` (``edge112 center --example``).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config import (
    ConfigError,
    MqttEndpoint,
    check_agencies,
    check_boolean,
    check_mqtt_url,
    check_number,
    check_string,
    validate_table,
)
from gateway.events import DEFAULT_AGENCIES, CallCategory  # shared with the gateway

EXAMPLE_CONFIG = Path(__file__).with_name("center.example.toml")

DESK_CATEGORIES = tuple(category.value for category in CallCategory)

_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SHARE_GROUP = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]{0,63})?$")  # empty: no shared subscription
_OFFSET = re.compile(r"^[+-](\d{2}):(\d{2})$")


@dataclass(frozen=True)
class CenterSettings:
    id: str = "center-1"  # this worker: its MQTT client id (persistent session) and events.worker
    log_level: str = "info"


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:////var/lib/edge112/center.db"
    batch_max: int = 500  # most messages stored in one transaction
    pool_size: int = 5


@dataclass(frozen=True)
class CenterMqttSettings(MqttEndpoint):
    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    share_group: str = "center"  # $share/<group>/...: workers of one group split the feed;
    # "" subscribes plainly (one worker): mosquitto 2.0.11 restores that across its restart
    session_expiry_s: int = 3600  # the broker keeps a killed worker's messages this long
    receive_maximum: int = 1000  # unacknowledged messages the broker may send at once
    keepalive_s: int = 30
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0


@dataclass(frozen=True)
class HttpSettings:
    enabled: bool = True
    listen: str = "127.0.0.1:8112"
    desk_token: str | None = None  # bearer token for POST (classification, escalation)
    desk_token_file: str | None = None

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    def resolved_token(self) -> str | None:
        if self.desk_token_file:
            return Path(self.desk_token_file).read_text().strip() or None
        return self.desk_token


@dataclass(frozen=True)
class CompletenessSettings:
    gap_alarm_after_s: float = 300.0  # a gap open this long raises a center alarm
    offline_alarm_after_s: float = 600.0  # a gateway offline this long raises a center alarm
    check_interval_s: float = 5.0
    clock_earliest: str = "2020-01-01"  # an event ts before this: the gateway's clock is unset
    clock_max_ahead_s: float = 300.0  # an event ts further ahead of its arrival: clock wrong


@dataclass(frozen=True)
class DeskSettings:
    agencies: tuple[str, ...] = DEFAULT_AGENCIES


@dataclass(frozen=True)
class StatsSettings:
    utc_offset: str = "+07:00"  # buckets (hour/day/month) in this local time (WIB +07:00)

    @property
    def offset_minutes(self) -> int:
        return offset_minutes(self.utc_offset)


def offset_minutes(text: str) -> int:
    """'+07:00' -> 420, '-03:30' -> -210; ValueError otherwise."""
    match = _OFFSET.match(text)
    if not match or int(match.group(1)) > 14 or int(match.group(2)) >= 60:
        raise ValueError(f"expected a UTC offset such as '+07:00', got {text!r}")
    minutes = int(match.group(1)) * 60 + int(match.group(2))
    return -minutes if text.startswith("-") else minutes


@dataclass(frozen=True)
class CenterConfig:
    center: CenterSettings = field(default_factory=CenterSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    mqtt: CenterMqttSettings = field(default_factory=CenterMqttSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    completeness: CompletenessSettings = field(default_factory=CompletenessSettings)
    desk: DeskSettings = field(default_factory=DeskSettings)
    stats: StatsSettings = field(default_factory=StatsSettings)
    source: str = "<defaults>"


# ---------------------------------------------------------------- checks

Check = Any  # Callable[[Any], str | None]


def _database_url(value: Any) -> str | None:
    hint = (
        "expected 'sqlite:////absolute/path.db' or "
        f"'postgresql+psycopg://user@host:5432/dbname', got {value!r}"
    )
    if not isinstance(value, str):
        return hint
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg"):
        return hint
    if scheme.startswith("sqlite") and value.split("://", 1)[1] in ("", "/"):
        return "a sqlite URL needs a file: 'sqlite:////var/lib/edge112/center.db'"
    return None


def _listen(value: Any) -> str | None:
    hint = f"expected 'host:port' such as '127.0.0.1:8112', got {value!r}"
    if not isinstance(value, str) or ":" not in value:
        return hint
    host, port = value.rsplit(":", 1)
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        return hint
    return None


def _date(value: Any) -> str | None:
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}$", value):
        return f"expected a date 'YYYY-MM-DD', got {value!r}"
    return None


def _utc_offset(value: Any) -> str | None:
    try:
        offset_minutes(value if isinstance(value, str) else "")
    except ValueError as error:
        return str(error)
    return None


def _share_group(value: Any) -> str | None:
    if not isinstance(value, str) or not _SHARE_GROUP.match(value):
        hint = "letters, digits, '-' or '_' (\"\": no shared subscription)"
        return f"expected {hint}, got {value!r}"
    return None


_SECTIONS: dict[str, dict[str, Check]] = {
    "center": {
        "id": check_string(_IDENT, "letters, digits, '-' or '_' (an MQTT client id)"),
        "log_level": check_string(re.compile(r"^(debug|info|warning|error)$"), "a log level"),
    },
    "database": {
        "url": _database_url,
        "batch_max": check_number(1, 100_000, integer=True),
        "pool_size": check_number(1, 100, integer=True),
    },
    "mqtt": {
        "url": check_mqtt_url,
        "username": check_string(),
        "password": check_string(),
        "password_file": check_string(),
        "ca_file": check_string(),
        "cert_file": check_string(),
        "key_file": check_string(),
        "share_group": _share_group,
        "session_expiry_s": check_number(0, 2**32 - 1, integer=True),
        "receive_maximum": check_number(1, 65535, integer=True),
        "keepalive_s": check_number(5, 3600, integer=True),
        "reconnect_min_s": check_number(0.05, 60),
        "reconnect_max_s": check_number(0.1, 3600),
    },
    "http": {
        "enabled": check_boolean,
        "listen": _listen,
        "desk_token": check_string(),
        "desk_token_file": check_string(),
    },
    "completeness": {
        "gap_alarm_after_s": check_number(0, 30 * 86400),
        "offline_alarm_after_s": check_number(0, 30 * 86400),
        "check_interval_s": check_number(0.05, 3600),
        "clock_earliest": _date,
        "clock_max_ahead_s": check_number(0, 86400 * 365),
    },
    "desk": {"agencies": check_agencies},
    "stats": {"utc_offset": _utc_offset},
}


def parse_center_config(text: str, source: str = "<string>") -> CenterConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(source, "", f"not valid TOML: {error}") from None
    for key in raw:
        if key not in _SECTIONS:
            known = ", ".join(sorted(_SECTIONS))
            raise ConfigError(source, key, f"unknown section (known sections: {known})")
    tables = {
        name: validate_table(source, name, raw.get(name, {}), keys)
        for name, keys in _SECTIONS.items()
    }
    mqtt = CenterMqttSettings(**tables["mqtt"])
    if mqtt.reconnect_min_s > mqtt.reconnect_max_s:
        raise ConfigError(source, "mqtt.reconnect_min_s", "must not exceed mqtt.reconnect_max_s")
    if (mqtt.cert_file is None) != (mqtt.key_file is None):
        raise ConfigError(source, "mqtt.cert_file", "cert_file and key_file go together")
    if (mqtt.ca_file or mqtt.cert_file) and not mqtt.tls:
        raise ConfigError(source, "mqtt.url", "TLS files are set: use an mqtts:// URL")
    http = HttpSettings(**tables["http"])
    if http.desk_token and http.desk_token_file:
        raise ConfigError(source, "http.desk_token", "set desk_token or desk_token_file, not both")
    if http.desk_token is not None and len(http.desk_token) < 16:
        raise ConfigError(source, "http.desk_token", "too short: use at least 16 characters")
    desk = tables["desk"]
    return CenterConfig(
        center=CenterSettings(**tables["center"]),
        database=DatabaseSettings(**tables["database"]),
        mqtt=mqtt,
        http=http,
        completeness=CompletenessSettings(**tables["completeness"]),
        desk=DeskSettings(agencies=tuple(desk.get("agencies", DEFAULT_AGENCIES))),
        stats=StatsSettings(**tables["stats"]),
        source=source,
    )


def load_center_config(path: str | Path) -> CenterConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(str(path), "", f"cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "not UTF-8 text") from None
    return parse_center_config(text, str(path))
