"""``edge112 config check`` on this machine: real files, directories, mounts and ptys.

Each test builds a complete, runnable site in ``tmp_path`` (TLS files made with
openssl, a password file, a WAV prompt, two pseudo-terminals as the serial
ports), breaks one thing, and expects exactly that key in the report.
Permission tests need a place the current user cannot write: as root (who
passes every permission bit) a tmpfs remounted read-only, otherwise chmod.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.audio.wav import write_wav
from gateway.cli import main
from gateway.config import Config, load_config
from gateway.config_check import ConfigProblem, Severity, check_environment

NOBODY = 65534  # uid and gid of "nobody": an unprivileged user when the tests run as root
TONE = b"\x00\x10\x00\xf0" * 400  # 100 ms of 8 kHz PCM16


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.pem; client.pem and client.key signed by it; other.key and encrypted.key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    pki = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=edge112 test CA", "-keyout", str(pki / "ca.key"),
             "-out", str(pki / "ca.pem"))  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=bontang-01",
             "-keyout", str(pki / "client.key"), "-out", str(pki / "client.csr"))  # fmt: skip
    _openssl("x509", "-req", "-in", str(pki / "client.csr"), "-CA", str(pki / "ca.pem"),
             "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "2",
             "-out", str(pki / "client.pem"))  # fmt: skip
    _openssl("genpkey", "-algorithm", "RSA", "-out", str(pki / "other.key"))
    _openssl("pkey", "-in", str(pki / "client.key"), "-aes256", "-passout", "pass:secret",
             "-out", str(pki / "encrypted.key"))  # fmt: skip
    return pki


@pytest.fixture
def serial_ports() -> Iterator[list[str]]:
    """Two pseudo-terminals standing in for a modem's AT and audio ports."""
    descriptors = [os.openpty() for _ in range(2)]
    yield [os.ttyname(follower) for _, follower in descriptors]
    for leader, follower in descriptors:
        os.close(leader)
        os.close(follower)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


@dataclass
class Site:
    """One gateway's configuration and the files it names; ``write`` renders the TOML."""

    directory: Path
    mqtt: dict[str, Any] = field(default_factory=dict)
    outbox: dict[str, Any] = field(default_factory=dict)
    audio: dict[str, Any] = field(default_factory=dict)
    modems: list[dict[str, Any]] = field(default_factory=list)

    def write(self) -> Path:
        lines = ["[gateway]", 'id = "bontang-01"', 'region = "64.74"']
        for name in ("mqtt", "outbox", "audio"):
            lines.append(f"[{name}]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in getattr(self, name).items()]
        for modem in self.modems:
            lines.append("[[modems]]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in modem.items()]
        path = self.directory / "edge112.toml"
        path.write_text("\n".join(lines) + "\n")
        return path


@pytest.fixture
def site(tmp_path: Path, certificates: Path, serial_ports: list[str]) -> Site:
    """A site that passes every check: TLS, password, prompt, one line with audio."""
    for name in ("ca.pem", "client.pem", "client.key"):
        shutil.copy(certificates / name, tmp_path / name)
    (tmp_path / "mqtt-password").write_text("s3cret\n")
    write_wav(tmp_path / "tekan-55.wav", TONE)
    return Site(
        directory=tmp_path,
        mqtt={
            "url": "mqtts://127.0.0.1:8883",
            "username": "bontang-01",
            "password_file": str(tmp_path / "mqtt-password"),
            "ca_file": str(tmp_path / "ca.pem"),
            "cert_file": str(tmp_path / "client.pem"),
            "key_file": str(tmp_path / "client.key"),
        },
        outbox={"path": str(tmp_path / "state" / "outbox.db")},
        audio={
            "recordings_dir": str(tmp_path / "recordings"),
            "silent_prompt": str(tmp_path / "tekan-55.wav"),
        },
        modems=[{"name": "gsm0", "port": serial_ports[0], "audio_port": serial_ports[1]}],
    )


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def run_check(capsys: pytest.CaptureFixture[str], *argv: str) -> Outcome:
    """``edge112 config check ARGV`` in this process."""
    try:
        code = main(["config", "check", *argv])
    except SystemExit as exited:
        code = int(exited.code or 0)
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


class LockableDirectory:
    """A directory the test fills, then locks so the current user cannot write into it.

    As root it is a tmpfs remounted read-only (root passes permission bits, not a
    read-only mount); otherwise it is chmod 555 (and its files 444).
    """

    def __init__(self, path: Path, mounted: bool) -> None:
        self.path = path
        self.mounted = mounted

    def lock(self) -> None:
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)
            return
        for file in self.path.rglob("*"):
            file.chmod(0o444 if file.is_file() else 0o555)
        self.path.chmod(0o555)
        if os.access(self.path, os.W_OK):
            pytest.skip("chmod 555 does not stop this user from writing (a capability?)")

    def unlock(self) -> None:
        if not self.mounted:
            for file in [self.path, *self.path.rglob("*")]:
                file.chmod(0o644 if file.is_file() else 0o755)


def _mount_tmpfs(path: Path, options: str) -> None:
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"running as root but cannot mount a tmpfs: {done.stderr.strip()}")


