"""``edge112 annotate``: classify or escalate a reported call through the running gateway.

    edge112 annotate CALL_ID --category darurat [--reference TEXT] [--at TIME]
    edge112 annotate CALL_ID --escalate damkar [--reference LP-0042] [--at TIME]
    edge112 annotate CALL_ID --show

It talks to the daemon's desk endpoint (``gateway.desk_http``) at ``[desk]
listen`` with the token from ``[desk] token_file``, so the event goes
through the same outbox as everything else. Exit codes: 0 committed (or
already committed), 1 the gateway does not answer or could not commit, 2 a
refused request (unknown call, category or agency) or bad configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from gateway.config import ConfigError, load_config
from gateway.desk_http import DeskUnavailable, read_token

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
TIMEOUT_S = 15.0


def register(commands: Any) -> None:
    annotate = commands.add_parser(
        "annotate", help="classify or escalate a call this gateway reported (the desk)"
    )
    annotate.add_argument("call_id", metavar="CALL_ID")
    action = annotate.add_mutually_exclusive_group(required=True)
    action.add_argument("--category", help="darurat | informasi | prank | ghost | terputus")
    action.add_argument(
        "--escalate", metavar="AGENCY", help="an agency code: damkar, bpbd, dinkes, polri, ..."
    )
    action.add_argument("--show", action="store_true", help="print the call and its annotations")
    annotate.add_argument("--reference", help="free text: the agency's ticket, a note")
    annotate.add_argument(
        "--at", help="when it was decided (default now), e.g. 2026-11-28T11:40+07:00"
    )
    annotate.add_argument("--annotation-id", help="an id of your own: a retry is stored once")
    annotate.add_argument("--config", default="/etc/edge112/edge112.toml")
    annotate.add_argument("--json", action="store_true", help="print the endpoint's JSON answer")
    annotate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"edge112: {error}", file=sys.stderr)
        return EXIT_USAGE
    desk = config.desk
    if not desk.listen:
        print(
            f"edge112: {config.source}: the desk endpoint is off: set [desk] listen and token_file",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        token = read_token(str(desk.token_file))
    except DeskUnavailable as error:
        print(f"edge112: {error}", file=sys.stderr)
        return EXIT_USAGE
    host = "127.0.0.1" if desk.host in ("0.0.0.0", "") else desk.host
    host = f"[{host}]" if ":" in host else host
    base = f"http://{host}:{desk.port}/v1/calls/{quote(args.call_id, safe='')}"
    body: dict[str, Any] | None = None
    if args.category is not None:
        url, body = f"{base}/classification", {"category": args.category}
    elif args.escalate is not None:
        url, body = f"{base}/escalations", {"agency": args.escalate}
    else:
        url = base
    if body is not None:
        for key, value in (("reference", args.reference), ("at", args.at)):
            if value is not None:
                body[key] = value
        if args.annotation_id:
            body["annotation_id"] = args.annotation_id
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read()).get("error", error.reason)
        except ValueError:
            message = error.reason
        print(f"edge112: refused ({error.code}): {message}", file=sys.stderr)
        return EXIT_USAGE if error.code in (400, 404, 409, 413, 422) else EXIT_FAILURE
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        print(
            f"edge112: the gateway's desk endpoint at {desk.listen} does not answer ({reason}): "
            "is `edge112 run` running with this configuration?",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    if args.json or body is None:
        print(json.dumps(answer, indent=2))
    else:
        print(
            f"{answer['type']} committed: seq {answer['seq']}, event_id {answer['event_id']}, "
            f"annotation_id {answer['annotation_id']}"
        )
    return EXIT_OK
