"""``edge112 sim gsm``: a simulated GSM modem on a pseudo-terminal, from the shell.

::

    edge112 sim gsm --link /tmp/edge112/gsm0 --scenario examples/scenario.toml
    edge112 sim gsm --link /tmp/edge112/gsm0 --calls 50 --rate 6 --seed 1 --ring-interval 1
    edge112 sim gsm --link /tmp/edge112/gsm0          # idle modem, for a terminal program
    edge112 sim gsm --link /tmp/edge112/gsm0 --audio-link /tmp/edge112/gsm0-audio --calls 5
    edge112 sim gsm --link /tmp/edge112/gsm0 --scenario faults.toml --sim-capacity 5
    edge112 sim gsm --link /tmp/edge112/gsm0 --board-state /tmp/edge112/board.json --line gsm0

With ``--board-state`` the modem follows the power pins of ``--line`` on a
simulated board run by another process (``[board] backend = "simulated"``,
``state_file``): the gateway's recovery ladder can power-cycle it
(``drivers.simulated.gsm_power.BoardStateWatcher``).

A scenario's ``[[faults]]`` reset the modem, hang it, re-enumerate its port,
change its registration and deliver SMS (``drivers.simulated.scenario_faults``).

Point the gateway (or ``python -m serial.tools.miniterm``) at the link. Each
call prints one JSON line on stdout when it ends (``PlacedCall.summary()``:
number, presentation, first RING wall-clock and monotonic times, rings,
outcome, and with ``--audio-link`` the audio frames sent and what the caller
heard and pressed), so a benchmark can match them with the events the gateway
published; status messages go to stderr. After the scenario the modem stays
up until SIGINT/SIGTERM, or exits with ``--exit-when-done``. A bad scenario
file exits with status 2 and says what is wrong.

``add_arguments``/``run`` plug into the gateway's ``edge112`` command;
``python -m drivers.simulated.cli`` runs it alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from drivers.simulated.gsm_modem import (
    DEFAULT_RSSI,
    MODELS,
    RING_INTERVAL_S,
    Chunking,
    PlacedCall,
    SimulatedGsmModem,
)
from drivers.simulated.scenario import Scenario, ScenarioError, load_scenario, play, random_calls

PROG = "edge112 sim gsm"
DEFAULT_MODEL = "quectel_ec25"
DEFAULT_RATE_PER_MINUTE = 6.0
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--link",
        required=True,
        type=Path,
        help="path to link to the PTY (a stale link is replaced)",
    )
    parser.add_argument(
        "--audio-link",
        type=Path,
        metavar="PATH",
        help="path to link to a second PTY carrying call audio (8 kHz PCM16)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--scenario", type=Path, metavar="FILE", help="TOML scenario to play")
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
        help=f"seconds between rings with --calls (default {RING_INTERVAL_S:g})",
    )
    parser.add_argument("--model", choices=sorted(MODELS), help=f"default {DEFAULT_MODEL}")
    parser.add_argument(
        "--chunking", choices=[chunking.value for chunking in Chunking], help="default line"
    )
    parser.add_argument("--seed", type=int, help="seed for random calls, chunking and IMEI")
    parser.add_argument(
        "--rssi", type=int, default=DEFAULT_RSSI, help="AT+CSQ signal, 0-31 (default %(default)s)"
    )
    parser.add_argument(
        "--sim-capacity",
        type=int,
        metavar="N",
        help="messages the SIM holds before it refuses more (default 20)",
    )
    parser.add_argument(
        "--exit-when-done", action="store_true", help="exit when the last call is over"
    )
    parser.add_argument(
        "--board-state",
        type=Path,
        metavar="FILE",
        help="follow this simulated board's power pins (its [board] state_file)",
    )
    parser.add_argument(
        "--line", metavar="NAME", help="the line whose pins to follow (default: the link's name)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        scenario = _scenario(args)
    except ScenarioError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    with stopped_by_signals(stop):
        try:
            modem = SimulatedGsmModem(
                args.link,
                model=args.model or scenario.model or DEFAULT_MODEL,
                chunking=args.chunking or scenario.chunking or Chunking.LINE.value,
                seed=args.seed if args.seed is not None else scenario.seed,
                rssi=args.rssi,
                audio_link=args.audio_link,
                sim_capacity=args.sim_capacity,
            )
        except (OSError, ValueError) as exc:
            print(f"{PROG}: cannot create the modem at {args.link}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        with modem:
            print(f"{PROG}: {modem.model.key} on {modem.link} -> {modem.device}", file=sys.stderr)
            if modem.audio_link is not None:
                print(
                    f"{PROG}: audio on {modem.audio_link} -> {modem.audio_device}", file=sys.stderr
                )
            with _following_board(modem, args):
                play(modem, scenario, stop=stop, on_call_done=_print_call)
                if not args.exit_when_done:
                    stop.wait()
    return EXIT_OK


def _scenario(args: argparse.Namespace) -> Scenario:
    if args.rate is not None and args.calls is None:
        raise ScenarioError("--rate only goes with --calls")
    if args.ring_interval is not None and args.calls is None:
        raise ScenarioError("--ring-interval only goes with --calls")
    if args.scenario is not None:
        return load_scenario(args.scenario)
    if args.calls is None:
        return Scenario()
    try:
        calls = random_calls(
            args.calls,
            args.rate if args.rate is not None else DEFAULT_RATE_PER_MINUTE,
            args.seed,
            ring_interval_s=args.ring_interval or RING_INTERVAL_S,
        )
    except ValueError as exc:
        raise ScenarioError(f"--calls/--rate/--ring-interval: {exc}") from exc
    return Scenario(calls=calls)


@contextlib.contextmanager
def _following_board(modem: SimulatedGsmModem, args: argparse.Namespace) -> Iterator[None]:
    if args.board_state is None:
        yield
        return
    from drivers.simulated.gsm_power import BoardPinFollower, BoardStateWatcher

    line = args.line or Path(args.link).name
    watcher = BoardStateWatcher(args.board_state, [BoardPinFollower(modem, line)]).start()
    print(f"{PROG}: following the power pins of {line} in {args.board_state}", file=sys.stderr)
    try:
        yield
    finally:
        watcher.stop()


def _print_call(call: PlacedCall) -> None:
    print(json.dumps(call.summary()), flush=True)


@contextlib.contextmanager
def stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (only the main thread can install handlers)."""

    def handle(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {}
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Run a simulated GSM modem.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
