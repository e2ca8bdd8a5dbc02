"""Configuration: one TOML file, validated on load.

Every problem is a :class:`ConfigError` that names the file, the key (as a
dotted path such as ``modems[1].port``) and what was expected. Unknown keys
are rejected so that a misspelt key cannot silently fall back to a default.
The annotated example ships as ``gateway/edge112.example.toml``.

Lines come in families (``gateway.families``): each family owns one array
of tables (``[[modems]]`` for GSM) and validates its entries into its own
``LineSettings`` with the checks below; ``Config.lines`` holds them all, in
file order within each family. A family's module is imported only when its
section is present.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from firmware_py.board_settings import BoardSettings, BoardSettingsError, parse_board_settings
from gateway.events import DEFAULT_AGENCIES
from gateway.families import FamilyUnavailableError, family_sections, get_family
from gateway.lines import LineSettings

if TYPE_CHECKING:  # the GSM names below are kept for code written before line families
    from drivers.gsm.family import ModemSettings

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
    control_socket: str | None = None  # gateway.control: default in the runtime directory


class MqttEndpoint:
    """Where a broker is and how to log in: shared by the gateway's and the center's MQTT
    settings (each a frozen dataclass with ``url``, ``password`` and ``password_file``)."""

    url: str
    password: str | None
    password_file: str | None

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
class MqttSettings(MqttEndpoint):
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
class DeskSettings:
    """``[desk]``: the call-taker's classification and escalations (``gateway.annotations``)."""

    listen: str | None = None  # "127.0.0.1:8112": the HTTP endpoint (gateway.desk_http); off
    token_file: str | None = None  # the bearer token, one line (required with listen)
    registry_path: str | None = None  # reported calls; default calls.db beside the outbox
    retention_days: float = 7.0  # calls older than this can no longer be annotated
    agencies: tuple[str, ...] = DEFAULT_AGENCIES
    commands: bool = True  # take classify/escalate commands from the center over MQTT

    @property
    def host(self) -> str:
        return (self.listen or "127.0.0.1:8112").rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int((self.listen or "127.0.0.1:8112").rsplit(":", 1)[1])

    def registry_file(self, outbox_path: str) -> Path:
        return Path(self.registry_path or Path(outbox_path).with_name("calls.db"))


@dataclass(frozen=True)
class Config:
    gateway: GatewaySettings
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    lines: tuple[LineSettings, ...] = ()  # every family's lines: ModemSettings, ...
    audio: AudioSettings = field(default_factory=AudioSettings)
    board: BoardSettings = field(default_factory=BoardSettings)  # [board]: firmware_py
    desk: DeskSettings = field(default_factory=DeskSettings)  # [desk]: annotations
    source: str = "<defaults>"

    def lines_of(self, family: str) -> tuple[LineSettings, ...]:
        """The lines of one family (``"gsm"``), in file order."""
        return tuple(line for line in self.lines if family == line.FAMILY)

    @property
    def modems(self) -> tuple[ModemSettings, ...]:
        """The GSM lines (``[[modems]]``): kept for code written before ``lines``."""
        return self.lines_of("gsm")  # type: ignore[return-value]


def __getattr__(name: str) -> Any:
    """``gateway.config.ModemSettings``, now ``drivers.gsm.family``'s, for older imports."""
    if name == "ModemSettings":
        from drivers.gsm.family import ModemSettings

        return ModemSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        "control_socket": _string(),
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
    "desk": {
        "listen": lambda value: _listen(value),
        "token_file": _string(),
        "registry_path": _string(),
        "retention_days": _number(0.01, 3650),
        "agencies": lambda value: check_agencies(value),
        "commands": _boolean,
    },
}


def _listen(value: Any) -> str | None:
    hint = f"expected host:port such as '127.0.0.1:8112', got {value!r}"
    if not isinstance(value, str) or ":" not in value:
        return hint
    port = value.rsplit(":", 1)[1]
    if not port.isdigit() or not 1 <= int(port) <= 65535 or not value.rsplit(":", 1)[0]:
        return hint
    return None


