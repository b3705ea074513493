"""Bearer-token checks on write endpoints."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from aegis.queue import Queue
from aegis.settings import QueueSettings
from aegis.store import Store
from tests.api.conftest import TOKEN, make_app

WRITE_CALLS = [
    ("/jobs", {"jobType": "echo"}),
    ("/jobs/{job_id}/cancel", None),
    ("/jobs/{job_id}/retry", None),
    ("/jobs/requeue-stuck", None),
]


@pytest.mark.parametrize(("path", "body"), WRITE_CALLS)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": f"Bearer {TOKEN}x"},
    ],
    ids=["missing", "wrong", "basic scheme", "no scheme", "token plus one"],
)
def test_write_rejected_without_valid_token(
    auth_client: TestClient,
    queue: Queue,
    path: str,
    body: object,
    headers: dict[str, str],
) -> None:
    job = queue.enqueue("echo")

    response = auth_client.post(
        path.format(job_id=job.job_id), json=body, headers=headers
    )

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in response.json()["detail"]
    assert queue.get(job.job_id).state.value == "QUEUED"
    assert queue.store.jobs.count_documents({}) == 1


def test_write_accepted_with_token(auth_client: TestClient, queue: Queue) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}

    submitted = auth_client.post("/jobs", json={"jobType": "echo"}, headers=headers)
    job_id = submitted.json()["jobId"]
    cancelled = auth_client.post(f"/jobs/{job_id}/cancel", headers=headers)
    recovered = auth_client.post("/jobs/requeue-stuck", headers=headers)

    assert submitted.status_code == 201
    assert cancelled.status_code == 200
    assert recovered.status_code == 200


@pytest.mark.parametrize(
    "path", ["/jobs", "/jobs/stats", "/jobs/workers", "/healthz", "/readyz", "/metrics"]
)
def test_reads_need_no_token(auth_client: TestClient, path: str) -> None:
    assert auth_client.get(path).status_code == 200


def test_no_token_allows_writes(client: TestClient) -> None:
    assert client.post("/jobs", json={"jobType": "echo"}).status_code == 201


def test_empty_token_disables_check(store: Store, fast_settings: QueueSettings) -> None:
    app = make_app(store, fast_settings, token="")

    with TestClient(app) as client:
        response = client.post("/jobs", json={"jobType": "echo"})

    assert response.status_code == 201


def test_missing_token_logs_warning(
    store: Store, fast_settings: QueueSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aegis.api")

    with TestClient(make_app(store, fast_settings)):
        pass

    assert "AEGIS_API_TOKEN is not set" in caplog.text


def test_token_never_logged(
    store: Store, fast_settings: QueueSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app(store, fast_settings, token=TOKEN)

    with TestClient(app, raise_server_exceptions=False) as client:
        client.post(
            "/jobs", json={"jobType": "echo"}, headers={"Authorization": "Bearer nope"}
        )
        client.post(
            "/jobs",
            json={"jobType": "echo"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )

    assert "AEGIS_API_TOKEN is not set" not in caplog.text
    assert TOKEN not in caplog.text
    assert "nope" not in caplog.text
