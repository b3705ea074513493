"""Status commands: `stats` and `workers`."""

from __future__ import annotations

import argparse
from typing import Any

from aegis.api.schemas import StatsPublic, WorkerPublic
from aegis.cli.common import (
    add_json_flag,
    add_store_flags,
    format_age,
    open_store,
    print_json,
    print_table,
)
from aegis.models import JobState
from aegis.queries import job_stats
from aegis.settings import QueueSettings
from aegis.workers import WorkerRegistry


def cmd_stats(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        stats = job_stats(store)
    finally:
        store.close()
    if args.json:
        print_json(StatsPublic.from_stats(stats))
        return 0
    states = [state.value for state in JobState]
    rows: list[list[object]] = [
        [queue_name, *(counts.get(state, 0) for state in states)]
        for queue_name, counts in sorted(stats.by_queue.items())
    ]
    rows.append(["(all)", *(stats.by_state.get(state, 0) for state in states)])
    print_table(["QUEUE", *states], rows)
    print(f"oldest queued job: {format_age(stats.oldest_queued_age_s)}")
    print(f"completed in the last minute: {stats.completed_last_minute}")
    return 0


def cmd_workers(args: argparse.Namespace) -> int:
    dead_after_s = args.dead_after or QueueSettings().worker_dead_after_s
    store = open_store(args)
    try:
        workers = WorkerRegistry(store).list(dead_after_s)
    finally:
        store.close()
    if args.json:
        print_json([WorkerPublic.from_info(info) for info in workers])
        return 0
    rows = [
        (
            info.worker_id,
            info.liveness,
            "yes" if info.stopped else "no",
            format_age(info.heartbeat_age_s),
            ",".join(info.queues),
            ",".join(info.current_jobs) or "-",
        )
        for info in workers
    ]
    print_table(
        ["WORKER", "STATUS", "STOPPED", "LAST HEARTBEAT", "QUEUES", "CURRENT JOBS"],
        rows,
    )
    return 0


def register(commands: Any) -> None:
    """Add `stats` and `workers` to the subcommands."""
    stats = commands.add_parser(
        "stats", help="job counts by status and queue, and the queued backlog's age"
    )
    add_store_flags(stats)
    add_json_flag(stats)
    stats.set_defaults(handler=cmd_stats)

    workers = commands.add_parser(
        "workers", help="workers with ALIVE or DEAD and their current jobs"
    )
    add_store_flags(workers)
    add_json_flag(workers)
    workers.add_argument(
        "--dead-after",
        type=float,
        help="heartbeat age in seconds after which a worker counts as DEAD "
        "(env AEGIS_WORKER_DEAD_AFTER_S; default 30)",
    )
    workers.set_defaults(handler=cmd_workers)
