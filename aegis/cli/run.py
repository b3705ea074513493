"""Long-running commands: `worker`, `serve` and `dev-db`."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from aegis import devdb
from aegis.cli.common import (
    DEFAULT_URI,
    add_queue_flags,
    add_store_flags,
    open_store,
    queue_settings,
    store_settings,
)
from aegis.errors import DatabaseUnavailable
from aegis.handlers import import_handler_modules, registry
from aegis.metrics import InstrumentedQueue, QueueMetrics
from aegis.queue import Queue
from aegis.settings import DEFAULT_QUEUE, ApiSettings
from aegis.store import Store, redact_uri
from aegis.wakeup import ChangeStreamWakeup
from aegis.worker import Worker
from aegis.workers import WorkerRegistry

log = logging.getLogger("aegis.cli")

LOOPBACK_HOST = "127.0.0.1"
ALL_INTERFACES = "0.0.0.0"


# A worker started before its database waits for it, backing off to this.
STARTUP_RETRY_MAX_S = 30.0


def _open_store_when_up(args: argparse.Namespace) -> Store:
    """Connect, waiting with backoff while the database is unreachable."""
    delay_s = 1.0
    while True:
        try:
            return open_store(args)
        except DatabaseUnavailable as exc:
            log.warning("%s; retrying in %.0f s", exc, delay_s)
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, STARTUP_RETRY_MAX_S)


def cmd_worker(args: argparse.Namespace) -> int:
    import_handler_modules(args.imports or [])
    store = _open_store_when_up(args)
    plain_queue = Queue(store, queue_settings(args))
    queue: Queue | InstrumentedQueue = plain_queue
    if args.metrics_port is not None:
        metrics_registry = CollectorRegistry()
        queue = InstrumentedQueue(plain_queue, QueueMetrics(metrics_registry))
        start_http_server(
            args.metrics_port, addr=args.metrics_host, registry=metrics_registry
        )
        log.info(
            "worker metrics at http://%s:%d/metrics",
            args.metrics_host,
            args.metrics_port,
        )
    queues = [name.strip() for name in args.queues.split(",") if name.strip()]
    worker = Worker(
        queue,
        registry,
        queues=queues,
        concurrency=args.concurrency,
        worker_id=args.worker_id,
        registry=WorkerRegistry(store),
        wakeup=None if args.poll_only else ChangeStreamWakeup(store, queues),
    )
    worker.install_signal_handlers()
    worker.run()
    store.close()
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    # Imported here so that worker processes do not load FastAPI and uvicorn.
    import uvicorn

    from aegis.api import create_app

    api_settings = ApiSettings()
    host = args.host or api_settings.host
    if host is None:
        host = ALL_INTERFACES if api_settings.token else LOOPBACK_HOST
    port = args.port if args.port is not None else api_settings.port
    api_settings = api_settings.model_copy(update={"host": host, "port": port})
    if api_settings.token is None and not _is_loopback(host):
        log.warning(
            "AEGIS_API_TOKEN is not set and the API listens on %s: anyone who "
            "can reach that address can submit and cancel jobs",
            host,
        )

    settings = store_settings(args)
    app = create_app(api_settings, settings, queue_settings(args))
    log.info(
        "serving the API on http://%s:%d (database %s at %s)",
        host,
        port,
        settings.db_name,
        redact_uri(settings.mongodb_uri or DEFAULT_URI),
    )
    # log_config=None keeps the root logger's format for uvicorn's lines too.
    uvicorn.run(
        app, host=host, port=port, log_config=None, log_level=args.log_level.lower()
    )
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


def register(commands: Any) -> None:
    """Add `worker`, `serve` and `dev-db` to the subcommands."""
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
        "--poll-only",
        action="store_true",
        help="poll for work instead of following a change stream when idle",
    )
    worker.add_argument(
        "--import", dest="imports", action="append", metavar="MODULE",
        help="import MODULE to register its handlers (repeatable)",
    )  # fmt: skip
    worker.add_argument(
        "--metrics-port",
        type=int,
        help="serve this worker's Prometheus metrics on this TCP port (default: off)",
    )
    worker.add_argument(
        "--metrics-host",
        default=LOOPBACK_HOST,
        help=f"address for --metrics-port (default {LOOPBACK_HOST})",
    )
    worker.set_defaults(handler=cmd_worker)

    serve = commands.add_parser("serve", help="run the REST API server")
    add_store_flags(serve)
    serve.add_argument(
        "--host",
        help="bind address (env AEGIS_HOST; default 127.0.0.1, or 0.0.0.0 when "
        "AEGIS_API_TOKEN is set)",
    )
    serve.add_argument(
        "--port", type=int, help="TCP port (env AEGIS_PORT; default 8000)"
    )
    serve.set_defaults(handler=cmd_serve)

    dev_db = commands.add_parser(
        "dev-db", help="start a local MongoDB server and print its URI"
    )
    dev_db.add_argument(
        "--data-dir", help="keep data here (default: a temporary directory)"
    )
    dev_db.set_defaults(handler=cmd_dev_db)
