"""The API returns 503, not a stack trace, while the database is down."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from aegis import devdb
from aegis.api import create_app
from aegis.settings import ApiSettings, QueueSettings, StoreSettings


def test_database_down_returns_503() -> None:
    # Given an API on a database server this test owns
    server = devdb.pick_server()
    server.start()
    store_settings = StoreSettings().model_copy(
        update={
            "mongodb_uri": server.uri,
            "db_name": f"aegis_outage_{uuid.uuid4().hex[:8]}",
            "server_selection_timeout_s": 0.5,
        }
    )
    app = create_app(ApiSettings(), store_settings, QueueSettings())
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            submitted = client.post("/jobs", json={"jobType": "echo"})
            assert submitted.status_code == 201
            job_id = submitted.json()["jobId"]

            # When the server stops
            server.stop()

            # Then every database-backed endpoint returns 503 with a message
            calls = [
                client.get("/jobs"),
                client.get(f"/jobs/{job_id}"),
                client.post("/jobs", json={"jobType": "echo"}),
                client.post(f"/jobs/{job_id}/cancel"),
                client.post(f"/jobs/{job_id}/retry"),
                client.get("/jobs/stats"),
                client.get("/jobs/workers"),
                client.post("/jobs/requeue-stuck"),
                client.get("/readyz"),
            ]
            for response in calls:
                assert response.status_code == 503, response.request.url
                assert "database unavailable" in response.json()["detail"]
                assert response.headers["retry-after"] == "5"

            # And the process itself still serves requests
            assert client.get("/healthz").status_code == 200
            metrics = client.get("/metrics")
            assert metrics.status_code == 200
            assert "aegis_database_up 0.0" in metrics.text
    finally:
        server.cleanup()


def test_api_starts_while_database_down() -> None:
    store_settings = StoreSettings().model_copy(
        update={
            "mongodb_uri": devdb.uri_for_port(devdb.free_port()),
            "server_selection_timeout_s": 0.3,
        }
    )
    app = create_app(ApiSettings(), store_settings, QueueSettings())

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
