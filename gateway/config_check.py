"""Environment checks: can *this machine* run a configuration that parsed?

``parse_config`` proves that a file is well formed. A well-formed file can
still fail at run time, and late: a missing ``mqtt.ca_file`` makes the
forwarder reconnect forever, an outbox directory that cannot be created is a
traceback at start, two lines on one serial port fight over it. This module
finds those before the gateway starts (``edge112 config check``)::

    key                                  checked
    mqtt.ca_file, cert_file, key_file    a readable regular file; with mqtts://, the CA
                                         loads, the certificate and key load and match,
                                         and cert_file and key_file come together
    mqtt.password_file                   a readable regular file, not empty, used (username)
    audio.silent_prompt                  a readable regular file and a WAV the gateway reads
    outbox.path                          its directory writable or creatable; an existing
                                         outbox (and -wal, -shm, .seq) readable and writable
    audio.recordings_dir                 writable or creatable (when some line records audio)
    modems[i].port, modems[i].audio_port no serial port used twice; a device path exists
                                         and is a readable, writable character device;
                                         a record:// transcript's directory is writable

"Writable or creatable" walks up to the first existing ancestor and asks
whether it is a writable, searchable directory on a read-write filesystem.
Permissions are those of the current user (root passes ``os.access``), but a
read-only mount is detected for everyone (``statvfs``); a full filesystem is a
warning. Ports compare by identity: ``record://`` and ``spy://`` wrappers are
peeled off, device paths are resolved (``/dev/serial/by-id/...`` is the
``/dev/ttyUSB2`` it points to), other URLs compare as strings, and ``loop://``
never collides (each one is a separate loopback).

Every check is read-only: it stats, calls ``os.access`` and ``os.statvfs``,
opens regular files for reading and loads TLS material into a throw-away
``SSLContext``. It never creates a file or directory, never opens a serial
port and never connects anywhere.
"""

from __future__ import annotations

import enum
import os
import pwd
import ssl
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gateway.config import Config, MqttSettings

SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database
OUTBOX_SIDE_FILES = ("-wal", "-shm", "-journal", ".seq")  # beside the outbox, written by it
LOOPBACK_SCHEME = "loop"  # pyserial loop://: a fresh loopback per open, never shared


class Severity(enum.StrEnum):
    ERROR = "error"  # the gateway will fail (or never connect) with this configuration
    WARNING = "warning"  # it will run, but probably not as intended


@dataclass(frozen=True)
class ConfigProblem:
    """One finding, printed like a ``ConfigError``: ``FILE: key: message``."""

    severity: Severity
    source: str
    key: str
    message: str
    path: str | None = None  # the file, directory or port the message is about

    def __str__(self) -> str:
        label = "warning: " if self.severity is Severity.WARNING else ""
        return f"{self.source}: {self.key}: {label}{self.message}"


def check_environment(config: Config, source: str | None = None) -> list[ConfigProblem]:
    """Everything that stops ``config`` from running here; ``source`` names the file."""
    report = _Report(config.source if source is None else source)
    _check_mqtt(report, config.mqtt)
    _check_outbox(report, config.outbox.path)
    _check_audio(report, config)
    _check_ports(report, config.modems)
    return report.problems


def errors(problems: Iterable[ConfigProblem]) -> list[ConfigProblem]:
    """The problems that stop the gateway (``config check`` exits 2 on any)."""
    return [problem for problem in problems if problem.severity is Severity.ERROR]


@dataclass
class _Report:
    source: str
    problems: list[ConfigProblem] = field(default_factory=list)

    def error(self, key: str, message: str, path: str | os.PathLike[str] | None = None) -> None:
        self._add(Severity.ERROR, key, message, path)

    def warning(self, key: str, message: str, path: str | os.PathLike[str] | None = None) -> None:
        self._add(Severity.WARNING, key, message, path)

    def _add(
        self, severity: Severity, key: str, message: str, path: str | os.PathLike[str] | None
    ) -> None:
        where = None if path is None else os.fspath(path)
        self.problems.append(ConfigProblem(severity, self.source, key, message, where))


# ------------------------------------------------------------------ helpers


def _user() -> str:
    uid = os.geteuid()
    try:
        return f"user {pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"uid {uid}"


def _access(path: str | os.PathLike[str], mode: int) -> bool:
    """``os.access`` for the effective user, the one that opens files."""
    effective = os.access in os.supports_effective_ids
    return os.access(path, mode, effective_ids=effective)


def _read_only_mount(path: str | os.PathLike[str]) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def _warn_if_relative(report: _Report, key: str, path: str) -> None:
    if not os.path.isabs(path):
        report.warning(
            key,
            f"relative path {path!r} is resolved against the working directory at run time "
            f"(here {os.getcwd()}; under systemd usually /)",
            path,
        )


