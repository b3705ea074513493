"""Peak resident memory (VmHWM) of one worker process, idle and busy."""

from __future__ import annotations

import time
from dataclasses import dataclass

from aegis.models import JobState
from aegis.queue import JobSpec, Queue
from aegis.store import Store
from bench.cycle import fill
from bench.procs import WorkerProcess, peak_rss_kib
from bench.recovery import READY_TIMEOUT_S
from bench.servers import BENCH_DB, mongo_server
from bench.throughput import DRAIN_TIMEOUT_S, wait_for_count

IDLE_WAIT_S = 3.0
BUSY_CONCURRENCY = 8
SLEEP_JOB_S = 1.0


@dataclass(frozen=True)
class MemoryResult:
    """Peak RSS of one worker after one workload."""

    workload: str
    concurrency: int
    peak_rss_mib: float


def _peak_rss_mib(process: WorkerProcess) -> float:
    return round(peak_rss_kib(process.pid) / 1024, 1)


def measure_idle() -> MemoryResult:
    """Start a worker on an empty queue and let it poll for `IDLE_WAIT_S`."""
    with mongo_server() as target:
        worker = WorkerProcess(target.uri, BENCH_DB, worker_id="memory-idle")
        try:
            wait_for_count(
                1,
                READY_TIMEOUT_S,
                lambda: target.store.workers.count_documents({"_id": "memory-idle"}),
            )
            time.sleep(IDLE_WAIT_S)
            peak = _peak_rss_mib(worker)
        finally:
            worker.stop()
    return MemoryResult(f"idle {IDLE_WAIT_S:g} s, empty queue", 1, peak)


def measure_busy_noop(jobs: int) -> MemoryResult:
    """Run `jobs` no-op jobs through one worker with concurrency 1."""
    with mongo_server() as target:
        fill(Queue(target.store), jobs)
        worker = WorkerProcess(target.uri, BENCH_DB, worker_id="memory-noop")
        try:
            _wait_for_success(target.store, jobs)
            peak = _peak_rss_mib(worker)
        finally:
            worker.stop()
    return MemoryResult(f"{jobs} noop jobs", 1, peak)


def measure_busy_sleep(jobs: int) -> MemoryResult:
    """Run `jobs` one-second sleep jobs, `BUSY_CONCURRENCY` at a time."""
    with mongo_server() as target:
        spec = JobSpec("sleep", {"seconds": SLEEP_JOB_S})
        Queue(target.store).enqueue_many([spec] * jobs)
        worker = WorkerProcess(
            target.uri,
            BENCH_DB,
            worker_id="memory-sleep",
            concurrency=BUSY_CONCURRENCY,
        )
        try:
            _wait_for_success(target.store, jobs)
            peak = _peak_rss_mib(worker)
        finally:
            worker.stop()
    return MemoryResult(
        f"{jobs} sleep jobs of {SLEEP_JOB_S:g} s", BUSY_CONCURRENCY, peak
    )


def _wait_for_success(store: Store, jobs: int) -> None:
    wait_for_count(
        jobs,
        DRAIN_TIMEOUT_S,
        lambda: store.jobs.count_documents({"state": JobState.SUCCESS.value}),
    )
