"""The `aegis` command line: `aegis worker`, `aegis enqueue`, `aegis dev-db`, ..."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aegis import devdb
from aegis.errors import AegisError, EmbeddedServerError
from aegis.handlers import import_handler_modules, registry
from aegis.queue import Queue
from aegis.settings import DEFAULT_QUEUE, QueueSettings, StoreSettings
from aegis.store import Store, connect, redact_uri
from aegis.worker import Worker
from aegis.workers import WorkerRegistry

log = logging.getLogger("aegis.cli")

DEFAULT_URI = "mongodb://127.0.0.1:27017/?directConnection=true"

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


def add_store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mongodb-uri",
        help="MongoDB connection string (default: $MONGODB_URI, else localhost)",
    )
    parser.add_argument(
        "--db", dest="db_name", help="database name (default: $AEGIS_DB or aegis)"
    )


def add_queue_flags(parser: argparse.ArgumentParser) -> None:
    for name, help_text in QUEUE_FLAGS.items():
        flag = "--" + name.removesuffix("_s").replace("_", "-")
        parser.add_argument(
            flag, dest=name, type=float, help=f"{help_text} (env AEGIS_{name.upper()})"
        )


def queue_settings(args: argparse.Namespace) -> QueueSettings:
    overrides = {
        name: getattr(args, name)
        for name in QUEUE_FLAGS
        if getattr(args, name, None) is not None
    }
    return QueueSettings(**overrides)


def open_store(args: argparse.Namespace) -> Store:
    """Connect with flags over environment; create indexes."""
    settings = StoreSettings()
    uri = args.mongodb_uri or settings.mongodb_uri
    if not uri:
        uri = DEFAULT_URI
        log.info("MONGODB_URI is not set; using %s", uri)
    store = connect(
        uri,
        args.db_name or settings.db_name,
        server_selection_timeout_s=settings.server_selection_timeout_s,
        write_timeout_s=settings.write_timeout_s,
    )
    store.ensure_indexes()
    log.info("connected to %s at %s", store.server_description(), redact_uri(uri))
    return store


# -- commands ------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    import_handler_modules(args.imports or [])
    store = open_store(args)
    queue = Queue(store, queue_settings(args))
    queues = [name.strip() for name in args.queues.split(",") if name.strip()]
    worker = Worker(
        queue,
        registry,
        queues=queues,
        concurrency=args.concurrency,
        worker_id=args.worker_id,
        registry=WorkerRegistry(store),
    )
    worker.install_signal_handlers()
    worker.run()
    store.close()
    return 0


def _parse_payload(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AegisError(f"invalid --payload: not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise AegisError(
            "invalid --payload: expected a JSON object such as '{\"seconds\": 1}'"
        )
    return payload


def cmd_enqueue(args: argparse.Namespace) -> int:
    payload = _parse_payload(args.payload)
    store = open_store(args)
    queue = Queue(store, queue_settings(args))
    ids = []
    for _ in range(args.count):
        job = queue.enqueue(
            args.job_type,
            payload,
            queue=args.queue,
            priority=args.priority,
            max_retries=args.max_retries,
            delay_s=args.delay,
            idempotency_key=args.idempotency_key,
        )
        ids.append(job.job_id)
    print("\n".join(ids))
    store.close()
    return 0


def cmd_dev_db(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir) if args.data_dir else None
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
    server = devdb.pick_server(data_dir)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        server.start()
        print(f"{server.description} listening; data in {server.data_dir}", flush=True)
        print(f"export MONGODB_URI='{server.uri}'", flush=True)
        print("Press Ctrl-C to stop.", file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            if not server.running:
                log.error(
                    "the database server exited; see %s", server.data_dir / "server.log"
                )
                return 1
    finally:
        server.cleanup()
    return 0


# -- parser ----------------------------------------------------------------------

Command = Callable[[argparse.Namespace], int]


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

    worker = commands.add_parser("worker", help="run a worker process")
    add_store_flags(worker)
    add_queue_flags(worker)
    worker.add_argument(
        "--queues",
        default=DEFAULT_QUEUE,
        help="comma-separated queue names (default: default)",
    )
    worker.add_argument(
        "--concurrency", type=int, default=1, help="jobs run at once (default 1)"
    )
    worker.add_argument("--worker-id", help="worker id (default: HOST-PID)")
    worker.add_argument(
        "--import", dest="imports", action="append", metavar="MODULE",
        help="import MODULE to register its handlers (repeatable)",
    )  # fmt: skip
    worker.set_defaults(handler=cmd_worker)

    enqueue = commands.add_parser("enqueue", help="submit jobs")
    add_store_flags(enqueue)
    add_queue_flags(enqueue)
    enqueue.add_argument(
        "job_type", help="handler name, for example sleep, echo, fail, noop"
    )
    enqueue.add_argument("--payload", help="JSON object passed to the handler")
    enqueue.add_argument(
        "--queue", default=DEFAULT_QUEUE, help="queue name (default: default)"
    )
    enqueue.add_argument(
        "--priority", type=int, default=5, help="0 (first) to 9 (last), default 5"
    )
    enqueue.add_argument(
        "--max-retries",
        type=int,
        default=3,
        help="retries after the first attempt (default 3)",
    )
    enqueue.add_argument("--delay", type=float, help="seconds before the job may run")
    enqueue.add_argument("--idempotency-key", help="enqueue at most once per key")
    enqueue.add_argument(
        "--count", type=int, default=1, help="number of identical jobs (default 1)"
    )
    enqueue.set_defaults(handler=cmd_enqueue)

    dev_db = commands.add_parser(
        "dev-db", help="start a local MongoDB server and print its URI"
    )
    dev_db.add_argument(
        "--data-dir", help="keep data here (default: a temporary directory)"
    )
    dev_db.set_defaults(handler=cmd_dev_db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Command = args.handler
    try:
        return handler(args)
    except ValidationError as exc:
        print(f"aegis: invalid setting: {exc}", file=sys.stderr)
        return 2
    except AegisError as exc:
        print(f"aegis: {exc}", file=sys.stderr)
        return 2 if not isinstance(exc, EmbeddedServerError) else 1


if __name__ == "__main__":
    sys.exit(main())
