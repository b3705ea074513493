"""Options and helpers shared by the commands: store and queue flags, output."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from aegis.queue import Queue
from aegis.settings import DEFAULT_MONGODB_URI, QueueSettings, StoreSettings
from aegis.store import Store, connect, redact_uri

log = logging.getLogger("aegis.cli")

DEFAULT_URI = DEFAULT_MONGODB_URI

# Flags that override QueueSettings fields, with their help text.
QUEUE_FLAGS = {
    "lease_ttl_s": "lease length in seconds",
    "heartbeat_interval_s": "seconds between lease renewals",
    "recovery_interval_s": "seconds between recovery sweeps",
    "backoff_base_s": "retry delay in seconds after the first failure",
    "backoff_max_s": "maximum retry delay in seconds",
    "poll_interval_s": "maximum seconds between claims when the queue is empty",
    "grace_period_s": "seconds a stopping worker lets running jobs finish",
}


def add_store_flags(
    parser: argparse.ArgumentParser, *, keep_parent_values: bool = False
) -> None:
    """Add `--mongodb-uri` and `--db`.

    With `keep_parent_values`, an absent flag leaves the value that a parent
    command's flag set, which argparse would otherwise reset to None.
    """
    default = argparse.SUPPRESS if keep_parent_values else None
    parser.add_argument(
        "--mongodb-uri",
        default=default,
        help="MongoDB connection string (default: $MONGODB_URI, else localhost)",
    )
    parser.add_argument(
        "--db",
        dest="db_name",
        default=default,
        help="database name (default: $AEGIS_DB or aegis)",
    )


def add_queue_flags(parser: argparse.ArgumentParser) -> None:
    for name, help_text in QUEUE_FLAGS.items():
        flag = "--" + name.removesuffix("_s").replace("_", "-")
        parser.add_argument(
            flag, dest=name, type=float, help=f"{help_text} (env AEGIS_{name.upper()})"
        )


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print JSON with the REST API's field names instead of a table",
    )


def queue_settings(args: argparse.Namespace) -> QueueSettings:
    overrides = {
        name: getattr(args, name)
        for name in QUEUE_FLAGS
        if getattr(args, name, None) is not None
    }
    return QueueSettings(**overrides)


def store_settings(args: argparse.Namespace) -> StoreSettings:
    """Return the environment's store settings with the flags applied."""
    settings = StoreSettings()
    overrides: dict[str, Any] = {}
    if getattr(args, "mongodb_uri", None):
        overrides["mongodb_uri"] = args.mongodb_uri
    if getattr(args, "db_name", None):
        overrides["db_name"] = args.db_name
    return settings.model_copy(update=overrides)


def open_store(args: argparse.Namespace) -> Store:
    """Connect with flags over environment; create indexes."""
    settings = store_settings(args)
    uri = settings.mongodb_uri
    if not uri:
        uri = DEFAULT_URI
        log.info("MONGODB_URI is not set; using %s", uri)
    store = connect(
        uri,
        settings.db_name,
        server_selection_timeout_s=settings.server_selection_timeout_s,
        write_timeout_s=settings.write_timeout_s,
    )
    store.ensure_indexes()
    log.info("connected to %s at %s", store.server_description(), redact_uri(uri))
    return store


def open_queue(args: argparse.Namespace) -> Queue:
    return Queue(open_store(args), queue_settings(args))


def print_json(value: BaseModel | Sequence[BaseModel]) -> None:
    """Print a response model (or a list of them) as the API would return it."""
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json", by_alias=True)
    else:
        data = [item.model_dump(mode="json", by_alias=True) for item in value]
    print(json.dumps(data, indent=2, sort_keys=False))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print rows under headers, each column as wide as its widest cell."""
    cells = [[str(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [
            max(width, len(cell)) for width, cell in zip(widths, row, strict=True)
        ]
    for row in [list(headers), *cells]:
        print(
            "  ".join(
                cell.ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