def _check_readable_file(report: _Report, key: str, path: str) -> bool:
    """Report why ``path`` cannot be read; True when it can."""
    _warn_if_relative(report, key, path)
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):
            target = os.readlink(path)
            report.error(key, f"dangling symlink: {path} -> {target}", path)
        else:
            report.error(key, f"no such file: {path}", path)
        return False
    except PermissionError:
        report.error(key, f"permission denied: a directory above {path} is not searchable", path)
        return False
    if stat.S_ISDIR(info.st_mode):
        report.error(key, f"not a regular file: {path} is a directory", path)
        return False
    if not stat.S_ISREG(info.st_mode):
        report.error(key, f"not a regular file: {path}", path)
        return False
    if not _access(path, os.R_OK):
        report.error(key, f"permission denied: {path} is not readable by {_user()}", path)
        return False
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        report.error(key, f"cannot open {path}: {error.strerror or error}", path)
        return False
    if info.st_size == 0:
        report.warning(key, f"empty file: {path}", path)
    return True


def _first_existing(directory: Path) -> tuple[Path, os.stat_result] | str:
    """The deepest existing ancestor of ``directory`` (itself included), or why there is none."""
    candidate = directory
    while True:
        try:
            return candidate, os.stat(candidate)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            if os.path.islink(candidate):
                return f"{candidate} is a dangling symlink -> {os.readlink(candidate)}"
            if candidate.parent == candidate:
                return f"cannot stat {candidate}"
            candidate = candidate.parent


def _check_writable_directory(report: _Report, key: str, directory: str | Path) -> bool:
    """Report why ``directory`` cannot be written or created; True when it can."""
    wanted = Path(os.path.abspath(directory))
    found = _first_existing(wanted)
    if isinstance(found, str):
        report.error(key, f"directory {wanted} cannot be created: {found}", wanted)
        return False
    existing, info = found
    missing = existing != wanted
    prefix = (
        f"directory {wanted} does not exist and cannot be created: {existing}"
        if missing
        else f"directory {wanted}"
    )
    if not stat.S_ISDIR(info.st_mode):
        report.error(key, f"{prefix} is not a directory", existing)
        return False
    if _read_only_mount(existing):
        report.error(key, f"{prefix} is on a read-only filesystem", existing)
        return False
    if not _access(existing, os.W_OK | os.X_OK):
        report.error(key, f"{prefix} is not writable by {_user()}", existing)
        return False
    if os.statvfs(existing).f_bavail == 0:
        report.warning(key, f"the filesystem holding {existing} is full", existing)
    return True


# ------------------------------------------------------------------ mqtt


class _EncryptedKey(Exception):
    """Raised by the passphrase callback: the gateway has no passphrase to give."""


def _no_passphrase() -> str:
    raise _EncryptedKey


def _check_mqtt(report: _Report, mqtt: MqttSettings) -> None:
    readable: dict[str, bool] = {}
    for key, path in (
        ("ca_file", mqtt.ca_file),
        ("cert_file", mqtt.cert_file),
        ("key_file", mqtt.key_file),
        ("password_file", mqtt.password_file),
    ):
        if path is not None:
            readable[key] = _check_readable_file(report, f"mqtt.{key}", path)

    if mqtt.password_file and readable["password_file"]:
        if not Path(mqtt.password_file).read_text(errors="replace").strip():
            report.warning(
                "mqtt.password_file", f"{mqtt.password_file} holds no password", mqtt.password_file
            )
        if not mqtt.username:
            report.warning(
                "mqtt.password_file", "mqtt.username is not set: the password is never sent"
            )

    if not mqtt.tls:
        return
    if (mqtt.cert_file is None) != (mqtt.key_file is None):
        given, absent = ("cert_file", "key_file") if mqtt.cert_file else ("key_file", "cert_file")
        report.error(
            f"mqtt.{given}",
            f"mqtt.{absent} is missing: a client certificate and its key go together",
        )
    if mqtt.ca_file and readable["ca_file"]:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_verify_locations(cafile=mqtt.ca_file)
        except ssl.SSLError as error:
            report.error("mqtt.ca_file", f"not a PEM CA certificate: {error}", mqtt.ca_file)
    if mqtt.cert_file and mqtt.key_file and readable["cert_file"] and readable["key_file"]:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_cert_chain(mqtt.cert_file, mqtt.key_file, password=_no_passphrase)
        except _EncryptedKey:
            report.error(
                "mqtt.key_file",
                f"{mqtt.key_file} is encrypted: the gateway has no passphrase to unlock it",
                mqtt.key_file,
            )
        except ssl.SSLError as error:
            if error.reason == "KEY_VALUES_MISMATCH":
                message = f"{mqtt.key_file} is not the key of {mqtt.cert_file}"
                report.error("mqtt.key_file", message, mqtt.key_file)
            else:
                message = f"cannot load {mqtt.cert_file} with {mqtt.key_file} as PEM: {error}"
                report.error("mqtt.cert_file", message, mqtt.cert_file)


# ------------------------------------------------------------------ outbox and audio


