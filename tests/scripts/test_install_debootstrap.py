"""The README's field installation, run for real in a clean Debian 12 root.

What a technician does on a fresh gateway, inside a ``debootstrap --variant=minbase
bookworm`` root entered with ``chroot`` (``/proc`` and a read-only ``/sys`` mounted,
``resolv.conf`` copied in; systemd does not run there):

1. the one ``apt-get install`` line of README "Installing on a gateway" (``sudo``
   dropped: the test is root, and a fresh Debian has no sudo),
2. ``git clone`` of the repository (a commit of this working tree, made inside the
   root, so the clone carries only what git carries: file modes included),
3. ``scripts/install.sh`` from the clone, exactly as the README says.

Then it checks the virtualenv (it runs ``edge112 --version`` and ``config check``), the
user and its groups, owners and modes, that the service user can read its config, the
unit (``systemd-analyze verify`` inside the root), the udev rules, a second run
(idempotent, the edited config kept), an upgrade (the previous build kept), a broken
build (the link stays on the working one) and uninstall (config and outbox kept
unless ``--purge``).

minbase lacks what every installed Debian has as PID 1: the root gets ``systemd`` and
``udev`` from apt before the README's line (:data:`DEBIAN_INIT`).

Caching, outside the repository in :data:`CACHE` (``EDGE112_TEST_CACHE``): the
debootstrap result and the root after the apt lines, as tarballs, each rebuilt when
missing or older than :data:`MAX_AGE_DAYS`; the second is keyed by a hash of the apt
lines and of the first. They hold only what those exact commands produce, so a cached
run checks the same thing as an uncached one; install.sh itself always runs in full.
Timings of each stage are printed (``pytest -s``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import require_tool

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
CACHE = Path(os.environ.get("EDGE112_TEST_CACHE", "/var/cache/edge112-tests"))
MAX_AGE_DAYS = 7
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
DEBIAN_INIT = "apt-get update -q && apt-get install -y -q systemd udev"
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CLONE = "/root/edge112"
CONFIG = "/etc/edge112/edge112.toml"
INSTALL_LINE = r"scripts/install\.sh"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap and chroot need root"),
]

timings: dict[str, float] = {}


# ------------------------------------------------------------------ the README's commands


def readme_install_lines() -> list[str]:
    """The shell lines of the first code block in README "Installing on a gateway"."""
    text = README.read_text()
    section = text.split("## Installing on a gateway", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, "README 'Installing on a gateway' has no ```sh block"
    lines = []
    for raw in block.group(1).splitlines():
        line = raw.split("  #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def as_root(line: str) -> str:
    """The README line without ``sudo``: the test is root, a fresh Debian has no sudo."""
    return re.sub(r"(^|&& )sudo ", r"\1", line)


def readme_line(pattern: str) -> str:
    found = [line for line in readme_install_lines() if re.search(pattern, line)]
    assert len(found) == 1, f"README: expected one line matching {pattern!r}, got {found}"
    return as_root(found[0])


# ----------------------------------------------------------------------- roots and caches


def fresh(path: Path) -> bool:
    return path.exists() and time.time() - path.stat().st_mtime < MAX_AGE_DAYS * 86400


def timed(name: str, started: float) -> None:
    timings[name] = time.monotonic() - started


def save_tarball(root: Path, tarball: Path) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(f".partial-{os.getpid()}")
    subprocess.run(
        ["tar", "--numeric-owner", "-cf", str(partial), "-C", str(root), "."], check=True
    )
    partial.replace(tarball)


def extract(tarball: Path, root: Path) -> None:
    root.mkdir(parents=True)
    subprocess.run(["tar", "--numeric-owner", "-xpf", str(tarball), "-C", str(root)], check=True)


def base_tarball(work: Path) -> Path:
    """``debootstrap --variant=minbase bookworm`` as a tarball, cached."""
    tarball = CACHE / f"debian-{SUITE}-minbase.tar"
    if fresh(tarball):
        timings["debootstrap (cached)"] = 0.0
        return tarball
    debootstrap = require_tool("debootstrap")
    root = work / "debootstrap"
    started = time.monotonic()
    subprocess.run(
        [debootstrap, "--variant=minbase", SUITE, str(root), MIRROR],
        check=True,
        capture_output=True,
        timeout=900,
    )
    timed("debootstrap", started)
    save_tarball(root, tarball)
    shutil.rmtree(root)
    return tarball


def apt_tarball(work: Path, base: Path, apt_line: str) -> Path:
    """The base root after :data:`DEBIAN_INIT` and the README's apt line, cached by their hash."""
    key = hashlib.sha256(f"{base.stat().st_mtime_ns}\n{DEBIAN_INIT}\n{apt_line}".encode())
    tarball = CACHE / f"debian-{SUITE}-apt-{key.hexdigest()[:16]}.tar"
    if fresh(tarball):
        timings["apt lines (cached)"] = 0.0
        return tarball
    for stale in CACHE.glob(f"debian-{SUITE}-apt-*.tar"):
        stale.unlink()
    root = work / "apt"
    extract(base, root)
    with chroot_mounts(root):
        started = time.monotonic()
        run_in(root, DEBIAN_INIT)
        timed("apt: systemd udev", started)
        started = time.monotonic()
        result = run_in(root, apt_line)
        timed("apt: README line", started)
        assert "Setting up git" in result.stdout, result.stdout[-3000:]
    save_tarball(root, tarball)
    remove_root(root)
    return tarball


def mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    return [point for point in points if point == prefix or point.startswith(prefix + "/")]


@contextmanager
def chroot_mounts(root: Path) -> Iterator[None]:
    """/proc and a read-only /sys in the root (debootstrap made /dev's nodes), resolv.conf."""
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    mounted: list[Path] = []
    try:
        for fstype, target, options in (("proc", "proc", "rw"), ("sysfs", "sys", "ro")):
            point = root / target
            subprocess.run(["mount", "-t", fstype, "-o", options, fstype, str(point)], check=True)
            mounted.append(point)
        yield
    finally:
        for point in reversed(mounted):
            if subprocess.run(["umount", str(point)], check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(point)], check=False)
        assert not mounts_under(root), f"still mounted: {mounts_under(root)}"


def remove_root(root: Path) -> None:
    """Delete a root, never through a mount point."""
    assert not mounts_under(root), f"refusing to delete {root}: {mounts_under(root)} mounted"
    shutil.rmtree(root)


def network_trust(root: Path) -> list[str]:
    """The certificate bundle this machine's network needs for HTTPS (PIP_CERT: a site
    behind a TLS-inspecting proxy), copied into the root and passed to pip there."""
    bundle = os.environ.get("PIP_CERT")
    if not bundle or not Path(bundle).is_file():
        return []
    shutil.copy(bundle, root / "root/network-ca.crt")
    return ["PIP_CERT=/root/network-ca.crt"]


