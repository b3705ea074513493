"""Entry point of one worker OS process in a chaos run.

    python -m harness.worker_process --mongodb-uri URI --db NAME --label w2 \\
        --history DIR/w2.1.jsonl --settings '{"lease_ttl_s": 3, ...}'

Runs `aegis.worker.Worker` on a `RecordingQueue`, with the handlers of
`harness.chaos_jobs`, and records ``worker_start`` and ``worker_exit`` info
events. SIGTERM and SIGINT stop the worker gracefully.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from aegis.settings import QueueSettings
from aegis.store import connect
from aegis.worker import Worker
from aegis.workers import WorkerRegistry
from harness.breaks import BREAKS, apply_break, runs_recovery
from harness.chaos_jobs import EFFECTS, ChaosJobs
from harness.recording import EventLog, RecordingQueue

log = logging.getLogger(__name__)

# Short enough that a worker notices a stopped database within a lease or two.
SERVER_SELECTION_TIMEOUT_S = 3.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness.worker_process",
        description="Run one recorded worker for a chaos run.",
    )
    parser.add_argument("--mongodb-uri", required=True, help="MongoDB URI")
    parser.add_argument("--db", required=True, help="database name of the run")
    parser.add_argument("--label", required=True, help="process label, such as w2")
    parser.add_argument(
        "--history", required=True, type=Path, help="JSONL file for history events"
    )
    parser.add_argument(
        "--settings",
        default="{}",
        help="QueueSettings fields as a JSON object, durations in seconds",
    )
    parser.add_argument(
        "--queues", default="default", help="comma-separated queue names"
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, help="jobs run at once (default 1)"
    )
    parser.add_argument(
        "--break", dest="break_name", choices=sorted(BREAKS),
        help="put a deliberate defect into this worker",
    )  # fmt: skip
    return parser


def run(args: argparse.Namespace) -> int:
    queue_type = apply_break(args.break_name)
    settings = QueueSettings.model_validate(json.loads(args.settings))
    worker_id = f"{args.label}-{os.getpid()}"
    events = EventLog(args.history, args.label, worker_id)
    store = connect(
        args.mongodb_uri,
        args.db,
        server_selection_timeout_s=SERVER_SELECTION_TIMEOUT_S,
        check=False,
        app_name=f"aegis-chaos-{args.label}",
    )
    queue = RecordingQueue(queue_type(store, settings), events)
    jobs = ChaosJobs(events, store.db[EFFECTS])
    queues = [name for name in args.queues.split(",") if name]
    worker = Worker(
        queue,
        jobs.registry(),
        queues=queues,
        concurrency=args.concurrency,
        worker_id=worker_id,
        registry=WorkerRegistry(store),
        run_recovery=runs_recovery(args.break_name),
    )
    worker.install_signal_handlers()

    events.info("worker_start", concurrency=args.concurrency, queues=queues)
    try:
        stats = worker.run()
    finally:
        store.close()
    events.info("worker_exit", stats=dataclasses.asdict(stats))
    events.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s {args.label} %(name)s: %(message)s",
    )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
