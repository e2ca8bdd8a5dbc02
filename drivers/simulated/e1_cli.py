"""``edge112 sim e1``: a simulated E1 PRI span, both directions, to files or sockets.

::

    edge112 sim e1 --from-network tcp://127.0.0.1:7001 --from-user tcp://127.0.0.1:7002 \\
                   --scenario examples/span_scenario.toml
    edge112 sim e1 --from-network /tmp/n2u.e1 --from-user /tmp/u2n.e1 --calls 20 --seed 1
    edge112 sim e1 --from-network unix:///run/e1/n2u --from-user unix:///run/e1/u2n \\
                   --format timeslot --calls 5 --rate 30 --exit-when-done

``--from-network`` is the stream the network (PSTN) side sends, the centre
receives; ``--from-user`` the other one: the same two URLs a ``[[spans]]``
entry reads as ``network_to_user`` and ``user_to_network``. Sockets listen
and wait for the gateway (or ``edge112 e1 monitor``) to connect to both
before the line starts; files are written at once.

Pacing: ``--speed`` times real time (default 1 for sockets and FIFOs: 8000
frames a second; default 0 for files: as fast as possible). Each call prints
one JSON line on stdout when it is released (``SpanCallRecord.summary()``:
caller, channel, scripted outcome, and the events, cause and Q.850 cause a
gateway must report), so a test or a bench can check the gateway against
it; status goes to stderr. Files end after the last call; sockets keep an
idle line (flags, RR polls every T203) until SIGINT/SIGTERM unless
``--exit-when-done``. A bad scenario exits with status 2 and says why.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the simulator itself is imported when it runs: the parser stays light
    from drivers.simulated.e1_script import SpanCallRecord, SpanScenario

PROG = "edge112 sim e1"
DEFAULT_RATE_PER_MINUTE = 6.0
DEFAULT_RING_INTERVAL_S = 1.0
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
FORMATS = ("e1", "timeslot", "lapd")  # drivers.simulated.e1_outputs.OutputFormat


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from-network",
        required=True,
        metavar="URL",
        help="where the network -> user stream goes (tcp://HOST:PORT, unix:///PATH, a file)",
    )
    parser.add_argument(
        "--from-user", required=True, metavar="URL", help="where the user -> network stream goes"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="e1",
        help="e1: framed E1 (default); timeslot: TS16 only; lapd: length-prefixed frames",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--scenario", metavar="FILE", help="TOML span scenario to play")
    source.add_argument("--calls", type=int, metavar="N", help="play N random 112 calls")
    parser.add_argument(
        "--rate",
        type=float,
        metavar="R",
        help=f"calls per minute with --calls (default {DEFAULT_RATE_PER_MINUTE:g})",
    )
    parser.add_argument(
        "--ring-interval",
        type=float,
        metavar="S",
        help=f"seconds per ring with --calls (default {DEFAULT_RING_INTERVAL_S:g})",
    )
    parser.add_argument("--seed", type=int, help="seed for random calls and faults")
    parser.add_argument(
        "--speed",
        type=float,
        metavar="X",
        help="times real time (0: as fast as possible; default 1 for sockets, 0 for files)",
    )
    parser.add_argument("--no-crc4", action="store_true", help="no CRC-4 multiframe in TS0")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S s of line")
    parser.add_argument(
        "--exit-when-done", action="store_true", help="sockets: exit after the last call"
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="sockets: start the line without waiting for taps"
    )


def run(args: argparse.Namespace) -> int:
    from drivers.e1.lapd import Direction
    from drivers.simulated.cli import stopped_by_signals
    from drivers.simulated.e1_outputs import (
        FileOutput,
        OutputFormat,
        SpanOutput,
        open_output,
        run_span,
    )
    from drivers.simulated.e1_script import N2U, U2N
    from drivers.simulated.e1_span import SimulatedSpan
    from drivers.simulated.scenario import ScenarioError

    try:
        scenario = _scenario(args)
    except ScenarioError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.speed is not None and args.speed < 0:
        print(f"{PROG}: --speed must be >= 0", file=sys.stderr)
        return EXIT_USAGE
    outputs: dict[Direction, SpanOutput] = {}
    try:
        for direction, url in ((N2U, args.from_network), (U2N, args.from_user)):
            outputs[direction] = open_output(url)
    except (OSError, ValueError) as exc:
        print(f"{PROG}: cannot open {url}: {exc}", file=sys.stderr)
        for output in outputs.values():
            output.close()
        return EXIT_FAILED
    files = all(isinstance(output, FileOutput) for output in outputs.values())
    speed = args.speed if args.speed is not None else (0.0 if files else 1.0)
    stop = threading.Event()
    span = SimulatedSpan(scenario)
    try:
        with stopped_by_signals(stop):
            print(
                f"{PROG}: {len(scenario.calls)} call(s), {len(scenario.faults)} fault(s), "
                f"{args.format}, CRC-4 {'on' if scenario.crc4 else 'off'}, speed {speed:g}: "
                f"{args.from_network} (network -> user), {args.from_user} (user -> network)",
                file=sys.stderr,
            )
            report = run_span(
                span,
                outputs,
                stream_format=OutputFormat(args.format),
                speed=speed,
                stop=stop,
                until_done=files or args.exit_when_done,
                duration_s=args.duration,
                wait_for_clients=not args.no_wait,
                on_call_done=_print_call,
            )
    finally:
        for output in outputs.values():
            output.close()
    print(
        f"{PROG}: {report.line_s:.2f} s of line written, {len(span.records)} call(s) offered"
        + (" (stopped)" if report.stopped else ""),
        file=sys.stderr,
    )
    return EXIT_OK


def _scenario(args: argparse.Namespace) -> SpanScenario:
    from drivers.simulated.e1_scenario import load_span_scenario, random_span_calls
    from drivers.simulated.e1_script import SpanScenario
    from drivers.simulated.scenario import ScenarioError

    if args.rate is not None and args.calls is None:
        raise ScenarioError("--rate only goes with --calls")
    if args.ring_interval is not None and args.calls is None:
        raise ScenarioError("--ring-interval only goes with --calls")
    if args.scenario is not None:
        scenario = load_span_scenario(args.scenario)
    elif args.calls is not None:
        try:
            calls = random_span_calls(
                args.calls,
                args.rate if args.rate is not None else DEFAULT_RATE_PER_MINUTE,
                args.seed,
                ring_interval_s=args.ring_interval or DEFAULT_RING_INTERVAL_S,
            )
        except ValueError as exc:
            raise ScenarioError(f"--calls/--rate/--ring-interval: {exc}") from exc
        scenario = SpanScenario(calls=calls)
    else:
        scenario = SpanScenario()
    crc4 = scenario.crc4 and not args.no_crc4
    seed = args.seed if args.seed is not None else scenario.seed
    return SpanScenario(scenario.calls, scenario.faults, crc4=crc4, seed=seed)


def _print_call(record: SpanCallRecord) -> None:
    print(json.dumps(record.summary()), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Run a simulated E1 PRI span.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
