"""The control socket: the running gateway's live state for ``edge112 status`` and ``doctor``.

The daemon listens on a Unix stream socket in its runtime directory::

    [gateway] control_socket = "..."     when configured
    $RUNTIME_DIRECTORY/control.sock      under systemd (RuntimeDirectory=edge112:
                                         /run/edge112/control.sock)
    <outbox directory>/control.sock      otherwise (a development run)

The socket file is mode 0660 (the service user and its group; root can
always connect). A socket file left by a gateway that died is replaced at
start; one that still answers belongs to another gateway and is left alone
(this one then runs without a control socket and logs why). The file is
removed at stop.

Protocol: newline-delimited JSON, one request per line, one response line
per request, several requests per connection allowed::

    -> {"get": "status"}
    <- {"format": 1, "gateway_id": "bontang-01", "lines": [...], ...}   (gateway.status)
    -> {"get": "ping"}
    <- {"pong": true, "pid": 812}
    -> {"get": "nonsense"}   (or a line that is not JSON, or longer than 4 KiB)
    <- {"error": "unknown_request", "message": "..."}

Error codes: ``malformed_request`` (not JSON, not an object, no ``get``),
``request_too_long`` (the rest of that line is skipped; past 1 MiB the
connection is closed), ``unknown_request``,
``busy`` (too many clients at once), ``internal`` (building the answer
failed; the daemon carries on). A connection idle for ``IDLE_TIMEOUT_S`` is
closed. The server runs in its own threads (``socketserver``); answering
never blocks the gateway's own threads, and nothing a client sends can stop
the daemon.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("edge112.control")

CONTROL_SOCKET_NAME = "control.sock"
SOCKET_MODE = 0o660
MAX_REQUEST_BYTES = 4096
MAX_SKIPPED_BYTES = 1024 * 1024  # an over-long line longer than this closes the connection
MAX_CLIENTS = 8
IDLE_TIMEOUT_S = 10.0
CLIENT_TIMEOUT_S = 5.0
UNIX_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL

StatusProvider = Callable[[], dict[str, Any]]


class ControlSocketError(OSError):
    """The control socket cannot be served or reached, and why (one sentence)."""


def control_socket_path(
    configured: str | None, outbox_path: str, environ: Mapping[str, str] | None = None
) -> Path:
    """Where the daemon listens (see the module docstring)."""
    if configured:
        return Path(configured)
    env = os.environ if environ is None else environ
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return Path(runtime) / CONTROL_SOCKET_NAME
    return Path(outbox_path).parent / CONTROL_SOCKET_NAME


@contextlib.contextmanager
def _short_address(path: Path) -> Iterator[str]:
    """An address for ``path`` that fits sun_path: itself, or through its directory's fd.

    A long path (a deep test or install directory) goes through
    ``/proc/self/fd/<directory fd>/<name>``, which Linux resolves like the path.
    """
    text = os.fsdecode(path)
    if len(os.fsencode(text)) <= UNIX_PATH_MAX:
        yield text
        return
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{directory}/{path.name}"
    finally:
        os.close(directory)


def _connect(path: Path, timeout_s: float) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout_s)
    try:
        with _short_address(path) as address:
            client.connect(address)
    except BaseException:
        client.close()
        raise
    return client


# ---------------------------------------------------------------- server


class _Handler(socketserver.StreamRequestHandler):
    server: _Server
    timeout = IDLE_TIMEOUT_S

    def handle(self) -> None:
        if not self.server.admit():
            with contextlib.suppress(OSError):
                self._send({"error": "busy", "message": f"more than {MAX_CLIENTS} clients"})
            return
        try:
            while True:
                raw = self.rfile.readline(MAX_REQUEST_BYTES + 1)
                if not raw:
                    return
                if len(raw) > MAX_REQUEST_BYTES and not raw.endswith(b"\n"):
                    limit = f"a request is one line of {MAX_REQUEST_BYTES} bytes at most"
                    self._send({"error": "request_too_long", "message": limit})
                    if not self._skip_line():
                        return
                    continue
                if raw.strip():
                    self._send(self.server.answer(raw))
        except (OSError, ValueError):  # idle timeout, client gone mid-answer
            return
        finally:
            self.server.leave()

    def _skip_line(self) -> bool:
        """Read past the rest of an over-long line; False when it runs on past the bound."""
        skipped = 0
        while skipped < MAX_SKIPPED_BYTES:
            piece = self.rfile.readline(MAX_REQUEST_BYTES)
            if not piece:
                return False
            if piece.endswith(b"\n"):
                return True
            skipped += len(piece)
        return False

    def _send(self, document: dict[str, Any]) -> None:
        self.wfile.write(json.dumps(document, default=str).encode() + b"\n")
        self.wfile.flush()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, path: Path, provider: StatusProvider) -> None:
        self.path = path
        self.provider = provider
        self._clients = threading.BoundedSemaphore(MAX_CLIENTS)
        self._answering = threading.Lock()  # one status document built at a time
        self.inode: int | None = None
        with _short_address(path) as address:
            super().__init__(address, _Handler)

    def server_bind(self) -> None:
        super().server_bind()
        # before listen(): nobody can connect while the mode is still the umask's
        os.chmod(self.path, SOCKET_MODE)
        self.inode = os.stat(self.path).st_ino

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("control socket: a client's connection failed", exc_info=True)

    def admit(self) -> bool:
        return self._clients.acquire(blocking=False)

    def leave(self) -> None:
        self._clients.release()

    def answer(self, raw: bytes) -> dict[str, Any]:
        try:
            request = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as error:
            return {"error": "malformed_request", "message": f"not JSON: {error}"}
        if not isinstance(request, dict) or not isinstance(request.get("get"), str):
            return {
                "error": "malformed_request",
                "message": 'a request is a JSON object such as {"get": "status"}',
            }
        what = request["get"]
        if what == "ping":
            return {"pong": True, "pid": os.getpid()}
        if what != "status":
            return {
                "error": "unknown_request",
                "message": f"unknown request {what[:64]!r} (known: status, ping)",
            }
        try:
            with self._answering:
                return {"format": 1, **self.provider()}
        except Exception as error:  # a bug in a status part: say so, keep serving
            log.warning("control socket: building the status failed", exc_info=True)
            return {"error": "internal", "message": f"building the status failed: {error}"}


class ControlServer:
    """The control socket, served by its own threads until ``close()``."""

    def __init__(self, path: Path, provider: StatusProvider) -> None:
        self.path = path
        _clear_stale(path)
        try:
            self._server = _Server(path, provider)
        except OSError as error:
            raise ControlSocketError(
                f"cannot listen on {path}: {error.strerror or error}"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="control-socket",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving and remove the socket file (only if it is still ours)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._server.inode:
                os.unlink(self.path)


def _clear_stale(path: Path) -> None:
    """Remove a socket file nobody answers on; refuse a live socket or a non-socket file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise ControlSocketError(f"cannot inspect {path}: {error.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise ControlSocketError(f"{path} exists and is not a socket: not replacing it")
    try:
        _connect(path, 1.0).close()
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("replacing the stale control socket %s", path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    except OSError:
        pass  # cannot tell (permissions, timeout): treat as live
    raise ControlSocketError(f"{path}: another gateway answers on it")


def start_control_server(path: Path, provider: StatusProvider) -> ControlServer | None:
    """``ControlServer``, or None with the reason logged: never a reason not to run."""
    try:
        server = ControlServer(path, provider)
    except ControlSocketError as error:
        log.error("no control socket: %s (`edge112 status` falls back to the status file)", error)
        return None
    log.info("control socket %s", path)
    return server


# ---------------------------------------------------------------- client


def request(
    path: Path, what: str = "status", timeout_s: float = CLIENT_TIMEOUT_S
) -> dict[str, Any]:
    """Ask the gateway on ``path``; ControlSocketError when it cannot be asked or refuses."""
    try:
        with _connect(path, timeout_s) as client:
            client.sendall(json.dumps({"get": what}).encode() + b"\n")
            with client.makefile("rb") as stream:
                line = stream.readline(16 * 1024 * 1024)
    except FileNotFoundError:
        raise ControlSocketError(f"no control socket at {path}") from None
    except ConnectionRefusedError:
        raise ControlSocketError(f"nobody listens on {path} (a stale socket)") from None
    except PermissionError:
        raise ControlSocketError(
            f"{path}: permission denied (run as root or a member of the edge112 group)"
        ) from None
    except TimeoutError:
        raise ControlSocketError(f"{path}: no answer within {timeout_s:g} s") from None
    except OSError as error:
        raise ControlSocketError(f"{path}: {error.strerror or error}") from None
    try:
        answer = json.loads(line)
    except ValueError:
        raise ControlSocketError(f"{path}: the answer is not JSON") from None
    if not isinstance(answer, dict):
        raise ControlSocketError(f"{path}: the answer is not a JSON object")
    if "error" in answer:
        raise ControlSocketError(f"{path}: {answer['error']}: {answer.get('message')}")
    return answer
