"""Queue operations against the live server: one behaviour per test."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from bson import ObjectId

from aegis.errors import (
    InvalidJob,
    InvalidTransition,
    JobNotFound,
    LeaseLost,
    PayloadTooLarge,
)
from aegis.models import ErrorInfo, JobState
from aegis.queue import JobSpec, Queue
from aegis.settings import QueueSettings
from aegis.store import Store
from aegis.validation import MAX_PAYLOAD_BYTES

BOOM = ErrorInfo("RuntimeError", "boom")


def nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


def expire_lease(store: Store, job_id: str) -> None:
    """Move a running job's lease into the past, as if its worker stalled."""
    past = store.server_time() - timedelta(seconds=5)
    store.jobs.update_one(
        {"_id": ObjectId(job_id)}, {"$set": {"lease_expires_at": past}}
    )


def test_enqueue_returns_queued_job(queue: Queue) -> None:
    job = queue.enqueue("echo", {"x": 1}, priority=3, max_retries=2)

    assert job.state is JobState.QUEUED
    assert job.payload == {"x": 1}
    assert job.priority == 3
    assert job.max_retries == 2
    assert job.attempts == 0
    assert job.token == 0
    assert queue.get(job.job_id).seq == job.seq


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"priority": 10}, "priority"),
        ({"priority": -1}, "priority"),
        ({"priority": True}, "priority"),
        ({"max_retries": -1}, "max_retries"),
        ({"queue": ""}, "queue"),
        ({"queue": "bad name"}, "queue"),
        ({"payload": [1, 2]}, "payload"),
        ({"delay_s": -1}, "delay_s"),
        ({"delay_s": 1e12}, "delay_s"),
        ({"payload": nested(91)}, "nested 91 levels"),
        ({"payload": {"a": "\ud800"}}, "cannot be stored"),
        ({"payload": {"a": float("nan")}}, "not a JSON number"),
        ({"payload": {"a": [float("inf")]}}, "not a JSON number"),
        ({"run_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))}, "run_at"),
        ({"idempotency_key": ""}, "idempotency key"),
    ],
)
def test_enqueue_rejects_invalid_arguments(
    queue: Queue, store: Store, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidJob, match=message):
        queue.enqueue("echo", **kwargs)  # type: ignore[arg-type]

    assert store.jobs.count_documents({}) == 0
    assert store.counters.count_documents({}) == 0, "a rejected enqueue used a seq"


def test_enqueue_rejects_payload_too_large(queue: Queue, store: Store) -> None:
    with pytest.raises(PayloadTooLarge, match="bytes"):
        queue.enqueue("echo", {"blob": "x" * (MAX_PAYLOAD_BYTES + 1)})

    assert store.jobs.count_documents({}) == 0


def test_enqueue_stores_dollar_strings_verbatim(queue: Queue) -> None:
    job = queue.enqueue("echo", {"field": "$state", "nested": {"$x": "$$NOW"}})

    assert queue.get(job.job_id).payload == {
        "field": "$state",
        "nested": {"$x": "$$NOW"},
    }


def test_idempotency_key_returns_existing_job(queue: Queue, store: Store) -> None:
    first = queue.enqueue("echo", {"n": 1}, idempotency_key="order-17")
    second = queue.enqueue("echo", {"n": 2}, idempotency_key="order-17")

    assert second.id == first.id
    assert second.payload == {"n": 1}
    assert store.jobs.count_documents({}) == 1


def test_enqueue_many_keeps_order_and_dedupes(queue: Queue) -> None:
    existing = queue.enqueue("echo", idempotency_key="k")
    jobs = queue.enqueue_many(
        [
            JobSpec("echo", {"i": 0}),
            JobSpec("echo", idempotency_key="k"),
            JobSpec("echo", {"i": 2}),
        ]
    )

    assert jobs[1].id == existing.id
    assert jobs[0].seq < jobs[2].seq


def test_claim_returns_none_when_empty(queue: Queue) -> None:
    assert queue.claim("w1", ["default"]) is None


def test_claim_orders_by_priority_then_fifo(queue: Queue) -> None:
    low_first = queue.enqueue("echo", priority=7)
    high_first = queue.enqueue("echo", priority=1)
    low_second = queue.enqueue("echo", priority=7)
    high_second = queue.enqueue("echo", priority=1)

    claimed = [queue.claim("w1", ["default"]) for _ in range(4)]

    assert [job.id for job in claimed if job] == [
        high_first.id,
        high_second.id,
        low_first.id,
        low_second.id,
    ]


def test_claim_only_from_listed_queues(queue: Queue) -> None:
    queue.enqueue("echo", queue="emails")

    assert queue.claim("w1", ["reports"]) is None
    assert queue.claim("w1", ["reports", "emails"]) is not None


def test_claim_sets_lease_token_and_attempt(
    queue: Queue, fast_settings: QueueSettings
) -> None:
    queue.enqueue("echo")

    job = queue.claim("w1", ["default"])

    assert job is not None
    assert job.state is JobState.RUNNING
    assert job.token == 1
    assert job.attempts == 1
    assert job.worker_id == "w1"
    assert job.claimed_at is not None and job.lease_expires_at is not None
    lease_s = (job.lease_expires_at - job.claimed_at).total_seconds()
    assert lease_s == pytest.approx(fast_settings.lease_ttl_s, abs=0.01)


