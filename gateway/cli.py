"""The ``edge112`` command line.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gateway import __version__
from gateway.config import Config, ConfigError, load_config
from gateway.logs import setup_logging

if TYPE_CHECKING:
    from gateway.outbox_reader import OutboxReader

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _config_or_exit(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as error:
        print(f"edge112: {error}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.daemon import run, stop_on_signals

    stopping = stop_on_signals()  # before anything slow: an early SIGTERM stops cleanly
    config = _config_or_exit(args.config)
    setup_logging(args.log_level or config.gateway.log_level)
    _log_environment_problems(config)
    return run(config, stopping=stopping)


def _log_environment_problems(config: Config) -> None:
    """What ``config check`` would say, in the journal at start (the gateway starts anyway:
    it queues calls even with a broker it cannot reach or a disk that refuses writes)."""
    import logging

    from gateway.config_check import Severity, check_environment

    log = logging.getLogger("edge112.config")
    for problem in check_environment(config):
        level = logging.ERROR if problem.severity is Severity.ERROR else logging.WARNING
        log.log(level, "%s", problem)


def cmd_config_check(args: argparse.Namespace) -> int:
    from gateway.config_check import check_environment, errors

    config = _config_or_exit(args.file)
    problems = [] if args.file_only else check_environment(config, args.file)
    for problem in problems:
        print(f"edge112: {problem}", file=sys.stderr)
    if errors(problems):
        return EXIT_USAGE
    if args.file_only:
        scope = "; this machine not checked"
    else:
        scope = f"; {len(problems)} warning(s)" if problems else ""
    print(
        f"{args.file}: ok (gateway {config.gateway.id}, region {config.gateway.region}, "
        f"{len(config.modems)} modem(s), broker {config.mqtt.url}){scope}"
    )
    return EXIT_OK


def cmd_config_example(_args: argparse.Namespace) -> int:
    from gateway.config import EXAMPLE_CONFIG

    sys.stdout.write(EXAMPLE_CONFIG.read_text())
    return EXIT_OK


def _queue_reader(args: argparse.Namespace) -> tuple[OutboxReader, int]:
    from gateway.outbox_reader import OutboxReader

    config = _config_or_exit(args.config)
    path = Path(config.outbox.path)
    if not path.exists():
        print(f"edge112: no outbox at {path} (has the gateway run yet?)", file=sys.stderr)
        raise SystemExit(EXIT_FAILURE)
    return OutboxReader(path), config.outbox.max_bytes


def cmd_queue_stats(args: argparse.Namespace) -> int:
    reader, max_bytes = _queue_reader(args)
    stats = reader.stats(max_bytes=max_bytes).as_dict()
    reader.close()
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        for key, value in stats.items():
            print(f"{key:20} {value}")
    return EXIT_OK


def cmd_queue_peek(args: argparse.Namespace) -> int:
    reader, _ = _queue_reader(args)
    rows = reader.peek(args.limit)
    reader.close()
    for row in rows:
        if args.json:
            print(row.payload.decode())
        else:
            print(f"seq={row.seq:<8} priority={row.priority} {row.type:16} {row.topic}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    setup_logging(args.log_level or "warning")
    return run_demo(broker_url=args.broker, duration_s=args.duration, calls_per_minute=args.rate)


def cmd_sim_gsm(args: argparse.Namespace) -> int:
    import drivers.simulated.cli as sim_cli

    setup_logging(args.log_level or "info")
    return sim_cli.run(args)


def cmd_sim_e1(args: argparse.Namespace) -> int:
    import drivers.simulated.e1_cli as sim_e1_cli

    setup_logging(args.log_level or "info")
    return sim_e1_cli.run(args)


def cmd_sim_replay(args: argparse.Namespace) -> int:
    import drivers.simulated.replay_cli as replay_cli

    setup_logging(args.log_level or "info")
    return replay_cli.run_replay(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge112", description="Edge gateway for 112 emergency call centers."
    )
    parser.add_argument("--version", action="version", version=f"edge112 {__version__}")
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="override log level"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run_parser = commands.add_parser("run", help="run the gateway daemon")
    run_parser.add_argument("--config", required=True, help="TOML configuration file")
    run_parser.set_defaults(func=cmd_run)

    demo = commands.add_parser(
        "demo", help="everything on simulated hardware: modems, gateway, broker, subscriber"
    )
    demo.add_argument(
        "--broker", help="use this broker (mqtt://host:port) instead of a private one"
    )
    demo.add_argument("--duration", type=float, default=30.0, help="seconds of calls (default 30)")
    demo.add_argument("--rate", type=float, default=20.0, help="calls per minute per modem")
    demo.set_defaults(func=cmd_demo)

    sim = commands.add_parser("sim", help="simulated hardware").add_subparsers(
        dest="device", required=True, metavar="DEVICE"
    )
    sim_gsm = sim.add_parser("gsm", help="a virtual GSM modem on a pseudo-terminal")
    import drivers.simulated.cli as sim_cli

    sim_cli.add_arguments(sim_gsm)
    sim_gsm.set_defaults(func=cmd_sim_gsm)
    sim_e1 = sim.add_parser("e1", help="a virtual E1 PRI span: both directions, files or sockets")
    import drivers.simulated.e1_cli as sim_e1_cli  # light: the simulator loads when it runs

    sim_e1_cli.add_arguments(sim_e1)
    sim_e1.set_defaults(func=cmd_sim_e1)
    sim_replay = sim.add_parser("replay", help="a recorded modem transcript on a pseudo-terminal")
    import drivers.simulated.replay_cli as replay_cli

    replay_cli.add_replay_arguments(sim_replay)
    sim_replay.set_defaults(func=cmd_sim_replay)
    import gateway.board_cli as board_cli
    import gateway.doctor as doctor_cli

    board_cli.register_sim(sim)
    board_cli.register(commands)
    import gateway.annotate_cli as annotate_cli

    annotate_cli.register(commands)
    doctor_cli.register(commands)

    from gateway.audio import cli as audio_cli

    audio_cli.register(commands)

    from drivers.gsm import cli as gsm_cli  # light: the serial stack loads when a command runs

    gsm_cli.register(commands)

    from drivers.e1 import cli as e1_cli  # light: the decoders load when a command runs

    e1_cli.register(commands)

    from center import cli as center_cli  # light: the center's parts load in center_cli.run

    center = commands.add_parser(
        "center", help="the regional center: ingest every gateway's feed, statistics, dashboard"
    )
    center_cli.add_arguments(center)
    center.set_defaults(func=center_cli.run)

    queue = commands.add_parser("queue", help="inspect the outbox").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    stats = queue.add_parser("stats", help="pending events, bytes, next seq")
    stats.add_argument("--config", required=True)
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=cmd_queue_stats)
    peek = queue.add_parser("peek", help="the next events to leave, in order")
    peek.add_argument("--config", required=True)
    peek.add_argument("--limit", type=int, default=10)
    peek.add_argument("--json", action="store_true", help="print the exact payloads")
    peek.set_defaults(func=cmd_queue_peek)

    config = commands.add_parser("config", help="configuration files").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    check = config.add_parser(
        "check",
        help="validate a configuration file and whether this machine can run it (exit 2 if not)",
    )
    check.add_argument("file")
    check.add_argument(
        "--file-only",
        action="store_true",
        help="check the file alone, not this machine's files, directories and serial ports "
        "(for a configuration prepared on another machine)",
    )
    check.set_defaults(func=cmd_config_check)
    example = config.add_parser("example", help="print the annotated example configuration")
    example.set_defaults(func=cmd_config_example)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
