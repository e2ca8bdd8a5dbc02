"""The desk's parts, wired for the daemon: call registry, annotations, commands, endpoint.

``Gateway`` builds one ``Desk``::

    outbox commits ──▶ CallRegistry (calls.db)        [desk] registry_path, retention_days
    forwarder ──command/#──▶ Annotations worker        [desk] commands (default on)
    DeskServer (HTTP) ──▶ Annotations                  [desk] listen + token_file (default off)
                    Annotations ──submit──▶ outbox (call.classified / call.escalated)

Nothing here stops the gateway: a registry file that cannot be opened, a
token file that cannot be read or an address in use each give a
``gateway.alarm`` ``desk_unavailable`` naming the problem, and calls are
still reported.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from gateway.annotations import Annotations
from gateway.call_registry import CallRegistry
from gateway.config import Config
from gateway.desk_http import DeskServer, DeskUnavailable, read_token
from gateway.events import AlarmSeverity, Event, GatewayAlarm
from gateway.forwarder import Forwarder
from gateway.outbox import Outbox, Submission

log = logging.getLogger("edge112.desk")

DAY_S = 86_400.0


class Desk:
    def __init__(
        self,
        config: Config,
        outbox: Outbox,
        forwarder: Forwarder,
        submit: Callable[[Event], Submission],
    ) -> None:
        self.settings = config.desk
        self.gateway_id = config.gateway.id
        self.submit = submit
        self.registry: CallRegistry | None = None
        self.annotations: Annotations | None = None
        self.server: DeskServer | None = None
        self._problem: str | None = None
        path = self.settings.registry_file(config.outbox.path)
        try:
            self.registry = CallRegistry(path, retention_s=self.settings.retention_days * DAY_S)
        except (sqlite3.Error, OSError) as error:
            self._problem = f"cannot open the call registry {path}: {error}"
            return
        outbox.add_commit_listener(self.registry.on_commit)
        self.annotations = Annotations(
            self.registry, submit, agencies=self.settings.agencies, outbox_path=config.outbox.path
        )
        if self.settings.commands:
            forwarder.take_commands(self.annotations.on_command)

    def start(self) -> None:
        if self.registry is not None and self.annotations is not None:
            self.registry.start()
            self.annotations.start()
            if self.settings.listen:
                try:
                    token = read_token(str(self.settings.token_file))
                    self.server = DeskServer(
                        self.annotations,
                        host=self.settings.host,
                        port=self.settings.port,
                        token=token,
                        gateway_id=self.gateway_id,
                    ).start()
                except DeskUnavailable as error:
                    self._problem = f"desk endpoint off: {error}"
        if self._problem:
            log.error("%s", self._problem)
            self.submit(
                GatewayAlarm(
                    code="desk_unavailable",
                    severity=AlarmSeverity.WARNING,
                    message=self._problem,
                    detail={"listen": self.settings.listen},
                )
            )

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.annotations is not None:
            self.annotations.stop()
        if self.registry is not None:
            self.registry.stop()
