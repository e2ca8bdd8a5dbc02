"""The gateway's desk endpoint: classification and escalations over local HTTP.

Off unless ``[desk] listen`` is set (``"127.0.0.1:8112"``: loopback only by
default; a desk PC on the LAN needs an explicit address). Every request
carries ``Authorization: Bearer <token>``, the token read from
``[desk] token_file`` at start and compared in constant time::

    GET  /v1/health                              {"ok": true, "gateway_id": ...}
    GET  /v1/vocabulary                          {"categories": [...], "agencies": [...]}
    GET  /v1/calls/{call_id}                     the call and its annotations
    POST /v1/calls/{call_id}/classification      {"category": "darurat", "at"?, "reference"?,
                                                  "annotation_id"?}
    POST /v1/calls/{call_id}/escalations         {"agency": "damkar", "at"?, "reference"?,
                                                  "annotation_id"?}

A POST answers 201 with ``{annotation_id, call_id, kind, type, event_id, seq}``
once the event is committed to the outbox (200, the same body, for a retry
with a known ``annotation_id``). Errors are JSON ``{"error": "...",
"status": N}``: 401 no or wrong token, 404 unknown call or path, 400 body not
a JSON object, 413 body over ``MAX_BODY_BYTES``, 422 a bad category, agency,
time or reference, 409 an annotation_id reused for another call, 503 the
outbox did not commit. ``ThreadingHTTPServer`` (stdlib): a desk makes a few
requests a minute.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from gateway.annotations import CATEGORIES, CLASSIFICATION, ESCALATION, AnnotationError, Annotations

log = logging.getLogger("edge112.desk_http")

MAX_BODY_BYTES = 16 * 1024
REQUEST_TIMEOUT_S = 10.0
TOKEN_MIN_CHARS = 16
_KINDS = {"classification": (CLASSIFICATION, "category"), "escalations": (ESCALATION, "agency")}


class DeskUnavailable(RuntimeError):
    """The endpoint cannot start (token file unreadable or too short, address in use)."""


def read_token(path: str) -> str:
    try:
        token = open(path, encoding="utf-8").read().strip()  # noqa: SIM115 - read at once
    except (OSError, UnicodeDecodeError) as error:
        raise DeskUnavailable(f"cannot read desk.token_file {path}: {error}") from None
    if len(token) < TOKEN_MIN_CHARS:
        raise DeskUnavailable(
            f"desk.token_file {path}: the token needs at least {TOKEN_MIN_CHARS} characters"
        )
    return token


class DeskServer:
    """The HTTP endpoint around an ``Annotations``; ``start()`` binds, ``stop()`` closes."""

    def __init__(
        self, annotations: Annotations, *, host: str, port: int, token: str, gateway_id: str
    ) -> None:
        self.annotations = annotations
        self.token = token.encode()
        self.gateway_id = gateway_id
        handler = type("BoundDeskHandler", (_DeskHandler,), {"desk": self})
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as error:
            raise DeskUnavailable(
                f"cannot listen on {host}:{port}: {error.strerror or error}"
            ) from None
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="desk-http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> DeskServer:
        self._thread.start()
        log.info("desk endpoint on http://%s:%d/v1/", *self.address)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()

    def authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), self.token)


class _DeskHandler(BaseHTTPRequestHandler):
    desk: DeskServer
    server_version = "edge112-desk"
    timeout = REQUEST_TIMEOUT_S
    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024  # headers and body leave in one write (flushed after each request)
    disable_nagle_algorithm = True  # else Nagle and delayed ACK add 40 ms per keep-alive answer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="edge112-desk"')
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._answer(status, {"error": message, "status": status})

    def _path(self) -> list[str]:
        return [unquote(part) for part in urlsplit(self.path).path.strip("/").split("/")]

    def _checked(self) -> bool:
        if not self.desk.authorised(self.headers.get("Authorization")):
            self._error(401, "missing or wrong bearer token (Authorization: Bearer <desk token>)")
            return False
        return True

    def do_GET(self) -> None:
        if not self._checked():
            return
        parts = self._path()
        annotations = self.desk.annotations
        if parts == ["v1", "health"]:
            self._answer(200, {"ok": True, "gateway_id": self.desk.gateway_id})
        elif parts == ["v1", "vocabulary"]:
            self._answer(
                200, {"categories": list(CATEGORIES), "agencies": list(annotations.agencies)}
            )
        elif len(parts) == 3 and parts[:2] == ["v1", "calls"]:
            try:
                self._answer(200, annotations.describe(parts[2]))
            except AnnotationError as error:
                self._error(error.status, error.message)
        else:
            self._error(404, f"no such path {urlsplit(self.path).path!r}")

    def do_POST(self) -> None:
        length_text = self.headers.get("Content-Length")
        try:
            length = int(length_text or "0")
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True  # the body is not read: the connection cannot go on
            self._error(413, f"body of {length_text} bytes: at most {MAX_BODY_BYTES}")
            return
        raw = self.rfile.read(length)
        if not self._checked():
            return
        parts = self._path()
        if len(parts) != 4 or parts[:2] != ["v1", "calls"] or parts[3] not in _KINDS:
            self._error(404, f"no such path {urlsplit(self.path).path!r}")
            return
        kind, key = _KINDS[parts[3]]
        try:
            body = json.loads(raw or b"{}")
        except (UnicodeDecodeError, ValueError) as error:
            self._error(400, f"body is not JSON: {error}")
            return
        if not isinstance(body, dict):
            self._error(400, "body must be a JSON object")
            return
        unknown = set(body) - {key, "at", "reference", "annotation_id"}
        if unknown:
            self._error(422, f"unknown field(s) {', '.join(sorted(unknown))}")
            return
        if key not in body:
            self._error(422, f"{key}: missing")
            return
        try:
            result = self.desk.annotations.annotate(
                kind,
                parts[2],
                body[key],
                reference=body.get("reference"),
                at=body.get("at"),
                annotation_id=body.get("annotation_id"),
            )
        except AnnotationError as error:
            self._error(error.status, error.message)
            return
        self._answer(201 if result.created else 200, result.as_dict())
