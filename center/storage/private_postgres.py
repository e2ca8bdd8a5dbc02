"""A private PostgreSQL server in a directory, on a free loopback port.

For the tests, the benchmarks and a demo center, like ``gateway.broker``'s
private mosquitto: Debian's server binaries (``/usr/lib/postgresql/*/bin``),
``initdb`` into a fresh directory, ``pg_ctl start`` on 127.0.0.1, trust
authentication for one user, nothing shared with a system cluster. PostgreSQL
refuses to run as root: as root, the server runs as the ``postgres`` user
(created by Debian's package) through ``runuser``.

``durable=False`` turns off fsync and synchronous commit: for tests only,
never for measurements.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from gateway.broker import free_port, wait_for_port

SERVER_USER = "postgres"
SUPERUSER = "edge112"
START_ATTEMPTS = 3


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed, or the server would not start."""


def find_postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has initdb and pg_ctl."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: int(Path(path).parent.name) if Path(path).parent.name.isdigit() else 0,
    )
    for directory in reversed(candidates):
        if os.access(Path(directory) / "initdb", os.X_OK) and os.access(
            Path(directory) / "pg_ctl", os.X_OK
        ):
            return Path(directory)
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (apt-get install postgresql): "
        "looked in /usr/lib/postgresql/*/bin and on PATH"
    )


class PrivatePostgres:
    """initdb + pg_ctl start on 127.0.0.1:<free port>; ``url(dbname)`` for SQLAlchemy."""

    def __init__(self, workdir: str | Path | None = None, *, durable: bool = True) -> None:
        self.bin = find_postgres_bin()
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="edge112-postgres-"))
        self.data_dir = self.workdir / "data"
        self.socket_dir = self.workdir / "socket"
        self.log_path = self.workdir / "postgres.log"
        self.port = free_port()
        self.durable = durable
        self._as_user: list[str] = []
        self._started = False

    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            return
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise PostgresUnavailable(
                f"running as root and there is no {SERVER_USER!r} user for the server"
            ) from None
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        self._as_user = [runuser, "-u", SERVER_USER, "--"]
        for path in (self.workdir, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.log_path.touch()
        os.chown(self.log_path, entry.pw_uid, entry.pw_gid)
        # the server user must be able to reach the work directory
        parent = self.workdir.parent
        while parent != parent.parent:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)
            parent = parent.parent

    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as_user, *command], capture_output=True, text=True, timeout=120, check=False
        )

    def start(self) -> PrivatePostgres:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_user()
        done = self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            *([] if self.durable else ["--no-sync"]),
        )
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {done.stderr.strip()[-800:]}")
        problem = ""
        for _attempt in range(START_ATTEMPTS):  # another process may take the free port first
            problem = self._start_server()
            if not problem:
                break
            self.port = free_port()
        else:
            raise PostgresUnavailable(f"pg_ctl start failed: {problem}")
        self._started = True
        return self

    def _start_server(self) -> str:
        """Start on ``self.port``; what went wrong, or "" when it runs."""
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-p {self.port}",
            f"-k {self.socket_dir}",
            "-c max_connections=100",
            "-c shared_buffers=64MB",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        done = self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
            "-o",
            " ".join(options),
            "-w",
            "-t",
            "90",
            "start",
        )
        if done.returncode == 0 and wait_for_port(self.port, 30):
            return ""
        log_tail = (
            self.log_path.read_text(errors="replace")[-800:] if self.log_path.exists() else ""
        )
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "stop")
        return f"{done.stderr.strip()} {log_tail}"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, dbname: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{dbname}"')
        return self.url(dbname)

    def create_schema(self, name: str, dbname: str = "postgres") -> str:
        """A new empty schema, as a URL whose connections use it (much faster than a database)."""
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={dbname}", autocommit=True
        ) as connection:
            connection.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url(dbname)}?options=-csearch_path%3D{name}"

    def stop(self) -> None:
        if self._started:
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"
            )
            self._started = False

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
