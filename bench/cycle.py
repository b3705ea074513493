"""Claim + complete cycles: the queue's code against raw driver calls.

Both variants send the same filter, sort and update to the same server, so
the ratio shows what the queue's own Python code costs per job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pymongo import ReturnDocument

from aegis.expressions import NOW, RUNNABLE_NOW, lease_end
from aegis.models import JobState
from aegis.queue import JobSpec, Queue
from aegis.settings import DEFAULT_QUEUE, QueueSettings
from aegis.store import Store
from bench.servers import clear_jobs, mongo_server
from bench.stats import percentile, to_ms

WORKER_ID = "bench-worker"


@dataclass(frozen=True)
class CycleResult:
    """Claim + complete rates of the queue and of raw driver calls."""

    jobs: int
    rounds: int
    queue_cycles_per_s: float
    raw_cycles_per_s: float

    @property
    def ratio(self) -> float:
        return self.queue_cycles_per_s / self.raw_cycles_per_s


def fill(queue: Queue, count: int) -> None:
    """Enqueue `count` no-op jobs in batches of at most 1,000."""
    remaining = count
    while remaining > 0:
        batch = min(remaining, 1000)
        queue.enqueue_many([JobSpec("noop")] * batch)
        remaining -= batch


def drain_with_queue(queue: Queue) -> int:
    done = 0
    while (job := queue.claim(WORKER_ID, [DEFAULT_QUEUE])) is not None:
        queue.complete(job.job_id, job.token)
        done += 1
    return done


def raw_claim(store: Store, lease_ttl_s: float) -> dict[str, Any] | None:
    """Send the claim's find-and-modify without going through the queue."""
    return store.jobs.find_one_and_update(
        {
            "state": JobState.QUEUED.value,
            "queue": {"$in": [DEFAULT_QUEUE]},
            "$expr": RUNNABLE_NOW,
        },
        [
            {
                "$set": {
                    "state": JobState.RUNNING.value,
                    "worker_id": {"$literal": WORKER_ID},
                    "token": {"$add": ["$token", 1]},
                    "attempts": {"$add": ["$attempts", 1]},
                    "claimed_at": NOW,
                    "heartbeat_at": NOW,
                    "started_at": {"$ifNull": ["$started_at", NOW]},
                    "lease_expires_at": lease_end(lease_ttl_s),
                }
            }
        ],
        sort=[("priority", 1), ("seq", 1)],
        return_document=ReturnDocument.AFTER,
    )


def drain_raw(store: Store, lease_ttl_s: float) -> int:
    done = 0
    while (doc := raw_claim(store, lease_ttl_s)) is not None:
        store.jobs.update_one(
            Queue.fenced(doc["_id"], doc["token"]),
            [
                {
                    "$set": {
                        "state": JobState.SUCCESS.value,
                        "result": None,
                        "finished_at": NOW,
                    }
                }
            ],
        )
        done += 1
    return done


def measure_cycles(jobs: int, rounds: int) -> CycleResult:
    """Alternate queue and raw rounds of `jobs` jobs on one fresh server.

    Alternating spreads the server's slow-down with age evenly over both
    variants. Every round starts from an empty collection.
    """
    settings = QueueSettings()
    elapsed_s = {"queue": 0.0, "raw": 0.0}
    done = {"queue": 0, "raw": 0}
    with mongo_server() as target:
        queue = Queue(target.store, settings)
        for round_index in range(rounds * 2):
            variant = "queue" if round_index % 2 == 0 else "raw"
            clear_jobs(target.store)
            fill(queue, jobs)
            started = time.perf_counter()
            if variant == "queue":
                done[variant] += drain_with_queue(queue)
            else:
                done[variant] += drain_raw(target.store, settings.lease_ttl_s)
            elapsed_s[variant] += time.perf_counter() - started
    return CycleResult(
        jobs=jobs,
        rounds=rounds,
        queue_cycles_per_s=done["queue"] / elapsed_s["queue"],
        raw_cycles_per_s=done["raw"] / elapsed_s["raw"],
    )


@dataclass(frozen=True)
class LatencyResult:
    """Claim latency at one queue depth."""

    depth: int
    samples: int
    p50_ms: float
    p95_ms: float


def measure_claim_latency(depth: int, samples: int) -> LatencyResult:
    """Time `samples` claims with exactly `depth` jobs queued at each claim.

    After each timed claim the job is completed and one new job is
    enqueued, both untimed, so the depth stays constant.
    """
    latencies_s: list[float] = []
    with mongo_server() as target:
        queue = Queue(target.store)
        fill(queue, depth)
        for _ in range(samples):
            started = time.perf_counter()
            job = queue.claim(WORKER_ID, [DEFAULT_QUEUE])
            latencies_s.append(time.perf_counter() - started)
            if job is None:
                raise RuntimeError(f"claim returned no job at depth {depth}")
            queue.complete(job.job_id, job.token)
            fill(queue, 1)
    return LatencyResult(
        depth=depth,
        samples=samples,
        p50_ms=to_ms(percentile(latencies_s, 0.5)),
        p95_ms=to_ms(percentile(latencies_s, 0.95)),
    )
