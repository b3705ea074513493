"""The `aegis` command line: `aegis worker`, `aegis serve`, `aegis jobs`, ..."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError
from pymongo.errors import ConnectionFailure

from aegis.cli import jobs, run, status
from aegis.cli.common import (
    DEFAULT_URI,
    QUEUE_FLAGS,
    add_queue_flags,
    add_store_flags,
    open_store,
    queue_settings,
)
from aegis.errors import AegisError, ConfigError, InvalidJob
from aegis.logs import configure_logging

__all__ = [
    "DEFAULT_URI",
    "QUEUE_FLAGS",
    "add_queue_flags",
    "add_store_flags",
    "build_parser",
    "main",
    "open_store",
    "queue_settings",
]

Command = Callable[[argparse.Namespace], int]

# Exit status: 1 for an operation that failed, 2 for invalid input.
EXIT_FAILED = 1
EXIT_INVALID = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aegis", description="AegisQueue: a job queue on MongoDB"
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        help="DEBUG, INFO, WARNING or ERROR (default INFO)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run.register(commands)
    jobs.register(commands)
    status.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        configure_logging(args.log_level)
    except ValueError as exc:
        parser.error(str(exc))
    handler: Command = args.handler
    try:
        return handler(args)
    except ValidationError as exc:
        print(f"aegis: invalid setting: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except (ConfigError, InvalidJob) as exc:
        print(f"aegis: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except AegisError as exc:
        print(f"aegis: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ConnectionFailure as exc:
        print(f"aegis: database unavailable: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
