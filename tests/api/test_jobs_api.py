"""The job endpoints against a live database."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from aegis.models import ErrorInfo
from aegis.queue import Queue
from aegis.settings import QueueSettings
from aegis.store import Store
from aegis.workers import WorkerRegistry


def submit(client: TestClient, **body: object) -> dict[str, object]:
    response = client.post("/jobs", json={"jobType": "echo", **body})
    assert response.status_code == 201, response.text
    job: dict[str, object] = response.json()
    return job


def test_submit_returns_camel_case_job(client: TestClient) -> None:
    response = client.post(
        "/jobs",
        json={
            "jobType": "echo",
            "payload": {"n": 1},
            "queue": "emails",
            "priority": 2,
            "maxRetries": 4,
        },
    )

    assert response.status_code == 201
    job = response.json()
    assert set(job) >= {
        "jobId", "jobType", "payload", "priority", "maxRetries", "status",
        "queue", "attempts", "runAt", "createdAt", "startedAt", "finishedAt",
        "errors", "result", "idempotencyKey", "cancelRequested", "workerId",
        "leaseExpiresAt",
    }  # fmt: skip
    assert job["jobType"] == "echo"
    assert job["payload"] == {"n": 1}
    assert job["queue"] == "emails"
    assert job["priority"] == 2
    assert job["maxRetries"] == 4
    assert job["status"] == "QUEUED"
    assert job["attempts"] == 0
    assert job["errors"] == []


def test_submit_defaults(client: TestClient) -> None:
    job = submit(client)

    assert job["queue"] == "default"
    assert job["priority"] == 5
    assert job["maxRetries"] == 3
    assert job["payload"] == {}


def test_submit_idempotency_key_returns_existing(
    client: TestClient, store: Store
) -> None:
    first = client.post("/jobs", json={"jobType": "echo", "idempotencyKey": "k-1"})
    second = client.post("/jobs", json={"jobType": "echo", "idempotencyKey": "k-1"})

    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["jobId"] == first.json()["jobId"]
    assert store.jobs.count_documents({}) == 1


def test_submit_delay_seconds_sets_run_at(client: TestClient) -> None:
    job = submit(client, delaySeconds=60)

    created_at = datetime.fromisoformat(str(job["createdAt"]))
    run_at = datetime.fromisoformat(str(job["runAt"]))
    assert abs((run_at - created_at).total_seconds() - 60) < 1


def test_submit_run_at_is_stored(client: TestClient) -> None:
    run_at = datetime(2031, 5, 1, 12, 0, tzinfo=UTC)

    job = submit(client, runAt=run_at.isoformat())

    assert datetime.fromisoformat(str(job["runAt"])) == run_at


def test_get_job_returns_error_history(client: TestClient, queue: Queue) -> None:
    job = queue.enqueue("echo", max_retries=2)
    claimed = queue.claim("w1", ["default"])
    assert claimed is not None
    queue.fail(job.job_id, claimed.token, ErrorInfo("ValueError", "bad input", "tb"))

    response = client.get(f"/jobs/{job.job_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "QUEUED"
    assert body["attempts"] == 1
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert error["errorType"] == "ValueError"
    assert error["message"] == "bad input"
    assert error["attempt"] == 1
    assert error["workerId"] == "w1"


def test_get_job_unknown_is_404(client: TestClient) -> None:
    response = client.get("/jobs/0123456789abcdef01234567")

    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


def test_get_job_malformed_id_is_422(client: TestClient) -> None:
    response = client.get("/jobs/not-an-id")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "jobId"]


def test_list_newest_first_with_cursor(client: TestClient, queue: Queue) -> None:
    ids = [queue.enqueue("echo").job_id for _ in range(7)]

    pages = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        body = client.get("/jobs", params=params).json()
        pages.append([job["jobId"] for job in body["jobs"]])
        cursor = body["nextCursor"]
        if cursor is None:
            break

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [job_id for page in pages for job_id in page] == ids[::-1]


def test_list_filters(client: TestClient, queue: Queue) -> None:
    queue.enqueue("echo", queue="a")
    queue.enqueue("sleep", queue="a")
    cancelled = queue.enqueue("echo", queue="b")
    queue.cancel(cancelled.job_id)

    by_queue = client.get("/jobs", params={"queue": "a"}).json()["jobs"]
    by_type = client.get("/jobs", params={"jobType": "sleep"}).json()["jobs"]
    by_status = client.get("/jobs", params={"status": "CANCELLED"}).json()["jobs"]
    combined = client.get(
        "/jobs", params={"queue": "a", "jobType": "echo", "status": "QUEUED"}
    ).json()["jobs"]

    assert {job["queue"] for job in by_queue} == {"a"}
    assert len(by_queue) == 2
    assert [job["jobType"] for job in by_type] == ["sleep"]
    assert [job["jobId"] for job in by_status] == [cancelled.job_id]
    assert len(combined) == 1


def test_cancel_queued_job(client: TestClient, queue: Queue) -> None:
    job = queue.enqueue("echo")

    response = client.post(f"/jobs/{job.job_id}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"


def test_cancel_running_job_requests_cancel(client: TestClient, queue: Queue) -> None:
    job = queue.enqueue("echo")
    assert queue.claim("w1", ["default"]) is not None

    response = client.post(f"/jobs/{job.job_id}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "RUNNING"
    assert response.json()["cancelRequested"] is True


def test_cancel_terminal_job_is_409(client: TestClient, queue: Queue) -> None:
    job = queue.enqueue("echo")
    queue.cancel(job.job_id)

    response = client.post(f"/jobs/{job.job_id}/cancel")

    assert response.status_code == 409
    assert "already CANCELLED" in response.json()["detail"]


def test_cancel_unknown_job_is_404(client: TestClient) -> None:
    assert client.post("/jobs/0123456789abcdef01234567/cancel").status_code == 404


def test_retry_failed_job(client: TestClient, queue: Queue) -> None:
    job = queue.enqueue("echo", max_retries=0)
    claimed = queue.claim("w1", ["default"])
    assert claimed is not None
    queue.fail(
        job.job_id, claimed.token, ErrorInfo("RuntimeError", "boom"), retryable=False
    )

    response = client.post(f"/jobs/{job.job_id}/retry")

    assert response.status_code == 200
    assert response.json()["status"] == "QUEUED"
    assert response.json()["attempts"] == 0
    assert len(response.json()["errors"]) == 1


def test_retry_queued_job_is_409(client: TestClient, queue: Queue) -> None:
    job = queue.enqueue("echo")

    response = client.post(f"/jobs/{job.job_id}/retry")

    assert response.status_code == 409
    assert "only FAILED jobs" in response.json()["detail"]


def test_retry_unknown_job_is_404(client: TestClient) -> None:
    assert client.post("/jobs/0123456789abcdef01234567/retry").status_code == 404


def test_stats_counts_and_ages(client: TestClient, queue: Queue) -> None:
    queue.enqueue("echo", queue="a")
    queue.enqueue("echo", queue="b")
    done = queue.enqueue("echo", queue="a", priority=0)
    claimed = queue.claim("w1", ["a"])
    assert claimed is not None and claimed.job_id == done.job_id
    queue.complete(done.job_id, claimed.token, {"ok": True})
    time.sleep(0.05)

    stats = client.get("/jobs/stats").json()

    assert stats["byStatus"]["QUEUED"] == 2
    assert stats["byStatus"]["SUCCESS"] == 1
    assert stats["byStatus"]["FAILED"] == 0
    assert stats["byQueue"]["a"] == {"QUEUED": 1, "SUCCESS": 1}
    assert stats["byQueue"]["b"] == {"QUEUED": 1}
    assert stats["completedLastMinute"] == 1
    assert stats["oldestQueuedAgeS"] > 0


def test_stats_empty_database(client: TestClient) -> None:
    stats = client.get("/jobs/stats").json()

    assert stats["oldestQueuedAgeS"] is None
    assert sum(stats["byStatus"].values()) == 0


def test_workers_alive_and_dead(client: TestClient, store: Store, queue: Queue) -> None:
    registry = WorkerRegistry(store)
    registry.register("alive-1", ["default"], 2)
    job = queue.enqueue("echo")
    registry.heartbeat("alive-1", [job.job_id])
    registry.register("stopped-1", ["default"], 1)
    registry.mark_stopped("stopped-1")

    workers = {w["workerId"]: w for w in client.get("/jobs/workers").json()}

    assert workers["alive-1"]["status"] == "ALIVE"
    assert workers["alive-1"]["currentJobs"] == [job.job_id]
    assert workers["alive-1"]["heartbeatAgeS"] >= 0
    assert workers["alive-1"]["concurrency"] == 2
    assert workers["stopped-1"]["status"] == "DEAD"
    assert workers["stopped-1"]["stopped"] is True


def test_requeue_stuck_moves_expired_jobs(client: TestClient, store: Store) -> None:
    short = Queue(store, QueueSettings(lease_ttl_s=0.2, heartbeat_interval_s=0.1))
    retryable = short.enqueue("echo", max_retries=1)
    last_try = short.enqueue("echo", max_retries=0)
    assert short.claim("w1", ["default"]) is not None
    assert short.claim("w1", ["default"]) is not None
    time.sleep(0.4)

    body = client.post("/jobs/requeue-stuck").json()

    assert body["requeued"] == 1
    assert body["failed"] == 1
    assert body["requeuedIds"] == [retryable.job_id]
    assert body["failedIds"] == [last_try.job_id]
    assert short.get(retryable.job_id).state.value == "QUEUED"
    assert short.get(last_try.job_id).state.value == "FAILED"


def test_requeue_stuck_nothing_to_do(client: TestClient, queue: Queue) -> None:
    queue.enqueue("echo")
    assert queue.claim("w1", ["default"]) is not None

    body = client.post("/jobs/requeue-stuck").json()

    assert body == {
        "requeued": 0,
        "failed": 0,
        "cancelled": 0,
        "requeuedIds": [],
        "failedIds": [],
        "cancelledIds": [],
    }


def test_health_endpoints(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_metrics_text_format(client: TestClient, queue: Queue) -> None:
    submit(client, queue="q1")
    queue.enqueue("echo", queue="q1")
    WorkerRegistry(queue.store).register("w-metrics", ["q1"], 1)

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'aegis_jobs_enqueued_total{job_type="echo",queue="q1"} 1.0' in text
    assert 'aegis_queue_depth{queue="q1",state="QUEUED"} 2.0' in text
    assert 'aegis_queue_depth{queue="q1",state="RUNNING"} 0.0' in text
    assert "aegis_workers_alive 1.0" in text
    assert "aegis_database_up 1.0" in text


def test_openapi_lists_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert set(paths) >= {
        "/jobs", "/jobs/{jobId}", "/jobs/{jobId}/cancel", "/jobs/{jobId}/retry",
        "/jobs/stats", "/jobs/workers", "/jobs/requeue-stuck", "/healthz",
        "/readyz", "/metrics",
    }  # fmt: skip


def test_run_at_in_past_is_claimable(client: TestClient, queue: Queue) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    job = submit(client, runAt=past.isoformat())

    claimed = queue.claim("w1", ["default"])

    assert claimed is not None
    assert claimed.job_id == job["jobId"]
