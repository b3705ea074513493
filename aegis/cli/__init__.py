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

# Services log their lifecycle at INFO; one-shot commands only warnings, so
# their output stays clean for scripts.
LONG_RUNNING_COMMANDS = frozenset({"worker", "serve", "dev-db"})
LOG_LEVEL_HELP = (
    "DEBUG, INFO, WARNING or ERROR (default INFO for worker, serve and dev-db, "
    "WARNING for the other commands)"
)

# Exit status: 1 for an operation that failed, 2 for invalid input.
EXIT_FAILED = 1
EXIT_INVALID = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aegis", description="AegisQueue: a job queue on MongoDB"
    )
    parser.add_argument("--log-level", help=LOG_LEVEL_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run.register(commands)
    jobs.register(commands)
    status.register(commands)
    # Accept the flag after the command name too; SUPPRESS keeps a value
    # given before the command from being reset by the subcommand's default.
    for subparser in commands.choices.values():
        subparser.add_argument(
            "--log-level", default=argparse.SUPPRESS, help=LOG_LEVEL_HELP
        )
    return parser


def log_level(args: argparse.Namespace) -> str:
    """The level from the flag, else INFO for long-running commands, else WARNING."""
    if args.log_level:
        return str(args.log_level)
    return "INFO" if args.command in LONG_RUNNING_COMMANDS else "WARNING"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.log_level = log_level(args)
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
