"""``edge112 center``: run a center worker, check or print its configuration.

Imported when ``edge112`` builds its parser, so nothing heavy is imported
here: the database, MQTT and web parts load in ``run``.
"""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="the center's TOML configuration file")
    parser.add_argument(
        "--check", action="store_true", help="validate the configuration file and exit"
    )
    parser.add_argument(
        "--example", action="store_true", help="print the annotated example configuration"
    )


def run(args: argparse.Namespace) -> int:
    from center.config import EXAMPLE_CONFIG, load_center_config
    from gateway.config import ConfigError
    from gateway.logs import setup_logging

    if args.example:
        sys.stdout.write(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
        return EXIT_OK
    if not args.config:
        print("edge112 center: --config FILE is required", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = load_center_config(args.config)
    except ConfigError as error:
        print(f"edge112 center: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.check:
        print(
            f"{args.config}: ok (center {config.center.id}, database "
            f"{config.database.url.split('://', 1)[0]}, broker {config.mqtt.url}, "
            f"share group {config.mqtt.share_group})"
        )
        return EXIT_OK
    setup_logging(getattr(args, "log_level", None) or config.center.log_level)
    from sqlalchemy.exc import OperationalError

    from center.service import run as run_service
    from center.storage.database import DatabaseUrlError, SchemaTooNew

    try:
        return run_service(config)
    except (SchemaTooNew, DatabaseUrlError) as error:
        print(f"edge112 center: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OperationalError as error:  # the database is unreachable at start
        print(f"edge112 center: database {config.database.url}: {error.orig}", file=sys.stderr)
        return EXIT_FAILURE
