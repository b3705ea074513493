"""End-to-end throughput of no-op jobs run by `aegis worker` processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from aegis.models import JobState
from aegis.queue import Queue
from aegis.store import Store
from bench.cycle import fill
from bench.procs import WorkerProcess
from bench.servers import BENCH_DB, mongo_server

POLL_INTERVAL_S = 0.1
DRAIN_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class ThroughputResult:
    """Time for `workers` processes to finish `jobs` pre-queued no-op jobs."""

    workers: int
    jobs: int
    wall_s: float  # from spawning the workers until every job is SUCCESS
    jobs_per_s: float  # jobs / wall_s, worker start-up included
    steady_jobs_per_s: float  # jobs / (last finished_at - first claimed_at)

    @classmethod
    def measured(
        cls, workers: int, jobs: int, wall_s: float, steady_jobs_per_s: float
    ) -> ThroughputResult:
        """Round one run's figures for the tables."""
        return cls(
            workers=workers,
            jobs=jobs,
            wall_s=round(wall_s, 2),
            jobs_per_s=round(jobs / wall_s, 1),
            steady_jobs_per_s=round(steady_jobs_per_s, 1),
        )


def wait_for_count(
    count: int, timeout_s: float, count_done: Callable[[], int]
) -> float:
    """Poll `count_done()` until it reaches `count`; return the monotonic time."""
    deadline = time.monotonic() + timeout_s
    while True:
        if count_done() >= count:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} jobs did not finish within {timeout_s:g} s")
        time.sleep(POLL_INTERVAL_S)


def steady_rate(store: Store, jobs: int) -> float:
    """Jobs per second between the first claim and the last finish (database clock)."""
    first = store.jobs.find_one(sort=[("claimed_at", 1)])
    last = store.jobs.find_one(sort=[("finished_at", -1)])
    assert first is not None and last is not None
    finished_at: datetime = last["finished_at"]
    claimed_at: datetime = first["claimed_at"]
    span_s = (finished_at - claimed_at).total_seconds()
    return jobs / span_s


def measure_throughput(workers: int, jobs: int) -> ThroughputResult:
    """Fill a fresh server with `jobs` no-op jobs and time `workers` processes."""
    with mongo_server() as target:
        store = target.store
        fill(Queue(store), jobs)
        started = time.monotonic()
        processes = [
            WorkerProcess(target.uri, BENCH_DB, worker_id=f"bench-{workers}-{index}")
            for index in range(workers)
        ]
        try:
            finished = wait_for_count(
                jobs,
                DRAIN_TIMEOUT_S,
                lambda: store.jobs.count_documents({"state": JobState.SUCCESS.value}),
            )
        finally:
            for process in processes:
                process.stop()
        return ThroughputResult.measured(
            workers, jobs, finished - started, steady_rate(store, jobs)
        )