def test_delayed_job_waits_for_run_at(queue: Queue) -> None:
    queue.enqueue("echo", delay_s=1.5)

    assert queue.claim("w1", ["default"]) is None
    time.sleep(1.7)
    assert queue.claim("w1", ["default"]) is not None


def test_complete_stores_result(queue: Queue) -> None:
    queue.enqueue("echo")
    job = queue.claim("w1", ["default"])
    assert job is not None

    done = queue.complete(job.job_id, job.token, {"ok": "$literal"})

    assert done.state is JobState.SUCCESS
    assert done.result == {"ok": "$literal"}
    assert done.finished_at is not None
    assert done.lease_expires_at is None


def test_stale_token_cannot_write(queue: Queue, store: Store) -> None:
    # Given a job claimed twice: the first lease expired and was recovered.
    queue.enqueue("echo")
    first = queue.claim("w1", ["default"])
    assert first is not None
    expire_lease(store, first.job_id)
    assert queue.recover().requeued == [(first.job_id, 1)]
    second = queue.claim("w2", ["default"])
    assert second is not None and second.token == 2

    # When the first worker writes with its old token, every write is rejected.
    for write in (
        lambda: queue.renew(first.job_id, first.token),
        lambda: queue.complete(first.job_id, first.token, "late"),
        lambda: queue.fail(first.job_id, first.token, BOOM),
        lambda: queue.release(first.job_id, first.token),
        lambda: queue.finish_cancelled(first.job_id, first.token),
    ):
        with pytest.raises(LeaseLost):
            write()

    # Then the job still belongs to the second claim, unchanged.
    current = queue.get(first.job_id)
    assert current.state is JobState.RUNNING
    assert current.token == 2
    assert current.worker_id == "w2"
    assert current.result is None


def test_expired_lease_rejects_writes_before_recovery(
    queue: Queue, store: Store
) -> None:
    queue.enqueue("echo")
    job = queue.claim("w1", ["default"])
    assert job is not None
    expire_lease(store, job.job_id)

    with pytest.raises(LeaseLost):
        queue.complete(job.job_id, job.token)

    assert queue.get(job.job_id).state is JobState.RUNNING


def test_renew_extends_lease(queue: Queue) -> None:
    queue.enqueue("echo")
    job = queue.claim("w1", ["default"])
    assert job is not None and job.lease_expires_at is not None
    time.sleep(0.3)

    lease = queue.renew(job.job_id, job.token)

    assert lease.lease_expires_at > job.lease_expires_at
    assert lease.cancel_requested is False


def test_fail_retries_with_backoff(queue: Queue, fast_settings: QueueSettings) -> None:
    queue.enqueue("echo", max_retries=3)
    job = queue.claim("w1", ["default"])
    assert job is not None

    retried = queue.fail(job.job_id, job.token, BOOM)

    assert retried.state is JobState.QUEUED
    assert retried.errors[-1].error_type == "RuntimeError"
    assert retried.errors[-1].attempt == 1
    assert retried.errors[-1].worker_id == "w1"
    assert retried.errors[-1].at is not None
    delay_s = (retried.run_at - retried.errors[-1].at).total_seconds()
    # First retry: base delay times a jitter factor in [0.5, 1).
    assert (
        0.5 * fast_settings.backoff_base_s - 0.01
        <= delay_s
        <= fast_settings.backoff_base_s
    )
    assert queue.claim("w1", ["default"]) is None


def test_backoff_grows_and_is_capped(store: Store) -> None:
    settings = QueueSettings(
        lease_ttl_s=5, heartbeat_interval_s=1, backoff_base_s=0.1, backoff_max_s=0.3
    )
    queue = Queue(store, settings)
    queue.enqueue("echo", max_retries=5)
    delays_s = []
    for _ in range(4):
        job = None
        while job is None:
            job = queue.claim("w1", ["default"])
            time.sleep(0.05)
        failed = queue.fail(job.job_id, job.token, BOOM)
        delays_s.append((failed.run_at - failed.errors[-1].at).total_seconds())  # type: ignore[operator]

    # Attempt n waits min(max, base * 2**(n-1)) times a factor in [0.5, 1).
    for attempt, delay_s in enumerate(delays_s, start=1):
        ceiling_s = min(0.3, 0.1 * 2 ** (attempt - 1))
        assert 0.5 * ceiling_s - 0.01 <= delay_s <= ceiling_s + 0.01, (
            attempt,
            delays_s,
        )


def test_fail_at_cap_ends_failed(queue: Queue) -> None:
    queue.enqueue("echo", max_retries=0)
    job = queue.claim("w1", ["default"])
    assert job is not None

    failed = queue.fail(job.job_id, job.token, BOOM)

    assert failed.state is JobState.FAILED
    assert failed.finished_at is not None


