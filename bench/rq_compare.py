"""The no-op throughput workload on RQ with a local `redis-server`."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from bench.servers import RedisTarget, redis_server
from bench.throughput import DRAIN_TIMEOUT_S, ThroughputResult, wait_for_count

RQ_QUEUE = "bench"
REPO_ROOT = Path(__file__).resolve().parent.parent
ENQUEUE_BATCH = 500
WORKER_EXIT_TIMEOUT_S = 3.0
# SimpleWorker runs each job in the worker process, as an aegis worker does.
# NOTE: with rq 3.0.0 and redis-py 8.2.0, burst-mode workers often hang after
# the drain, in the join of their pub/sub thread, so `_stop_workers` stops
# them once every job has finished. RQ's default forking Worker is not
# measured: after such a hang, stopping it left its work-horse child running.
WORKER_CLASS = "rq.worker.SimpleWorker"


def _fill(target: RedisTarget, jobs: int) -> None:
    import redis
    import rq

    from bench.rq_jobs import noop

    connection = redis.Redis.from_url(target.url)
    queue = rq.Queue(RQ_QUEUE, connection=connection)
    remaining = jobs
    while remaining > 0:
        batch = min(remaining, ENQUEUE_BATCH)
        queue.enqueue_many([rq.Queue.prepare_data(noop)] * batch)
        remaining -= batch
    connection.close()


def _spawn_worker(target: RedisTarget) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    command = [
        sys.executable,
        "-m",
        "rq.cli",
        "worker",
        "--burst",
        "--quiet",
        "--url",
        target.url,
        "--worker-class",
        WORKER_CLASS,
        "--path",
        str(REPO_ROOT),
        RQ_QUEUE,
    ]
    # A temporary file, not a pipe: a full pipe would block the worker.
    log_file = tempfile.TemporaryFile()
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log_file,
        stdin=subprocess.DEVNULL,
    ), log_file


def _stop_workers(workers: list[tuple[subprocess.Popen[bytes], IO[bytes]]]) -> int:
    """Wait for burst-mode workers to exit, SIGTERM the ones that linger, count them.

    Every job has finished when this is called, so stopping a lingering
    worker loses no work.
    """
    deadline = time.monotonic() + WORKER_EXIT_TIMEOUT_S
    lingering = []
    for process, _ in workers:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            lingering.append(process)
            process.terminate()
    for process in lingering:
        try:
            process.wait(WORKER_EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for process, log_file in workers:
        log_file.seek(0)
        output = log_file.read().decode(errors="replace")
        log_file.close()
        if process not in lingering and process.returncode != 0:
            print(
                f"rq worker {process.pid} exited with {process.returncode}:",
                file=sys.stderr,
            )
            print(output, file=sys.stderr)
    if lingering:
        print(
            f"{len(lingering)} of {len(workers)} rq workers were still running "
            f"{WORKER_EXIT_TIMEOUT_S:g} s after the drain; stopped them with SIGTERM",
            file=sys.stderr,
        )
    return len(lingering)


def _steady_rate(target: RedisTarget, jobs: int) -> float:
    import redis
    import rq

    connection = redis.Redis.from_url(target.url)
    queue = rq.Queue(RQ_QUEUE, connection=connection)
    job_ids = queue.finished_job_registry.get_job_ids()
    fetched = [job for job in rq.job.Job.fetch_many(job_ids, connection) if job]
    connection.close()
    started = min(job.started_at for job in fetched if job.started_at)
    ended = max(job.ended_at for job in fetched if job.ended_at)
    return jobs / (ended - started).total_seconds()


def measure_rq(redis_executable: str, workers: int, jobs: int) -> ThroughputResult:
    """Time `workers` burst-mode RQ workers on `jobs` pre-queued no-op jobs."""
    import redis
    import rq

    with redis_server(redis_executable) as target:
        _fill(target, jobs)
        connection = redis.Redis.from_url(target.url)
        registry = rq.Queue(RQ_QUEUE, connection=connection).finished_job_registry
        started = time.monotonic()
        processes = [_spawn_worker(target) for _ in range(workers)]
        try:
            finished = wait_for_count(jobs, DRAIN_TIMEOUT_S, lambda: registry.count)
        finally:
            _stop_workers(processes)
        connection.close()
        return ThroughputResult.measured(
            workers, jobs, finished - started, _steady_rate(target, jobs)
        )


def describe_redis(redis_executable: str) -> dict[str, Any]:
    """Return the version and persistence settings of a default `redis-server`."""
    import rq

    with redis_server(redis_executable) as target:
        return {
            "redis_version": target.version,
            "rq_version": rq.__version__,
            "persistence": target.persistence,
        }
