"""scripts/install.sh into a throw-away root: files, user, groups, owners, modes, idempotence,
the credentials drop-in only with a password file, and ``systemd-analyze`` on the result.

The root is a directory holding a copy of this machine's account files
(``useradd --root`` edits them there); systemd does not run in it, so the
script installs files, user and groups only (what ``--root`` promises).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "install.sh"
ACCOUNT_FILES = ("passwd", "group", "shadow", "gshadow")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="install.sh needs root (useradd)")


def make_root(tmp_path: Path, *, with_gpio_group: bool = False) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    nologin = root / "usr/sbin/nologin"  # every Debian root has it (package login)
    nologin.parent.mkdir(parents=True)
    nologin.write_text("#!/bin/sh\nexit 1\n")
    nologin.chmod(0o755)
    for name in ACCOUNT_FILES:
        source = Path("/etc") / name
        if source.exists():
            shutil.copy2(source, root / "etc" / name)
    group = root / "etc" / "group"
    lines = [line for line in group.read_text().splitlines() if not line.startswith("gpio:")]
    if with_gpio_group:
        lines.append("gpio:x:997:")
    group.write_text("\n".join(lines) + "\n")
    gshadow = root / "etc" / "gshadow"
    if gshadow.exists():
        kept = [ln for ln in gshadow.read_text().splitlines() if not ln.startswith("gpio:")]
        gshadow.write_text("\n".join(kept) + "\n")
    for account in ("passwd", "shadow", "group", "gshadow"):  # a clean machine: no edge112 yet
        path = root / "etc" / account
        if path.exists():
            kept = [ln for ln in path.read_text().splitlines() if not ln.startswith("edge112:")]
            path.write_text("\n".join(kept) + "\n")
    return root


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), "--root", str(root), "--no-venv", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def account(root: Path, file: str, name: str) -> list[str]:
    for line in (root / "etc" / file).read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":")
    raise AssertionError(f"{name} not in {file}")


def owner_mode(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


def test_install_into_a_clean_debian_root(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    result = install(root)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[1] system packages: skipped" in out and "created group gpio" in out
    assert "created user edge112" in out and "created from the example" in out
    assert result.stderr == ""

    user = account(root, "passwd", "edge112")
    uid, gid = int(user[2]), int(user[3])
    assert user[6] == "/usr/sbin/nologin" and user[5] == "/var/lib/edge112"
    for group in ("dialout", "gpio"):
        assert "edge112" in account(root, "group", group)[3].split(",")

    config = root / "etc/edge112/edge112.toml"
    assert owner_mode(config) == (0, gid, 0o640)  # readable by the service user's group
    assert owner_mode(root / "etc/edge112") == (0, gid, 0o750)
    assert owner_mode(root / "var/lib/edge112") == (uid, gid, 0o750)
    assert owner_mode(root / "var/log/edge112") == (uid, gid, 0o750)
    unit = root / "etc/systemd/system/edge112.service"
    assert owner_mode(unit)[2] == 0o644
    assert unit.read_text() == (REPO / "systemd/edge112.service").read_text()
    assert not (root / "etc/systemd/system/edge112.service.d").exists()  # no password file
    wants = root / "etc/systemd/system/multi-user.target.wants/edge112.service"
    assert os.readlink(wants) == "/etc/systemd/system/edge112.service"  # enabled: starts at boot
    assert "systemd is not running here" in out
    for rules in ("99-edge112-modems.rules", "99-edge112-gpio.rules"):
        assert owner_mode(root / "etc/udev/rules.d" / rules)[2] == 0o644
    assert os.readlink(root / "usr/local/bin/edge112") == "/opt/edge112/venv/bin/edge112"


def test_install_again_keeps_the_config_and_adds_credentials_when_a_password_exists(
    tmp_path: Path,
) -> None:
    root = make_root(tmp_path, with_gpio_group=True)
    assert install(root).returncode == 0
    config = root / "etc/edge112/edge112.toml"
    config.write_text("# edited on site\n")
    config.chmod(0o644)
    (root / "etc/edge112/mqtt-password").write_text("secret\n")
    result = install(root, "--hardware-watchdog")
    assert result.returncode == 0, result.stderr
    assert "created" not in result.stdout  # nothing new: group, user, config exist
    assert config.read_text() == "# edited on site\n"
    gid = int(account(root, "group", "edge112")[2])
    assert owner_mode(config) == (0, gid, 0o640)
    dropin = root / "etc/systemd/system/edge112.service.d/credentials.conf"
    assert "LoadCredential=mqtt-password:/etc/edge112/mqtt-password" in dropin.read_text()
    assert owner_mode(root / "etc/edge112/mqtt-password") == (0, 0, 0o600)
    watchdog = root / "etc/systemd/system.conf.d/edge112-watchdog.conf"
    assert "RuntimeWatchdogSec=15s" in watchdog.read_text()
    (root / "etc/edge112/mqtt-password").unlink()
    assert install(root).returncode == 0
    assert not dropin.exists()  # no password file, no LoadCredential (243/CREDENTIALS)


def test_uninstall_keeps_data_unless_purged(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    assert install(root).returncode == 0
    (root / "var/lib/edge112/outbox.db").write_text("calls")
    result = install(root, "--uninstall")
    assert result.returncode == 0 and "kept /etc/edge112" in result.stdout
    assert not (root / "etc/systemd/system/edge112.service").exists()
    assert not os.path.lexists(root / "etc/systemd/system/multi-user.target.wants/edge112.service")
    assert (root / "var/lib/edge112/outbox.db").exists() and (root / "etc/edge112").exists()
    assert install(root, "--uninstall", "--purge").returncode == 0
    assert not (root / "var/lib/edge112").exists() and not (root / "etc/edge112").exists()
    assert "edge112:" not in (root / "etc/passwd").read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_installed_unit_verifies_and_scores_ok(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    assert install(root).returncode == 0
    binary = root / "opt/edge112/venv/bin/edge112"  # --no-venv: a stand-in executable
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    units = root / "usr/lib/systemd/system"  # what a Debian root has: the system's own units
    shutil.copytree("/usr/lib/systemd/system", units, symlinks=True)
    unit = root / "etc/systemd/system/edge112.service"
    verify = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "/etc/systemd/system/edge112.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    assert "edge112.service" not in verify.stderr, verify.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    score = float(
        security.stdout.split("Overall exposure level for edge112.service:")[1].split()[0]
    )
    assert score <= 2.0, security.stdout[-2000:]
