"""End to end: `aegis serve` and two `aegis worker` processes, jobs over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aegis.devdb import free_port

START_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
JOB_COUNT = 12


class Processes:
    """Subprocesses this test started; each is stopped by its own PID."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log_file = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "aegis", *args],
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log_file.close()
        self.started.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def processes(
    tmp_path: Path, mongo_uri: str, db_name: str, store: object
) -> Iterator[Processes]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AEGIS_") and key != "MONGODB_URI"
    }
    env.update({"MONGODB_URI": mongo_uri, "AEGIS_DB": db_name})
    started = Processes(tmp_path, env)
    try:
        yield started
    finally:
        started.stop_all()


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"process for {url} exited early"
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {START_TIMEOUT_S} s")


@pytest.mark.slow
def test_serve_and_two_workers_run_jobs(processes: Processes) -> None:
    # Given the API and two workers as separate processes
    api_port = free_port()
    metrics_port = free_port()
    api = processes.start(
        "api", "serve", "--host", "127.0.0.1", "--port", str(api_port)
    )
    worker_flags = ["--poll-interval", "0.2", "--concurrency", "2"]
    first = processes.start(
        "worker-1", "worker", "--worker-id", "e2e-1",
        "--metrics-port", str(metrics_port), *worker_flags,
    )  # fmt: skip
    processes.start("worker-2", "worker", "--worker-id", "e2e-2", *worker_flags)
    base = f"http://127.0.0.1:{api_port}"
    wait_until_up(f"{base}/readyz", api)
    wait_until_up(f"http://127.0.0.1:{metrics_port}/metrics", first)

    # When jobs are submitted over HTTP
    with httpx.Client(base_url=base, timeout=10.0) as client:
        ids = []
        for n in range(JOB_COUNT):
            response = client.post(
                "/jobs", json={"jobType": "echo", "payload": {"n": n}}
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["jobId"])

        # Then every job reaches SUCCESS with its payload as the result
        deadline = time.monotonic() + RUN_TIMEOUT_S
        jobs: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            jobs = [client.get(f"/jobs/{job_id}").json() for job_id in ids]
            if all(job["status"] == "SUCCESS" for job in jobs):
                break
            time.sleep(0.3)
        assert [job["status"] for job in jobs] == ["SUCCESS"] * JOB_COUNT
        assert [job["result"] for job in jobs] == [{"n": n} for n in range(JOB_COUNT)]

        stats = client.get("/jobs/stats").json()
        workers = {w["workerId"]: w for w in client.get("/jobs/workers").json()}
        api_metrics = client.get("/metrics").text

    assert stats["byStatus"]["SUCCESS"] == JOB_COUNT
    assert workers["e2e-1"]["status"] == "ALIVE"
    assert workers["e2e-2"]["status"] == "ALIVE"
    assert (
        f'aegis_jobs_enqueued_total{{job_type="echo",queue="default"}} {JOB_COUNT}.0'
        in api_metrics
    )
    worker_metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    assert "aegis_claim_latency_seconds_count" in worker_metrics
    assert "aegis_jobs_succeeded_total" in worker_metrics

    # And every process stops cleanly on SIGTERM
    processes.stop_all()
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete.
    assert api.returncode in (0, -signal.SIGTERM)
    assert [process.returncode for process in processes.started[1:]] == [0, 0]
    assert "Finished server process" in processes.log("api")
    assert "stopped; claimed" in processes.log("worker-1")
    assert "serving the API on http://127.0.0.1" in processes.log("api")