@pytest.fixture
def lockable(tmp_path: Path) -> Iterator[LockableDirectory]:
    path = tmp_path / "locked"
    path.mkdir()
    mounted = os.geteuid() == 0
    if mounted:
        _mount_tmpfs(path, "size=1m")
    directory = LockableDirectory(path, mounted)
    try:
        yield directory
    finally:
        if mounted:
            subprocess.run(["umount", str(path)], check=True)
        else:
            directory.unlock()


def _line(config_file: Path, key: str, message: str) -> str:
    return f"edge112: {config_file}: {key}: {message}"


# ------------------------------------------------------------------ the whole command


def test_a_good_site_passes_through_the_installed_command(site: Site) -> None:
    config_file = site.write()
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "config", "check", str(config_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert f"{config_file}: ok (gateway bontang-01, region 64.74, 1 modem(s)" in done.stdout


def test_checking_changes_nothing_on_disk(site: Site) -> None:
    transcript = site.directory / "transcripts" / "gsm0.jsonl"
    site.modems[0]["port"] = f"record://{site.modems[0]['port']}?file={transcript}"
    config_file = site.write()
    before = sorted(site.directory.rglob("*"))
    assert main(["config", "check", str(config_file)]) == 0
    assert sorted(site.directory.rglob("*")) == before
    assert not (site.directory / "state").exists()
    assert not (site.directory / "recordings").exists()
    assert not transcript.parent.exists()


def test_a_file_that_does_not_parse_still_exits_2_with_its_config_error(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.mqtt["port"] = 8883
    config_file = site.write()
    outcome = run_check(capsys, str(config_file))
    assert outcome.code == 2
    assert outcome.err.startswith(f"edge112: {config_file}: mqtt.port: unknown key")


def test_file_only_skips_this_machine(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    site.mqtt["ca_file"] = "/etc/edge112/not-on-this-machine/ca.pem"
    config_file = site.write()
    assert run_check(capsys, str(config_file)).code == 2
    outcome = run_check(capsys, "--file-only", str(config_file))
    assert outcome.code == 0, outcome.err
    assert outcome.out.rstrip().endswith("; this machine not checked")


def test_warnings_alone_exit_0_and_are_printed(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = "/dev/serial/by-id/usb-Quectel_EC25-if02-port0-not-plugged-in"
    site.modems[0]["port"] = absent
    config_file = site.write()
    outcome = run_check(capsys, str(config_file))
    assert outcome.code == 0
    expected = _line(config_file, "modems[0].port", f"warning: no such device: {absent}")
    assert outcome.err.startswith(expected)
    assert "; 1 warning(s)" in outcome.out


# ------------------------------------------------------------------ files that must be readable


@pytest.mark.parametrize("key", ["ca_file", "cert_file", "key_file", "password_file"])
def test_a_missing_mqtt_file_is_named_by_key_and_path(
    site: Site, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    Path(site.mqtt[key]).unlink()
    config_file = site.write()
    outcome = run_check(capsys, str(config_file))
    assert outcome.code == 2
    assert _line(config_file, f"mqtt.{key}", f"no such file: {site.mqtt[key]}") in outcome.err


def test_a_directory_is_not_a_regular_file(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    site.mqtt["ca_file"] = str(site.directory)
    config_file = site.write()
    outcome = run_check(capsys, str(config_file))
    assert outcome.code == 2
    message = f"not a regular file: {site.directory} is a directory"
    assert _line(config_file, "mqtt.ca_file", message) in outcome.err


def test_a_dangling_symlink_is_named_with_its_target(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    link = site.directory / "current-password"
    link.symlink_to(site.directory / "rotated-away")
    site.mqtt["password_file"] = str(link)
    config_file = site.write()
    outcome = run_check(capsys, str(config_file))
    assert outcome.code == 2
    assert f"mqtt.password_file: dangling symlink: {link} -> " in outcome.err


def _check_as_nobody(config: Config) -> list[str]:
    """``check_environment`` in a forked child that dropped root for "nobody"."""
    check_environment(config)  # imports everything it needs while still root
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        report: list[str] = []
        try:
            os.close(reader)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            report = [str(problem) for problem in check_environment(config)]
        except BaseException as error:
            report = [f"child failed: {error!r}"]
        finally:
            os.write(writer, json.dumps(report).encode())
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        output = pipe.read()
    os.waitpid(child, 0)
    lines: list[str] = json.loads(output)
    return lines


def test_an_unreadable_file_is_permission_denied(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() != 0:
        Path(site.mqtt["key_file"]).chmod(0)
        config_file = site.write()
        outcome = run_check(capsys, str(config_file))
        assert outcome.code == 2
        assert "mqtt.key_file: permission denied: " in outcome.err
        return
    # Root reads every file: check as "nobody", a key in a directory it can reach.
    reachable = Path(tempfile.mkdtemp(prefix="edge112-check-"))
    try:
        reachable.chmod(0o755)
        key_file = reachable / "client.key"
        shutil.copy(site.mqtt["key_file"], key_file)
        key_file.chmod(0o600)  # owned by root: the classic "the gateway user cannot read its key"
        site.mqtt["key_file"] = str(key_file)
        config_file = site.write()
        lines = _check_as_nobody(load_config(config_file))
    finally:
        shutil.rmtree(reachable)
    message = f"permission denied: {key_file} is not readable by user nobody"
    assert f"{config_file}: mqtt.key_file: {message}" in lines


def test_a_serial_device_the_user_cannot_open(
    site: Site, serial_ports: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    device = serial_ports[0]
    message = f"permission denied: {device} is not readable and writable by "
    if os.geteuid() != 0:
        os.chmod(device, 0)
        outcome = run_check(capsys, str(site.write()))
        assert outcome.code == 2
        assert f"modems[0].port: {message}" in outcome.err
        return
    # A pty made by root is root's (mode 620): "nobody" is the gateway user not in its group.
    lines = _check_as_nobody(load_config(site.write()))
    expected = f"{site.directory / 'edge112.toml'}: modems[0].port: {message}user nobody "
    assert any(line.startswith(expected) for line in lines), lines


def test_a_prompt_that_is_not_a_wav(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    Path(site.audio["silent_prompt"]).write_text("tekan lima lima\n")
    config_file = site.write()
    outcome = run_check(capsys, str(config_file))
    assert outcome.code == 2
    assert _line(config_file, "audio.silent_prompt", "not a usable WAV: ") in outcome.err


def test_a_missing_prompt_is_reported_even_when_parsing_let_it_through(site: Site) -> None:
    config = load_config(site.write())
    missing = str(site.directory / "gone.wav")
    config = dataclasses.replace(
        config, audio=dataclasses.replace(config.audio, silent_prompt=missing)
    )
    problems = check_environment(config)
    assert problems == [
        ConfigProblem(
            Severity.ERROR,
            str(site.directory / "edge112.toml"),
            "audio.silent_prompt",
            f"no such file: {missing}",
            missing,
        )
    ]


def test_an_empty_password_file_and_a_password_nobody_sends_are_warnings(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    Path(site.mqtt["password_file"]).write_text("\n")
    del site.mqtt["username"]
    config_file = site.write()
    outcome = run_check(capsys, str(config_file))
    assert outcome.code == 0
    password_file = site.mqtt["password_file"]
    message = f"warning: {password_file} holds no password"
    assert _line(config_file, "mqtt.password_file", message) in outcome.err
    assert "mqtt.password_file: warning: mqtt.username is not set" in outcome.err


def test_a_relative_path_is_a_warning(
    site: Site, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(site.directory)
    site.mqtt["ca_file"] = "ca.pem"
    config_file = site.write()
    outcome = run_check(capsys, str(config_file))
    assert outcome.code == 0
    assert "mqtt.ca_file: warning: relative path 'ca.pem' is resolved against" in outcome.err


# ------------------------------------------------------------------ TLS material


@pytest.mark.parametrize(
    ("given", "absent"), [("cert_file", "key_file"), ("key_file", "cert_file")]
)
def test_a_client_certificate_and_its_key_go_together(site: Site, given: str, absent: str) -> None:
    config = load_config(site.write())  # parse_config refuses one without the other: build it
    if absent == "key_file":
        mqtt = dataclasses.replace(config.mqtt, key_file=None)
    else:
        mqtt = dataclasses.replace(config.mqtt, cert_file=None)
    config = dataclasses.replace(config, mqtt=mqtt)
    [problem] = check_environment(config)
    assert problem.severity is Severity.ERROR
    assert problem.key == f"mqtt.{given}"
    assert f"mqtt.{absent} is missing" in problem.message


def test_a_key_that_is_not_the_certificates(
    site: Site, certificates: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site.mqtt["key_file"] = str(certificates / "other.key")
    config_file = site.write()
    outcome = run_check(capsys, str(config_file))
    assert outcome.code == 2
    message = f"{certificates / 'other.key'} is not the key of {site.mqtt['cert_file']}"
    assert _line(config_file, "mqtt.key_file", message) in outcome.err


def test_an_encrypted_key_cannot_be_used_unattended(
    site: Site, certificates: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site.mqtt["key_file"] = str(certificates / "encrypted.key")
    config_file = site.write()
    outcome = run_check(capsys, str(config_file))
    assert outcome.code == 2
    assert "mqtt.key_file: " in outcome.err and "is encrypted" in outcome.err


def test_a_ca_file_without_a_certificate(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    site.mqtt["ca_file"] = site.mqtt["key_file"]
    config_file = site.write()
    outcome = run_check(capsys, str(config_file))
    assert outcome.code == 2
    assert _line(config_file, "mqtt.ca_file", "not a PEM CA certificate: ") in outcome.err


# ------------------------------------------------------------------ writable directories


def test_an_outbox_that_cannot_be_created_names_the_blocking_directory(
    site: Site, lockable: LockableDirectory, capsys: pytest.CaptureFixture[str]
) -> None:
    lockable.lock()
    site.outbox["path"] = str(lockable.path / "edge112" / "outbox.db")
    config_file = site.write()
    outcome = run_check(capsys, str(config_file))
    assert outcome.code == 2
    message = (
        f"directory {lockable.path / 'edge112'} does not exist and cannot be created: "
        f"{lockable.path} is "
    )
    assert _line(config_file, "outbox.path", message) in outcome.err
    reason = "on a read-only filesystem" if lockable.mounted else "not writable by "
    assert reason in outcome.err


def test_an_existing_outbox_that_cannot_be_written(
    site: Site, lockable: LockableDirectory, capsys: pytest.CaptureFixture[str]
) -> None:
    outbox = lockable.path / "outbox.db"
    outbox.write_bytes(b"SQLite format 3\x00" + bytes(4080))
    lockable.lock()
    site.outbox["path"] = str(outbox)
    config_file = site.write()
    outcome = run_check(capsys, str(config_file))
    assert outcome.code == 2
    assert _line(config_file, "outbox.path", f"directory {lockable.path} is ") in outcome.err
    message = f"{outbox} exists and is not readable and writable by "
    assert _line(config_file, "outbox.path", message) in outcome.err


def test_a_recordings_directory_that_cannot_be_written(
    site: Site, lockable: LockableDirectory, capsys: pytest.CaptureFixture[str]
) -> None:
    (lockable.path / "recordings").mkdir()
    lockable.lock()
    site.audio["recordings_dir"] = str(lockable.path / "recordings")
    config_file = site.write()
    outcome = run_check(capsys, str(config_file))
    assert outcome.code == 2
    message = f"directory {lockable.path / 'recordings'} is "
    assert _line(config_file, "audio.recordings_dir", message) in outcome.err


def test_recordings_are_not_checked_when_no_line_records(
    site: Site, lockable: LockableDirectory, capsys: pytest.CaptureFixture[str]
) -> None:
    lockable.lock()
    site.audio["recordings_dir"] = str(lockable.path / "recordings")
    del site.modems[0]["audio_port"]
    assert run_check(capsys, str(site.write())).code == 0


def test_a_file_in_the_way_of_the_outbox_directory(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.outbox["path"] = str(site.directory / "mqtt-password" / "outbox.db")
    config_file = site.write()
    outcome = run_check(capsys, str(config_file))
    assert outcome.code == 2
    assert f"{site.directory / 'mqtt-password'} is not a directory" in outcome.err


def test_a_full_filesystem_is_a_warning(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() != 0:
        pytest.skip("filling a filesystem needs a private tmpfs, which needs root")
    full = tmp_path / "full"
    full.mkdir()
    _mount_tmpfs(full, "size=64k")
    try:
        with pytest.raises(OSError) as raised, open(full / "filler", "wb") as filler:
            filler.write(bytes(1 << 20))
            filler.flush()
        assert raised.value.errno == errno.ENOSPC
        if os.statvfs(full).f_bavail != 0:
            pytest.skip("this tmpfs reports free blocks when full")
        site.outbox["path"] = str(full / "outbox.db")
        config_file = site.write()
        outcome = run_check(capsys, str(config_file))
    finally:
        subprocess.run(["umount", str(full)], check=True)
    assert outcome.code == 0, outcome.err
    message = f"warning: the filesystem holding {full} is full"
    assert _line(config_file, "outbox.path", message) in outcome.err


# ------------------------------------------------------------------ serial ports


def test_two_lines_on_one_port_through_a_symlink(
    site: Site, serial_ports: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    by_id = site.directory / "serial" / "by-id"
    by_id.mkdir(parents=True)
    link = by_id / "usb-Quectel_EC25-if02-port0"
    link.symlink_to(serial_ports[0])
    site.modems[0]["port"] = str(link)
    site.modems.append({"name": "gsm1", "port": serial_ports[0]})
    config_file = site.write()
    outcome = run_check(capsys, str(config_file))
    assert outcome.code == 2
    message = (
        f"serial port {serial_ports[0]} is already used by modems[0].port ({link}); "
        f"both are {os.path.realpath(serial_ports[0])}"
    )
    assert _line(config_file, "modems[1].port", message) in outcome.err


def test_an_audio_port_behind_a_record_url_collides_with_another_lines_port(
    site: Site, serial_ports: list[str]
) -> None:
    link = site.directory / "audio-link"
    link.symlink_to(serial_ports[1])
    transcript = site.directory / "gsm1.jsonl"
    site.modems.append({"name": "gsm1", "port": f"record://{link}?file={transcript}"})
    problems = check_environment(load_config(site.write()))
    [problem] = problems
    assert problem.key == "modems[1].port"
    assert "already used by modems[0].audio_port" in problem.message
    device = os.path.realpath(serial_ports[1])
    assert problem.message.endswith(f"({serial_ports[1]}); both are {device}")


def test_one_port_as_a_lines_at_and_audio_port(site: Site, serial_ports: list[str]) -> None:
    site.modems[0]["audio_port"] = serial_ports[0]
    [problem] = check_environment(load_config(site.write()))
    assert problem.key == "modems[0].audio_port"
    assert "already used by modems[0].port" in problem.message


def test_url_ports_compare_as_strings_and_loopbacks_never_collide(site: Site) -> None:
    site.modems = [
        {"name": "a", "port": "loop://", "audio_port": "socket://10.0.0.5:4001"},
        {"name": "b", "port": "loop://", "audio_port": "socket://10.0.0.5:4002"},
        {"name": "c", "port": "SOCKET://10.0.0.5:4001"},
    ]
    [problem] = check_environment(load_config(site.write()))
    assert problem.key == "modems[2].port"
    assert "already used by modems[0].audio_port (socket://10.0.0.5:4001)" in problem.message


def test_two_recorders_on_one_transcript(site: Site) -> None:
    transcript = site.directory / "gsm.jsonl"
    site.modems = [
        {"name": "a", "port": f"record://loop://?file={transcript}"},
        {"name": "b", "port": f"record://loop://?file={transcript}"},
    ]
    [problem] = check_environment(load_config(site.write()))
    assert problem.key == "modems[1].port"
    assert problem.message == f"transcript {transcript} is also recorded by modems[0].port"


def test_a_bad_record_url_and_a_port_that_is_not_a_device(site: Site) -> None:
    site.modems = [
        {"name": "a", "port": "record://loop://"},
        {"name": "b", "port": site.mqtt["ca_file"]},
    ]
    problems = check_environment(load_config(site.write()))
    assert [(problem.key, problem.severity) for problem in problems] == [
        ("modems[0].port", Severity.ERROR),
        ("modems[1].port", Severity.ERROR),
    ]
    assert "expected record://<pyserial URL>?file=<path>" in problems[0].message
    assert "is not a character device" in problems[1].message