def _check_outbox(report: _Report, outbox_path: str) -> None:
    key = "outbox.path"
    _warn_if_relative(report, key, outbox_path)
    path = Path(outbox_path)
    _check_writable_directory(report, key, path.parent)
    for file in (path, *(path.with_name(path.name + suffix) for suffix in OUTBOX_SIDE_FILES)):
        try:
            info = os.stat(file)
        except OSError:
            continue  # absent (created at start) or unreachable (the directory check said why)
        if not stat.S_ISREG(info.st_mode):
            report.error(key, f"{file} exists and is not a regular file", file)
        elif not _access(file, os.R_OK | os.W_OK):
            reason = " (read-only filesystem)" if _read_only_mount(file) else ""
            report.error(
                key, f"{file} exists and is not readable and writable by {_user()}{reason}", file
            )
        elif file == path and info.st_size > 0:
            try:
                with open(file, "rb") as database:
                    header = database.read(len(SQLITE_HEADER))
            except OSError as error:
                report.error(key, f"cannot open {file}: {error.strerror or error}", file)
                continue
            if header != SQLITE_HEADER:
                report.warning(
                    key, f"{file} is not an SQLite database: the gateway will move it aside", file
                )


def _check_audio(report: _Report, config: Config) -> None:
    audio = config.audio
    if audio.record and any(line.wants_audio for line in config.lines):
        _warn_if_relative(report, "audio.recordings_dir", audio.recordings_dir)
        _check_writable_directory(report, "audio.recordings_dir", audio.recordings_dir)
    if audio.silent_prompt and _check_readable_file(
        report, "audio.silent_prompt", audio.silent_prompt
    ):
        from gateway.audio.wav import WavError, read_wav

        try:
            read_wav(audio.silent_prompt)
        except WavError as error:
            report.error("audio.silent_prompt", f"not a usable WAV: {error}", audio.silent_prompt)


# ------------------------------------------------------------------ serial ports


class _SerialLine(Protocol):
    """What the port check reads of a ``[[modems]]`` entry (``ModemSettings``)."""

    @property
    def port(self) -> str: ...

    @property
    def audio_port(self) -> str | None: ...


@dataclass(frozen=True)
class _PortUse:
    key: str  # modems[i].port or modems[i].audio_port
    url: str  # as configured
    identity: str | None  # equal for two uses of one port; None: never shared (loop://)


def _check_ports(report: _Report, modems: Iterable[_SerialLine]) -> None:
    first_use: dict[str, _PortUse] = {}
    first_transcript: dict[str, str] = {}
    for index, modem in enumerate(modems):
        for name, url in (("port", modem.port), ("audio_port", modem.audio_port)):
            if url is None:
                continue
            key = f"modems[{index}].{name}"
            use = _port_use(report, key, url, first_transcript)
            if use is None or use.identity is None:
                continue
            earlier = first_use.setdefault(use.identity, use)
            if earlier is not use:
                same = "" if {earlier.url, url} == {use.identity} else f"; both are {use.identity}"
                report.error(
                    key,
                    f"serial port {url} is already used by {earlier.key} ({earlier.url}){same}",
                    use.identity,
                )


def _port_use(
    report: _Report, key: str, url: str, first_transcript: dict[str, str]
) -> _PortUse | None:
    # Imported here: the framework reaches drivers lazily, and only this check needs pyserial.
    from serial import SerialException

    from drivers.urlhandler.protocol_record import SCHEME, parse_record_url

    inner = url
    while inner.lower().startswith(SCHEME):
        try:
            inner, transcript = parse_record_url(inner)
        except SerialException as error:
            report.error(key, str(error), url)
            return None
        _check_transcript(report, key, transcript, first_transcript)
    if inner.lower().startswith("spy://"):  # pyserial's spy:// wraps a device path
        inner = inner[len("spy://") :].partition("?")[0]
    scheme, separator, rest = inner.partition("://")
    if separator:
        scheme = scheme.lower()
        identity = None if scheme == LOOPBACK_SCHEME else f"{scheme}://{rest}"
        return _PortUse(key, url, identity)
    _check_device(report, key, inner)
    return _PortUse(key, url, os.path.realpath(inner))


def _check_transcript(
    report: _Report, key: str, transcript: Path, first_transcript: dict[str, str]
) -> None:
    _warn_if_relative(report, key, str(transcript))
    _check_writable_directory(report, key, transcript.parent)
    resolved = os.path.realpath(transcript)
    earlier = first_transcript.setdefault(resolved, key)
    if earlier != key:
        report.error(key, f"transcript {transcript} is also recorded by {earlier}", transcript)


def _check_device(report: _Report, key: str, device: str) -> None:
    try:
        info = os.stat(device)
    except (FileNotFoundError, NotADirectoryError):
        message = f"no such device: {device} (the line stays down until it appears)"
        report.warning(key, message, device)
        return
    except PermissionError:
        message = f"permission denied: a directory above {device} is not searchable"
        report.error(key, message, device)
        return
    if not stat.S_ISCHR(info.st_mode):
        report.error(key, f"not a serial device: {device} is not a character device", device)
    elif not _access(device, os.R_OK | os.W_OK):
        report.error(
            key,
            f"permission denied: {device} is not readable and writable by {_user()} "
            "(a member of the device's group, often dialout?)",
            device,
        )
