"""InstrumentedQueue counters and the database gauges."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from aegis.metrics import DatabaseCollector, InstrumentedQueue, QueueMetrics
from aegis.models import ErrorInfo
from aegis.queue import JobSpec, Queue
from aegis.settings import QueueSettings
from aegis.store import Store
from aegis.workers import WorkerRegistry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def make(queue: Queue) -> tuple[InstrumentedQueue, CollectorRegistry]:
    registry = CollectorRegistry()
    return InstrumentedQueue(queue, QueueMetrics(registry)), registry


def test_enqueue_counts_new_jobs_only(queue: Queue) -> None:
    instrumented, registry = make(queue)

    instrumented.enqueue("echo", queue="q", idempotency_key="once")
    instrumented.enqueue("echo", queue="q", idempotency_key="once")
    instrumented.enqueue_many(
        [JobSpec("sleep", queue="q"), JobSpec("sleep", queue="q")]
    )

    assert (
        sample(registry, "aegis_jobs_enqueued_total", queue="q", job_type="echo") == 1
    )
    assert (
        sample(registry, "aegis_jobs_enqueued_total", queue="q", job_type="sleep") == 2
    )


def test_enqueue_reporting_marks_repeats(queue: Queue) -> None:
    instrumented, _ = make(queue)

    [(first, first_new)] = instrumented.enqueue_many_reporting(
        [JobSpec("echo", idempotency_key="k")]
    )
    [(second, second_new)] = instrumented.enqueue_many_reporting(
        [JobSpec("echo", idempotency_key="k")]
    )

    assert first_new is True
    assert second_new is False
    assert second.job_id == first.job_id


def test_outcomes_and_histograms(queue: Queue) -> None:
    instrumented, registry = make(queue)
    ok = instrumented.enqueue("echo", priority=0)
    retry = instrumented.enqueue("echo", priority=1, max_retries=3)
    dead = instrumented.enqueue("echo", priority=2)

    for job_id, action in [
        (ok.job_id, "complete"),
        (retry.job_id, "retry"),
        (dead.job_id, "fail"),
    ]:
        claimed = instrumented.claim("w1", ["default"])
        assert claimed is not None and claimed.job_id == job_id
        if action == "complete":
            instrumented.complete(job_id, claimed.token, {"done": True})
        else:
            error = ErrorInfo("RuntimeError", "boom")
            instrumented.fail(job_id, claimed.token, error, retryable=action == "retry")
    assert instrumented.claim("w1", ["empty-queue"]) is None

    labels = {"queue": "default", "job_type": "echo"}
    assert sample(registry, "aegis_jobs_succeeded_total", **labels) == 1
    assert sample(registry, "aegis_jobs_retried_total", **labels) == 1
    assert sample(registry, "aegis_jobs_failed_total", **labels) == 1
    assert sample(registry, "aegis_claim_latency_seconds_count", found="true") == 3
    assert sample(registry, "aegis_claim_latency_seconds_count", found="false") == 1
    for outcome in ("success", "retry", "failed"):
        assert (
            sample(
                registry, "aegis_job_duration_seconds_count", outcome=outcome, **labels
            )
            == 1
        )


def test_recovered_counter_has_labels(store: Store) -> None:
    short = Queue(store, QueueSettings(lease_ttl_s=0.2, heartbeat_interval_s=0.1))
    instrumented, registry = make(short)
    instrumented.enqueue("echo", queue="r", max_retries=1)
    instrumented.enqueue("sleep", queue="r", max_retries=0)
    assert instrumented.claim("w1", ["r"]) is not None
    assert instrumented.claim("w1", ["r"]) is not None
    time.sleep(0.4)

    result = instrumented.recover()

    assert result.count == 2
    assert (
        sample(
            registry,
            "aegis_jobs_recovered_total",
            queue="r",
            job_type="echo",
            outcome="requeued",
        )
        == 1
    )
    assert (
        sample(
            registry,
            "aegis_jobs_recovered_total",
            queue="r",
            job_type="sleep",
            outcome="failed",
        )
        == 1
    )


def test_database_collector_gauges(store: Store, queue: Queue) -> None:
    registry = CollectorRegistry()
    workers = WorkerRegistry(store)
    registry.register(DatabaseCollector(workers, dead_after_s=30))
    queue.enqueue("echo", queue="a")
    queue.enqueue("echo", queue="a")
    queue.claim("w1", ["a"])
    workers.register("w1", ["a"], 1)
    workers.register("w2", ["a"], 1)
    workers.mark_stopped("w2")

    assert sample(registry, "aegis_database_up") == 1
    assert sample(registry, "aegis_queue_depth", queue="a", state="QUEUED") == 1
    assert sample(registry, "aegis_queue_depth", queue="a", state="RUNNING") == 1
    assert sample(registry, "aegis_queue_depth", queue="a", state="FAILED") == 0
    assert sample(registry, "aegis_workers_alive") == 1
