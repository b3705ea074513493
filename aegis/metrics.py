"""Prometheus metrics: job counters, latency histograms and database gauges.

Counters and histograms count what happens in the process that exports
them: the API counts the jobs it enqueues, and each worker counts the jobs
it runs (served by `aegis worker --metrics-port`). The gauges
(`aegis_queue_depth`, `aegis_workers_alive`) are read from the database at
scrape time, so they are the same whichever API process is scraped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pymongo.errors import PyMongoError

from aegis.errors import StoreError
from aegis.models import ErrorInfo, Job, JobState, Lease, RecoveryResult
from aegis.queries import count_by_queue_and_state, job_labels
from aegis.queue import JobSpec, Queue
from aegis.settings import QueueSettings
from aegis.workers import WorkerRegistry

log = logging.getLogger(__name__)

CLAIM_LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
)
JOB_DURATION_BUCKETS_S = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class QueueMetrics:
    """The job counters and histograms of one process, in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        labels = ["queue", "job_type"]
        self.enqueued = Counter(
            "aegis_jobs_enqueued",
            "Jobs inserted by this process (idempotent repeats not counted)",
            labels,
            registry=registry,
        )
        self.succeeded = Counter(
            "aegis_jobs_succeeded",
            "Jobs this process completed with SUCCESS",
            labels,
            registry=registry,
        )
        self.failed = Counter(
            "aegis_jobs_failed",
            "Jobs this process moved to FAILED (retries exhausted or not retryable)",
            labels,
            registry=registry,
        )
        self.retried = Counter(
            "aegis_jobs_retried",
            "Failed attempts this process put back in the queue for another try",
            labels,
            registry=registry,
        )
        self.recovered = Counter(
            "aegis_jobs_recovered",
            "Jobs with an expired lease that this process's recovery moved",
            [*labels, "outcome"],
            registry=registry,
        )
        self.claim_latency = Histogram(
            "aegis_claim_latency_seconds",
            "Duration of one claim request to the database, found or empty",
            ["found"],
            buckets=CLAIM_LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.job_duration = Histogram(
            "aegis_job_duration_seconds",
            "Time from claim to the reported outcome of one attempt (database clock)",
            [*labels, "outcome"],
            buckets=JOB_DURATION_BUCKETS_S,
            registry=registry,
        )

    def observe_attempt(
        self, job: Job, outcome: str, ended_at: datetime | None
    ) -> None:
        """Record the duration of the attempt that `job` just ended."""
        if job.claimed_at is None or ended_at is None:
            return
        duration_s = max(0.0, (ended_at - job.claimed_at).total_seconds())
        self.job_duration.labels(job.queue, job.job_type, outcome).observe(duration_s)


class InstrumentedQueue:
    """A `Queue` that counts what passes through it; every call is delegated.

    Pass it to `Worker` (it implements the worker's queue operations) or use
    it in the API in place of the queue.
    """

    def __init__(self, queue: Queue, metrics: QueueMetrics) -> None:
        self.queue = queue
        self.metrics = metrics
        self.settings: QueueSettings = queue.settings

    def enqueue(
        self, job_type: str, payload: Mapping[str, Any] | None = None, **options: Any
    ) -> Job:
        return self.enqueue_many([JobSpec(job_type, payload, **options)])[0]

    def enqueue_many(self, specs: Sequence[JobSpec]) -> list[Job]:
        return [job for job, _ in self.enqueue_many_reporting(specs)]

    def enqueue_many_reporting(
        self, specs: Sequence[JobSpec]
    ) -> list[tuple[Job, bool]]:
        """Enqueue like `Queue.enqueue_many_reporting`, counting new jobs."""
        reported = self.queue.enqueue_many_reporting(specs)
        for job, is_new in reported:
            if is_new:
                self.metrics.enqueued.labels(job.queue, job.job_type).inc()
        return reported

    def claim(self, worker_id: str, queues: Sequence[str]) -> Job | None:
        started = time.monotonic()
        job = self.queue.claim(worker_id, queues)
        found = "true" if job is not None else "false"
        self.metrics.claim_latency.labels(found).observe(time.monotonic() - started)
        return job

    def renew(self, job_id: str, token: int) -> Lease:
        return self.queue.renew(job_id, token)

    def complete(self, job_id: str, token: int, result: Any = None) -> Job:
        job = self.queue.complete(job_id, token, result)
        self.metrics.succeeded.labels(job.queue, job.job_type).inc()
        self.metrics.observe_attempt(job, "success", job.finished_at)
        return job

    def fail(
        self, job_id: str, token: int, error: ErrorInfo, *, retryable: bool = True
    ) -> Job:
        job = self.queue.fail(job_id, token, error, retryable=retryable)
        ended_at = job.errors[-1].at if job.errors else job.finished_at
        if job.state is JobState.QUEUED:
            self.metrics.retried.labels(job.queue, job.job_type).inc()
            self.metrics.observe_attempt(job, "retry", ended_at)
        elif job.state is JobState.FAILED:
            self.metrics.failed.labels(job.queue, job.job_type).inc()
            self.metrics.observe_attempt(job, "failed", ended_at)
        else:
            self.metrics.observe_attempt(job, "cancelled", ended_at)
        return job

    def release(self, job_id: str, token: int) -> Job:
        return self.queue.release(job_id, token)

    def finish_cancelled(self, job_id: str, token: int) -> Job:
        job = self.queue.finish_cancelled(job_id, token)
        self.metrics.observe_attempt(job, "cancelled", job.finished_at)
        return job

    def recover(self) -> RecoveryResult:
        result = self.queue.recover()
        if result.count:
            self._count_recovered(result)
        return result

    def _count_recovered(self, result: RecoveryResult) -> None:
        moved = [("requeued", job_id) for job_id, _ in result.requeued]
        moved += [("failed", job_id) for job_id, _ in result.failed]
        moved += [("cancelled", job_id) for job_id, _ in result.cancelled]
        try:
            labels = job_labels(self.queue.store, [job_id for _, job_id in moved])
        except PyMongoError as exc:
            # The jobs moved; only their labels are unknown.
            log.warning(
                "recovered %d jobs but could not read their labels: %s", len(moved), exc
            )
            labels = {}
        for outcome, job_id in moved:
            queue_name, job_type = labels.get(job_id, ("unknown", "unknown"))
            self.metrics.recovered.labels(queue_name, job_type, outcome).inc()

    def next_expiry_s(self) -> float | None:
        return self.queue.next_expiry_s()

    def cancel(self, job_id: str) -> Job:
        return self.queue.cancel(job_id)

    def retry(self, job_id: str) -> Job:
        return self.queue.retry(job_id)

    def get(self, job_id: str) -> Job:
        return self.queue.get(job_id)


class DatabaseCollector(Collector):
    """Gauges read from the database at each scrape.

    When the database is unreachable, the scrape still succeeds: it reports
    `aegis_database_up 0` and leaves out the other gauges.
    """

    def __init__(self, workers: WorkerRegistry, dead_after_s: float) -> None:
        self.workers = workers
        self.dead_after_s = dead_after_s

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "aegis_database_up", "1 if the last scrape could read the database, else 0"
        )
        depth = GaugeMetricFamily(
            "aegis_queue_depth", "Jobs by queue and state", labels=["queue", "state"]
        )
        alive = GaugeMetricFamily(
            "aegis_workers_alive", "Workers whose last heartbeat is recent enough"
        )
        try:
            counts = count_by_queue_and_state(self.workers.store)
            workers = self.workers.list(self.dead_after_s, include_stopped=False)
        except (PyMongoError, StoreError) as exc:
            log.warning("metrics scrape could not read the database: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for queue_name, states in sorted(counts.items()):
            for state in JobState:
                depth.add_metric([queue_name, state.value], states.get(state.value, 0))
        yield depth
        alive.add_metric([], sum(1 for worker in workers if worker.alive))
        yield alive
