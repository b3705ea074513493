"""Bad input gets a 4xx naming the field, and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from aegis.settings import QueueSettings
from aegis.store import Store
from aegis.validation import MAX_PAYLOAD_BYTES
from tests.api.conftest import make_app

BAD_BODIES: list[tuple[str, dict[str, Any], list[Any]]] = [
    ("missing job type", {}, ["body", "jobType"]),
    ("job type not a string", {"jobType": 5}, ["body", "jobType"]),
    ("job type with spaces", {"jobType": "no spaces"}, ["body", "jobType"]),
    ("job type empty", {"jobType": ""}, ["body", "jobType"]),
    ("priority above 9", {"jobType": "echo", "priority": 10}, ["body", "priority"]),
    ("priority below 0", {"jobType": "echo", "priority": -1}, ["body", "priority"]),
    ("priority as string", {"jobType": "echo", "priority": "5"}, ["body", "priority"]),
    ("priority as float", {"jobType": "echo", "priority": 1.5}, ["body", "priority"]),
    ("priority as bool", {"jobType": "echo", "priority": True}, ["body", "priority"]),
    ("negative retries", {"jobType": "echo", "maxRetries": -1}, ["body", "maxRetries"]),
    ("retries too high", {"jobType": "echo", "maxRetries": 1001}, ["body", "maxRetries"]),
    ("payload a list", {"jobType": "echo", "payload": [1, 2]}, ["body", "payload"]),
    ("payload a string", {"jobType": "echo", "payload": "x"}, ["body", "payload"]),
    ("payload null", {"jobType": "echo", "payload": None}, ["body", "payload"]),
    ("unknown field", {"jobType": "echo", "colour": "red"}, ["body", "colour"]),
    ("snake case field", {"jobType": "echo", "max_retries": 1}, ["body", "max_retries"]),
    ("queue invalid", {"jobType": "echo", "queue": "a b"}, ["body", "queue"]),
    ("negative delay", {"jobType": "echo", "delaySeconds": -1}, ["body", "delaySeconds"]),
    ("delay too long", {"jobType": "echo", "delaySeconds": 1e12}, ["body", "delaySeconds"]),
    ("delay as string", {"jobType": "echo", "delaySeconds": "10"}, ["body", "delaySeconds"]),
    ("delay as bool", {"jobType": "echo", "delaySeconds": True}, ["body", "delaySeconds"]),
    ("naive run at", {"jobType": "echo", "runAt": "2030-01-01T00:00:00"}, ["body", "runAt"]),
    ("run at a number", {"jobType": "echo", "runAt": 1700000000}, ["body", "runAt"]),
    ("run at not a date", {"jobType": "echo", "runAt": "soon"}, ["body", "runAt"]),
    ("empty idempotency key", {"jobType": "echo", "idempotencyKey": ""}, ["body", "idempotencyKey"]),
    ("long idempotency key", {"jobType": "echo", "idempotencyKey": "k" * 201}, ["body", "idempotencyKey"]),
    (
        "run at and delay",
        {"jobType": "echo", "runAt": "2030-01-01T00:00:00Z", "delaySeconds": 1},
        ["body"],
    ),
    ("body not an object", [1, 2, 3], ["body"]),  # type: ignore[list-item]
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "loc"),
    [(body, loc) for _, body, loc in BAD_BODIES],
    ids=[name for name, _, _ in BAD_BODIES],
)
def test_submit_rejects_bad_body(
    client: TestClient, store: Store, body: Any, loc: list[Any]
) -> None:
    response = client.post("/jobs", json=body)

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert any(error["loc"] == loc for error in detail), detail
    assert all(error["msg"] for error in detail)
    assert store.jobs.count_documents({}) == 0


def test_submit_rejects_invalid_json(client: TestClient, store: Store) -> None:
    response = client.post(
        "/jobs", content=b'{"jobType": ', headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert store.jobs.count_documents({}) == 0


def test_submit_rejects_nan_delay(client: TestClient, store: Store) -> None:
    response = client.post(
        "/jobs",
        content=b'{"jobType": "echo", "delaySeconds": NaN}',
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 422
    assert store.jobs.count_documents({}) == 0


def test_submit_rejects_integer_beyond_bson(client: TestClient, store: Store) -> None:
    response = client.post("/jobs", json={"jobType": "echo", "payload": {"n": 2**70}})

    assert response.status_code == 422
    assert "invalid payload" in response.json()["detail"][0]["msg"]
    assert store.jobs.count_documents({}) == 0


def test_submit_rejects_deep_payload(client: TestClient, store: Store) -> None:
    payload: dict[str, Any] = {}
    level = payload
    for _ in range(100):
        level["a"] = {}
        level = level["a"]

    response = client.post("/jobs", json={"jobType": "echo", "payload": payload})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "payload"]
    assert "nested" in response.json()["detail"][0]["msg"]
    assert store.jobs.count_documents({}) == 0


def test_submit_rejects_payload_over_document_limit(
    client: TestClient, store: Store
) -> None:
    payload = {"blob": "x" * (MAX_PAYLOAD_BYTES + 1)}

    response = client.post("/jobs", json={"jobType": "echo", "payload": payload})

    assert response.status_code == 413
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "payload"]
    assert "maximum" in error["msg"]
    assert store.jobs.count_documents({}) == 0


def test_request_body_over_cap_is_413(
    store: Store, fast_settings: QueueSettings
) -> None:
    app = make_app(store, fast_settings, max_request_body_bytes=1000)
    body = {"jobType": "echo", "payload": {"blob": "x" * 2000}}

    with TestClient(app) as client:
        response = client.post("/jobs", json=body)

    assert response.status_code == 413
    assert "larger than 1000 bytes" in response.json()["detail"]
    assert store.jobs.count_documents({}) == 0


def test_streamed_body_over_cap_is_413(
    store: Store, fast_settings: QueueSettings
) -> None:
    app = make_app(store, fast_settings, max_request_body_bytes=1000)

    def chunks() -> Any:
        yield b'{"jobType": "echo", "payload": {"blob": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}}'

    with TestClient(app) as client:
        response = client.post(
            "/jobs", content=chunks(), headers={"content-type": "application/json"}
        )

    assert response.status_code == 413
    assert store.jobs.count_documents({}) == 0


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"status": "DONE"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": -1}, "cursor"),
        ({"queue": "a b"}, "queue"),
        ({"jobType": "x" * 201}, "jobType"),
    ],
)
def test_list_rejects_bad_query(
    client: TestClient, params: dict[str, Any], name: str
) -> None:
    response = client.get("/jobs", params=params)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", name]


@pytest.mark.parametrize("action", ["cancel", "retry"])
@pytest.mark.parametrize("job_id", ["123", "zz" * 12, "0123456789abcdef012345678"])
def test_actions_reject_malformed_id(
    client: TestClient, action: str, job_id: str
) -> None:
    response = client.post(f"/jobs/{job_id}/{action}")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "jobId"]


def test_list_rejects_cursor_beyond_int64(client: TestClient) -> None:
    response = client.get("/jobs", params={"cursor": 2**63})

    assert response.status_code == 422
    assert "cursor" in response.text


@pytest.mark.parametrize(
    "raw_body",
    [
        '{"jobType": "echo", "payload": {"a": NaN}}',
        '{"jobType": "echo", "payload": {"a": [Infinity]}}',
        '{"jobType": "echo", "payload": {"a": "\\ud800"}}',
        '{"jobType": "echo", "runAt": "0001-01-01T00:00:00+14:00"}',
    ],
    ids=["nan", "infinity", "lone surrogate", "run at before year 1 in UTC"],
)
def test_submit_rejects_unstorable_values(
    client: TestClient, store: Store, raw_body: str
) -> None:
    response = client.post(
        "/jobs", content=raw_body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422, response.text
    assert store.jobs.count_documents({}) == 0
    assert store.counters.count_documents({}) == 0
