"""The body of one chaos worker process, after `harness.worker_process` set it up."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

from aegis.settings import QueueSettings
from aegis.store import connect
from aegis.worker import Worker
from aegis.workers import WorkerRegistry
from harness.breaks import runs_recovery
from harness.broken_queue import apply_break
from harness.chaos_jobs import EFFECTS, ChaosJobs
from harness.recording import EventLog, RecordingQueue

# Short enough that a worker notices a stopped database within a lease or two.
SERVER_SELECTION_TIMEOUT_S = 3.0


def run(args: argparse.Namespace, *, clock_offset_s: float = 0.0) -> int:
    """Run the worker that `args` describes until a signal stops it."""
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

    events.info(
        "worker_start",
        concurrency=args.concurrency,
        queues=queues,
        break_name=args.break_name,
        clock_offset_s=clock_offset_s,
    )
    try:
        stats = worker.run()
    finally:
        store.close()
    events.info("worker_exit", stats=dataclasses.asdict(stats))
    events.close()
    return 0
