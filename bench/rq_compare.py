"""The no-op throughput workload on RQ with a local `redis-server`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.servers import RedisTarget, redis_server
from bench.throughput import DRAIN_TIMEOUT_S, ThroughputResult, wait_for_count

RQ_QUEUE = "bench"
REPO_ROOT = Path(__file__).resolve().parent.parent
ENQUEUE_BATCH = 500
WORKER_EXIT_TIMEOUT_S = 30.0
# SimpleWorker runs each job in the worker process, as an aegis worker does.
# NOTE: RQ's default forking Worker (rq 3.0.0) finished 200 jobs here but its
# burst mode then never exited, so it is not measured.
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


def _spawn_worker(target: RedisTarget) -> subprocess.Popen[bytes]:
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
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )


def _stop_worker(process: subprocess.Popen[bytes]) -> None:
    """Wait for a burst-mode worker to exit; kill it by PID if it does not."""
    try:
        _, stderr = process.communicate(timeout=WORKER_EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        print(f"rq worker {process.pid} did not exit; killed it", file=sys.stderr)
        return
    if process.returncode != 0:
        print(stderr.decode(errors="replace"), file=sys.stderr)


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
            for process in processes:
                _stop_worker(process)
        connection.close()
        wall_s = finished - started
        return ThroughputResult(
            workers=workers,
            jobs=jobs,
            wall_s=round(wall_s, 2),
            jobs_per_s=round(jobs / wall_s, 1),
            steady_jobs_per_s=round(_steady_rate(target, jobs), 1),
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
