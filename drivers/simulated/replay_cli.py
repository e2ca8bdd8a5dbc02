"""``edge112 sim replay``: a recorded modem (``drivers.simulated.replay``) on a pseudo-terminal.

::

    edge112 sim replay --transcript tests/transcripts/quectel_ec25_calls.jsonl \\
        --link /tmp/edge112/gsm0 --speed 4

Point the gateway at the link. The recording's unsolicited output (RING,
+CLIP, NO CARRIER, ...) starts when the gateway's first command arrives and
runs ``--speed`` times faster than recorded. When it is over, a JSON line
``{"done": true, "unanswered": [...]}`` goes to stdout (the commands the
recording had no answer for) and the modem exits; with ``--stay`` it keeps
answering until SIGINT/SIGTERM. A bad transcript exits with status 2 and says
which file and line are wrong.

``add_replay_arguments``/``run_replay`` plug into the gateway's ``edge112`` command.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from drivers.simulated.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, stopped_by_signals
from drivers.simulated.replay import ReplayedModem
from drivers.transcript import TranscriptError, read_transcript

PROG = "edge112 sim replay"
WAIT_SLICE_S = 0.1


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--transcript", required=True, type=Path, metavar="FILE", help="recorded .jsonl to replay"
    )
    parser.add_argument(
        "--link",
        required=True,
        type=Path,
        help="path to link to the PTY (a stale link is replaced)",
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, metavar="X", help="timeline speed-up (default 1)"
    )
    parser.add_argument(
        "--stay", action="store_true", help="keep answering after the timeline is over"
    )


def run_replay(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        print(f"{PROG}: --speed must be > 0", file=sys.stderr)
        return EXIT_USAGE
    try:
        transcript = read_transcript(args.transcript)
    except TranscriptError as exc:
        print(f"{PROG}: bad transcript: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    with stopped_by_signals(stop):
        try:
            modem = ReplayedModem(transcript, args.link, speed=args.speed)
        except OSError as exc:
            print(f"{PROG}: cannot create the modem at {args.link}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        with modem:
            print(f"{PROG}: {args.transcript} on {modem.link} -> {modem.device}", file=sys.stderr)
            while not stop.is_set() and not modem.done.wait(WAIT_SLICE_S):
                pass
            if modem.done.is_set():
                print(json.dumps({"done": True, "unanswered": modem.unanswered}), flush=True)
            if args.stay:
                stop.wait()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Replay a recorded modem session.")
    add_replay_arguments(parser)
    return run_replay(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