def run_in(
    root: Path, command: str, *, check: bool = True, timeout: float = 1200
) -> subprocess.CompletedProcess[str]:
    """``bash -c command`` inside the root, as root, with a clean environment."""
    result = subprocess.run(
        [
            "chroot",
            str(root),
            "/usr/bin/env",
            "-i",
            f"PATH={CHROOT_PATH}",
            "HOME=/root",
            "LANG=C.UTF-8",
            "DEBIAN_FRONTEND=noninteractive",
            *network_trust(root),
            "/bin/bash",
            "-c",
            command,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if check:
        assert result.returncode == 0, (
            f"{command!r} failed ({result.returncode})\n{result.stdout[-4000:]}\n"
            f"{result.stderr[-4000:]}"
        )
    return result


def copy_repository(
    root: Path, to: str, *, edit: dict[str, str] | None = None, drop: str = ""
) -> None:
    """This working tree (tracked and new files, nothing git ignores) committed in a git
    repository inside the root, so that a ``git clone`` of it is what a technician clones;
    ``edit`` replaces files' text, ``drop`` removes the files matching a glob."""
    listing = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    target = root / to.lstrip("/")
    target.mkdir(parents=True)
    for name in [os.fsdecode(entry) for entry in listing.split(b"\0") if entry]:
        if (REPO / name).is_file():  # tracked but deleted in the working tree: not copied
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    for name, text in (edit or {}).items():
        (target / name).write_text(text)
    for path in target.glob(drop) if drop else ():
        path.unlink()
    run_in(
        root,
        f"cd {to} && git init -q && git add -A && "
        "git -c user.name=test -c user.email=test@localhost commit -q -m source",
    )


def git_clone(root: Path, source: str, to: str) -> None:
    clone = readme_line(r"^git clone ")
    assert re.match(r"git clone .+ edge112 && cd edge112$", clone), clone
    run_in(root, f"git clone -q {source} {to}")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A clean Debian 12 root after the README's apt line and first ``install.sh``."""
    require_tool("debootstrap")
    work = tmp_path_factory.mktemp("debian")
    apt_line = readme_line(r"apt-get install")
    tarball = apt_tarball(work, base_tarball(work), apt_line)
    root = work / "root"
    started = time.monotonic()
    extract(tarball, root)
    timed("extract the cached root", started)
    try:
        with chroot_mounts(root):
            copy_repository(root, "/root/source")
            git_clone(root, "/root/source", CLONE)
            started = time.monotonic()
            result = run_in(root, f"cd {CLONE} && {readme_line(INSTALL_LINE)}")
            timed("install.sh (apt, user, virtualenv, files)", started)
            root_first_install_output[root] = result
            yield root
    finally:
        if root.exists():
            remove_root(root)
        print("\ninstall in a Debian 12 root, seconds:")
        for name, seconds in timings.items():
            print(f"  {name:45s} {seconds:7.1f}")


root_first_install_output: dict[Path, subprocess.CompletedProcess[str]] = {}


def owner_mode(path: Path) -> tuple[int, int, int]:
    info = path.lstat()
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


def ids(root: Path, name: str) -> tuple[int, int]:
    out = run_in(root, f"id -u {name}; id -g {name}").stdout.split()
    return int(out[0]), int(out[1])


# ------------------------------------------------------------------------------ tests


def test_first_install_gives_a_working_virtualenv_user_files_and_unit(root: Path) -> None:
    result = root_first_install_output[root]
    out = result.stdout
    assert "edge112: [1] system packages:" in out and "apt: Setting up python3-venv" in out
    assert "created user edge112" in out and "created from the example" in out
    assert "systemd is not running here" in out  # detected: no systemctl, no udevadm
    assert "warning" not in (out + result.stderr).lower(), out + result.stderr

    opt = root / "opt/edge112"
    link = os.readlink(opt / "venv")
    assert re.fullmatch(r"0\.\d+\.\d+[^/]*-\d{8}-\d{6}/venv", link), link
    version = run_in(root, "edge112 --version").stdout  # through /usr/local/bin/edge112
    assert version.startswith("edge112 "), version
    check = run_in(root, f"/opt/edge112/venv/bin/edge112 config check {CONFIG}")
    assert ": ok (gateway " in check.stdout, check.stdout + check.stderr

    groups = run_in(root, "id -nG edge112").stdout.split()
    assert {"edge112", "dialout", "gpio"} <= set(groups), groups
    uid, gid = ids(root, "edge112")
    assert owner_mode(root / CONFIG.lstrip("/")) == (0, gid, 0o640)
    assert (
        run_in(root, f"runuser -u edge112 -- cat {CONFIG}").stdout
        == (REPO / "gateway/edge112.example.toml").read_text()
    )
    denied = run_in(root, "runuser -u nobody -- cat /etc/edge112/edge112.toml", check=False)
    assert denied.returncode != 0  # 0640: not world-readable
    assert owner_mode(root / "var/lib/edge112") == (uid, gid, 0o750)
    shell = run_in(root, "getent passwd edge112").stdout.strip().split(":")
    assert shell[5:] == ["/var/lib/edge112", "/usr/sbin/nologin"], shell

    unit = root / "etc/systemd/system/edge112.service"
    assert unit.read_text() == (REPO / "systemd/edge112.service").read_text()
    wants = root / "etc/systemd/system/multi-user.target.wants/edge112.service"
    assert os.readlink(wants) == "/etc/systemd/system/edge112.service"  # enabled
    for rules in ("99-edge112-modems.rules", "99-edge112-gpio.rules"):
        assert (root / "etc/udev/rules.d" / rules).read_text() == (
            REPO / "systemd" / rules
        ).read_text()
    verify = run_in(root, "systemd-analyze verify /etc/systemd/system/edge112.service")
    assert "edge112" not in verify.stderr, verify.stderr


def test_second_run_keeps_the_edited_config_and_does_not_rebuild(root: Path) -> None:
    config = root / CONFIG.lstrip("/")
    edited = config.read_text().replace("bontang-01", "bontang-02", 1)
    assert edited != config.read_text()
    config.write_text(edited)
    config.chmod(0o644)
    link = os.readlink(root / "opt/edge112/venv")
    started = time.monotonic()
    result = run_in(root, f"cd {CLONE} && {readme_line(INSTALL_LINE)}")
    timed("install.sh again (nothing to do)", started)
    assert "created" not in result.stdout, result.stdout
    assert "already built from this source" in result.stdout, result.stdout
    assert config.read_text() == edited
    assert owner_mode(config) == (0, ids(root, "edge112")[1], 0o640)
    assert os.readlink(root / "opt/edge112/venv") == link
    assert not (root / "opt/edge112/previous").exists()
    check = run_in(root, f"edge112 config check {CONFIG}")
    assert "gateway bontang-02" in check.stdout


def bumped(version: str) -> str:
    major, minor, patch = version.split(".")[:3]
    return f"{major}.{minor}.{int(patch) + 1}"


def test_upgrade_keeps_the_previous_build_and_a_broken_build_changes_nothing(
    root: Path,
) -> None:
    init = (REPO / "gateway/__init__.py").read_text()  # the one place the version is set
    current = re.search(r'^__version__ = "(.*)"', init, re.MULTILINE)
    assert current
    new_version = bumped(current.group(1))
    before = os.readlink(root / "opt/edge112/venv")

    newer = init.replace(current.group(0), f'__version__ = "{new_version}"', 1)
    copy_repository(root, "/root/newer", edit={"gateway/__init__.py": newer})
    started = time.monotonic()
    result = run_in(root, "cd /root/newer && scripts/install.sh")
    timed("install.sh upgrade (new build)", started)
    after = os.readlink(root / "opt/edge112/venv")
    assert after.startswith(f"{new_version}-") and after != before, result.stdout
    assert os.readlink(root / "opt/edge112/previous") == before
    assert run_in(root, "edge112 --version").stdout.strip() == f"edge112 {new_version}"
    assert run_in(root, "/opt/edge112/previous/bin/edge112 --version").returncode == 0

    # A build that installs but does not run (an import error in the new version); without
    # the Cython sources it builds in seconds.
    broken = newer.replace(new_version, bumped(new_version)) + "\nraise ImportError('broken')\n"
    copy_repository(
        root, "/root/broken", edit={"gateway/__init__.py": broken}, drop="cython_ext/*.pyx"
    )
    started = time.monotonic()
    failed = run_in(root, "cd /root/broken && scripts/install.sh", check=False)
    timed("install.sh with a broken build (no Cython)", started)
    assert failed.returncode != 0
    assert "the new build does not run" in failed.stdout, failed.stdout + failed.stderr
    assert os.readlink(root / "opt/edge112/venv") == after
    assert os.readlink(root / "opt/edge112/previous") == before
    assert not list((root / "opt/edge112").glob(f"{bumped(new_version)}-*"))
    assert run_in(root, "edge112 --version").stdout.strip() == f"edge112 {new_version}"


def test_uninstall_keeps_config_and_outbox_unless_purged(root: Path) -> None:
    outbox = root / "var/lib/edge112/outbox.db"
    outbox.write_text("calls")
    result = run_in(root, f"cd {CLONE} && scripts/install.sh --uninstall")
    assert "kept /etc/edge112" in result.stdout
    for gone in (
        "opt/edge112",
        "etc/systemd/system/edge112.service",
        "etc/systemd/system/multi-user.target.wants/edge112.service",
        "etc/udev/rules.d/99-edge112-modems.rules",
        "usr/local/bin/edge112",
    ):
        assert not os.path.lexists(root / gone), gone
    assert outbox.read_text() == "calls" and (root / CONFIG.lstrip("/")).exists()
    run_in(root, f"cd {CLONE} && scripts/install.sh --uninstall --purge")
    assert not (root / "var/lib/edge112").exists() and not (root / "etc/edge112").exists()
    assert run_in(root, "getent passwd edge112", check=False).returncode != 0