def test_fail_not_retryable_ends_failed(queue: Queue) -> None:
    queue.enqueue("echo", max_retries=5)
    job = queue.claim("w1", ["default"])
    assert job is not None

    assert (
        queue.fail(job.job_id, job.token, BOOM, retryable=False).state
        is JobState.FAILED
    )


def test_recover_requeues_then_fails_at_cap(queue: Queue, store: Store) -> None:
    queue.enqueue("echo", max_retries=1)

    first = queue.claim("w1", ["default"])
    assert first is not None
    expire_lease(store, first.job_id)
    assert queue.recover().requeued == [(first.job_id, 1)]

    second = queue.claim("w1", ["default"])
    assert second is not None and second.attempts == 2
    expire_lease(store, second.job_id)
    result = queue.recover()

    assert result.failed == [(second.job_id, 2)]
    final = queue.get(second.job_id)
    assert final.state is JobState.FAILED
    assert final.attempts == 2
    assert [e.error_type for e in final.errors] == ["LeaseExpired", "LeaseExpired"]


def test_recover_leaves_live_leases(queue: Queue) -> None:
    queue.enqueue("echo")
    assert queue.claim("w1", ["default"]) is not None

    assert queue.recover().count == 0


def test_recover_cancels_job_with_cancel_requested(queue: Queue, store: Store) -> None:
    queue.enqueue("echo", max_retries=3)
    job = queue.claim("w1", ["default"])
    assert job is not None
    queue.cancel(job.job_id)
    expire_lease(store, job.job_id)

    result = queue.recover()

    assert result.cancelled == [(job.job_id, 1)]
    assert result.requeued == []
    assert result.at is not None
    assert queue.get(job.job_id).state is JobState.CANCELLED


def test_every_write_stamps_updated_at(queue: Queue) -> None:
    queue.enqueue("echo")
    job = queue.claim("w1", ["default"])
    assert job is not None and job.updated_at is not None

    released = queue.release(job.job_id, job.token)

    assert released.updated_at is not None
    assert released.updated_at >= job.updated_at


def test_release_requeues_and_refunds_attempt(queue: Queue) -> None:
    queue.enqueue("echo", max_retries=0)
    job = queue.claim("w1", ["default"])
    assert job is not None

    released = queue.release(job.job_id, job.token)

    assert released.state is JobState.QUEUED
    assert released.attempts == 0
    again = queue.claim("w2", ["default"])
    assert again is not None and again.token == 2


def test_cancel_queued_job(queue: Queue) -> None:
    job = queue.enqueue("echo")

    assert queue.cancel(job.job_id).state is JobState.CANCELLED
    assert queue.claim("w1", ["default"]) is None


def test_cancel_running_job_is_seen_at_renewal(queue: Queue) -> None:
    queue.enqueue("echo")
    job = queue.claim("w1", ["default"])
    assert job is not None

    requested = queue.cancel(job.job_id)

    assert requested.state is JobState.RUNNING
    assert requested.cancel_requested is True
    assert queue.renew(job.job_id, job.token).cancel_requested is True
    assert queue.finish_cancelled(job.job_id, job.token).state is JobState.CANCELLED


def test_cancel_requested_job_does_not_retry(queue: Queue) -> None:
    queue.enqueue("echo", max_retries=3)
    job = queue.claim("w1", ["default"])
    assert job is not None
    queue.cancel(job.job_id)

    assert queue.fail(job.job_id, job.token, BOOM).state is JobState.CANCELLED


def test_cancel_terminal_job_is_rejected(queue: Queue) -> None:
    queue.enqueue("echo")
    job = queue.claim("w1", ["default"])
    assert job is not None
    queue.complete(job.job_id, job.token)

    with pytest.raises(InvalidTransition, match="SUCCESS"):
        queue.cancel(job.job_id)


def test_retry_requeues_failed_job(queue: Queue) -> None:
    queue.enqueue("echo", max_retries=0)
    job = queue.claim("w1", ["default"])
    assert job is not None
    queue.fail(job.job_id, job.token, BOOM)

    requeued = queue.retry(job.job_id)

    assert requeued.state is JobState.QUEUED
    assert requeued.attempts == 0
    assert len(requeued.errors) == 1


def test_retry_rejects_non_failed_job(queue: Queue) -> None:
    job = queue.enqueue("echo")

    with pytest.raises(InvalidTransition, match="QUEUED"):
        queue.retry(job.job_id)


def test_get_unknown_and_malformed_ids(queue: Queue) -> None:
    with pytest.raises(JobNotFound):
        queue.get("0123456789abcdef01234567")
    with pytest.raises(InvalidJob, match="24 hexadecimal"):
        queue.get("not-an-id")


def test_next_expiry_reports_earliest_lease(
    queue: Queue, store: Store, fast_settings: QueueSettings
) -> None:
    assert queue.next_expiry_s() is None
    queue.enqueue("echo")
    queue.enqueue("echo")
    first = queue.claim("w1", ["default"])
    assert first is not None
    assert 0 < (queue.next_expiry_s() or 0) <= fast_settings.lease_ttl_s

    expire_lease(store, first.job_id)
    assert queue.claim("w1", ["default"]) is not None

    expiry_s = queue.next_expiry_s()
    assert expiry_s is not None and expiry_s < 0