_AGENCY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def check_agencies(value: Any) -> str | None:
    """The agency list of a [desk] section (the gateway's and the center's)."""
    if not isinstance(value, list) or not value:
        return f"expected a non-empty list of agency codes, got {value!r}"
    for item in value:
        if not isinstance(item, str) or not _AGENCY.match(item):
            return f"expected lower-case agency codes such as 'damkar', got {item!r}"
    if len(set(value)) != len(value):
        return "an agency is listed twice"
    return None


_REQUIRED = {"gateway": ("id", "region")}


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


# ---------------------------------------------------------------- line sections
# What a family's validator (drivers/<family>/family.py) builds on: the same
# checks and table rules as the sections above.

check_string = _string
check_mqtt_url = _mqtt_url
validate_table = _validate_table
check_choice = _choice
check_number = _number
check_boolean = _boolean
LINE_NAME_CHECK: Check = _string(_IDENT, "letters, digits, '-' or '_'")  # for every "name"


def validate_entry(
    source: str, key: str, entry: Any, keys: Mapping[str, Check], required: tuple[str, ...]
) -> dict[str, Any]:
    """One entry of a line section (``key`` = ``modems[0]``): known keys, good values, required."""
    table = _validate_table(source, key, entry, keys)
    for name in required:
        if name not in table:
            raise ConfigError(source, f"{key}.{name}", "missing required key")
    return table


def _parse_lines(source: str, raw: Mapping[str, Any]) -> tuple[LineSettings, ...]:
    """Every configured line, each validated by its family; line names unique across families."""
    lines: list[LineSettings] = []
    keys_by_name: dict[str, str] = {}
    for section, family_name in family_sections().items():
        entries = raw.get(section, [])
        if not isinstance(entries, list):
            raise ConfigError(source, section, f"expected an array of tables ([[{section}]])")
        if not entries:
            continue
        try:
            family = get_family(family_name)
        except FamilyUnavailableError as error:
            raise ConfigError(source, section, str(error)) from None
        for index, entry in enumerate(entries):
            key = f"{section}[{index}]"
            settings = family.validate(source, key, entry)
            earlier = keys_by_name.get(settings.name)
            if earlier is not None:
                problem = f"duplicate {family.line_noun} name {settings.name!r}"
                if not earlier.startswith(f"{section}["):
                    problem += f" (also {earlier})"
                raise ConfigError(source, f"{key}.name", problem)
            keys_by_name[settings.name] = f"{key}.name"
            lines.append(settings)
    return tuple(lines)


_BOARD_SECTION = "board"  # validated by firmware_py.board_settings (pins, backends, modems)


def _parse_board(source: str, table: Any, lines: tuple[LineSettings, ...]) -> BoardSettings:
    from firmware_py.recovery import POWER_PROFILES

    try:
        return parse_board_settings(table, [line.name for line in lines], POWER_PROFILES)
    except BoardSettingsError as error:
        raise ConfigError(source, error.key, error.problem) from None


def parse_config(text: str, source: str = "<string>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(source, "", f"not valid TOML: {error}") from None
    sections = (*_SECTIONS, _BOARD_SECTION, *family_sections())
    for key in raw:
        if key not in sections:
            known = ", ".join(sorted(sections))
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

    lines = _parse_lines(source, raw)
    board = _parse_board(source, raw.get(_BOARD_SECTION), lines)

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
    desk_table = dict(tables["desk"])
    if "agencies" in desk_table:
        desk_table["agencies"] = tuple(desk_table["agencies"])
    desk = DeskSettings(**desk_table)
    if desk.listen and not desk.token_file:
        raise ConfigError(source, "desk.token_file", "required with desk.listen (bearer token)")
    return Config(
        gateway=GatewaySettings(**tables["gateway"]),
        audio=audio,
        mqtt=mqtt,
        outbox=OutboxSettings(**tables["outbox"]),
        lines=lines,
        board=board,
        desk=desk,
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
