"""Workers as real processes: crashes, pauses, graceful stops, cancellation."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from bson import ObjectId
from pymongo.errors import OperationFailure

from aegis import devdb
from aegis.handlers import HandlerRegistry, JobContext
from aegis.models import Job, JobState
from aegis.queue import Queue
from aegis.settings import QueueSettings
from aegis.store import Store, connect
from aegis.worker import Worker
from aegis.workers import WorkerRegistry

WORKER_FLAGS = [
    "--lease-ttl", "2",
    "--heartbeat-interval", "0.5",
    "--recovery-interval", "0.5",
    "--poll-interval", "0.2",
    "--backoff-base", "0.2",
]  # fmt: skip


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


class WorkerProcesses:
    """Starts `python -m aegis worker` children and ends them all afterwards."""

    def __init__(self, uri: str, db_name: str, log_dir: Path) -> None:
        self.uri = uri
        self.db_name = db_name
        self.log_dir = log_dir
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        log_file = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115
        child = subprocess.Popen(
            [sys.executable, "-m", "aegis", "worker", "--mongodb-uri", self.uri,
             "--db", self.db_name, "--worker-id", name, *WORKER_FLAGS, *extra],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.children.append(child)
        return child

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text()

    def end_all(self) -> None:
        for child in self.children:
            if child.poll() is None:
                os.kill(child.pid, signal.SIGCONT)
                child.kill()
            child.wait()


@pytest.fixture
def workers(mongo_uri: str, store: Store, tmp_path: Path) -> Iterator[WorkerProcesses]:
    processes = WorkerProcesses(mongo_uri, store.db.name, tmp_path)
    yield processes
    processes.end_all()


def job_state(queue: Queue, job_id: str) -> JobState:
    return queue.get(job_id).state


def test_worker_runs_jobs_and_reports_failures(queue: Queue, store: Store) -> None:
    handlers = HandlerRegistry()

    @handlers.handler("double")
    def double(ctx: JobContext) -> int:
        return int(ctx.payload["n"]) * 2

    @handlers.handler("broken")
    def broken(ctx: JobContext) -> None:
        raise ValueError("bad input")

    ok = queue.enqueue("double", {"n": 21})
    bad = queue.enqueue("broken", max_retries=0)
    unknown = queue.enqueue("missing", max_retries=0)
    worker = Worker(queue, handlers, queues=["default"], registry=WorkerRegistry(store))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(
            lambda: all(
                queue.get(j.job_id).state.is_terminal for j in (ok, bad, unknown)
            ),
            30,
            "all three jobs to end",
        )
    finally:
        worker.stop()
        thread.join(30)

    assert queue.get(ok.job_id).result == 42
    assert queue.get(bad.job_id).state is JobState.FAILED
    assert queue.get(bad.job_id).errors[0].message == "bad input"
    assert "ValueError" in (queue.get(bad.job_id).errors[0].traceback or "")
    assert queue.get(unknown.job_id).errors[0].error_type == "UnknownJobType"
    assert worker.stats.succeeded == 1
    assert worker.stats.failed == 2
    assert WorkerRegistry(store).list(dead_after_s=5)[0].stopped is True


def test_killed_worker_job_is_recovered(queue: Queue, workers: WorkerProcesses) -> None:
    # Given a worker that dies by SIGKILL in the middle of a job.
    job = queue.enqueue("sleep", {"seconds": 3}, max_retries=2)
    victim = workers.start("victim")
    wait_for(lambda: job_state(queue, job.job_id) is JobState.RUNNING, 30, "the claim")
    victim.kill()
    victim.wait()

    # When a second worker runs, it recovers the expired lease and reruns the job.
    workers.start("rescuer")
    wait_for(lambda: job_state(queue, job.job_id) is JobState.SUCCESS, 60, "the rerun")

    # Then the job succeeded under the second token.
    final = queue.get(job.job_id)
    assert final.token == 2
    assert final.attempts == 2
    assert final.worker_id == "rescuer"
    assert final.errors[0].error_type == "LeaseExpired"
    assert final.errors[0].worker_id == "victim"


def test_retry_cap_ends_job_killed_twice(
    queue: Queue, workers: WorkerProcesses
) -> None:
    job = queue.enqueue("sleep", {"seconds": 30}, max_retries=1)
    for attempt in (1, 2):
        victim = workers.start(f"victim-{attempt}")
        wait_for(
            lambda a=attempt: (
                queue.get(job.job_id).token == a  # type: ignore[misc]
                and job_state(queue, job.job_id) is JobState.RUNNING
            ),
            30,
            f"claim {attempt}",
        )
        victim.kill()
        victim.wait()

    # Only recovery runs now: no worker may claim the job again.
    deadline = time.monotonic() + 30
    while (
        job_state(queue, job.job_id) is JobState.RUNNING and time.monotonic() < deadline
    ):
        queue.recover()
        time.sleep(0.2)

    final = queue.get(job.job_id)
    assert final.state is JobState.FAILED
    assert final.attempts == 2
    assert [e.error_type for e in final.errors] == ["LeaseExpired", "LeaseExpired"]


def test_paused_worker_cannot_commit(queue: Queue, workers: WorkerProcesses) -> None:
    # Given a worker frozen by SIGSTOP mid-job for longer than its lease.
    job = queue.enqueue("sleep", {"seconds": 1.5})
    zombie = workers.start("zombie")
    wait_for(lambda: job_state(queue, job.job_id) is JobState.RUNNING, 30, "the claim")
    os.kill(zombie.pid, signal.SIGSTOP)

    # When another worker recovers and finishes the job, and the zombie wakes.
    workers.start("rescuer")
    wait_for(lambda: job_state(queue, job.job_id) is JobState.SUCCESS, 60, "the rescue")
    os.kill(zombie.pid, signal.SIGCONT)
    time.sleep(3)

    # Then only the rescuer's completion counts, and the zombie logs its lost lease.
    final = queue.get(job.job_id)
    assert final.worker_id == "rescuer"
    assert final.token == 2
    zombie_log = workers.log("zombie")
    assert "lease lost" in zombie_log
    assert "succeeded" not in zombie_log


def test_sigterm_lets_running_job_finish(
    queue: Queue, workers: WorkerProcesses
) -> None:
    job = queue.enqueue("sleep", {"seconds": 1.5})
    later = queue.enqueue("sleep", {"seconds": 0.1})
    worker = workers.start("draining", "--grace-period", "10")
    wait_for(lambda: job_state(queue, job.job_id) is JobState.RUNNING, 30, "the claim")

    worker.send_signal(signal.SIGTERM)

    assert worker.wait(30) == 0
    assert job_state(queue, job.job_id) is JobState.SUCCESS
    assert job_state(queue, later.job_id) is JobState.QUEUED, (
        "stopped claiming after SIGTERM"
    )


def test_sigterm_releases_job_after_grace(
    queue: Queue, workers: WorkerProcesses
) -> None:
    job = queue.enqueue("sleep", {"seconds": 30})
    worker = workers.start("impatient", "--grace-period", "0.5")
    wait_for(lambda: job_state(queue, job.job_id) is JobState.RUNNING, 30, "the claim")

    worker.send_signal(signal.SIGTERM)

    assert worker.wait(30) == 0
    released = queue.get(job.job_id)
    assert released.state is JobState.QUEUED
    assert released.attempts == 0, "a release must not spend an attempt"
    assert "released" in workers.log("impatient")


def test_running_job_cancelled_at_heartbeat(
    queue: Queue, workers: WorkerProcesses
) -> None:
    job = queue.enqueue("sleep", {"seconds": 30})
    workers.start("canceller")
    wait_for(lambda: job_state(queue, job.job_id) is JobState.RUNNING, 30, "the claim")

    queue.cancel(job.job_id)

    wait_for(
        lambda: job_state(queue, job.job_id) is JobState.CANCELLED, 30, "the cancel"
    )


def test_lease_lost_is_logged_with_ids(
    queue: Queue, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    settings = QueueSettings(
        lease_ttl_s=1.0, heartbeat_interval_s=0.3, recovery_interval_s=60
    )
    slow_queue = Queue(store, settings)
    handlers = HandlerRegistry()
    release = threading.Event()

    @handlers.handler("stuck")
    def stuck(ctx: JobContext) -> None:
        release.wait(10)

    job = slow_queue.enqueue("stuck")
    worker = Worker(slow_queue, handlers, queues=["default"], worker_id="w-log")
    thread = threading.Thread(target=worker.run)
    caplog.set_level(logging.INFO, logger="aegis")
    thread.start()
    try:
        wait_for(
            lambda: job_state(queue, job.job_id) is JobState.RUNNING, 10, "the claim"
        )
        # Another process takes the job over: bump the token as a new claim would.
        store.jobs.update_one({"_id": job.id}, {"$inc": {"token": 1}})
        wait_for(lambda: worker.stats.lease_lost == 1, 10, "the lost lease")
    finally:
        release.set()
        worker.stop()
        thread.join(30)

    lost = [r.getMessage() for r in caplog.records if "lease lost" in r.getMessage()]
    assert lost, "no lease-lost log line"
    assert f"job {job.job_id} attempt 1 token 1 worker w-log" in lost[0]
    assert worker.stats.succeeded == 0


class RejectingCompleteQueue(Queue):
    """A queue whose server rejects every completion, as with a document
    grown too large: the write fails the same way each time it is sent."""

    def complete(
        self, job_id: str | ObjectId, token: int, result: object = None
    ) -> Job:
        raise OperationFailure("resulting document is too large", code=17419)


def test_rejected_completion_fails_attempt(store: Store) -> None:
    settings = QueueSettings(lease_ttl_s=5, heartbeat_interval_s=1, backoff_base_s=0.1)
    queue = RejectingCompleteQueue(store, settings)
    job = queue.enqueue("echo", max_retries=0)
    handlers = HandlerRegistry()
    handlers.register("echo", lambda ctx: ctx.payload)
    worker = Worker(queue, handlers, queues=["default"])
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(lambda: queue.get(job.job_id).state.is_terminal, 20, "the failure")
    finally:
        worker.stop()
        thread.join(30)

    final = queue.get(job.job_id)
    assert final.state is JobState.FAILED
    assert final.errors[-1].error_type == "ResultNotStored"
    assert "too large" in final.errors[-1].message


class SlowReplyQueue(Queue):
    """A queue whose claim replies arrive after the lease ran out."""

    def claim(self, worker_id: str, queues: Sequence[str]) -> Job | None:
        job = super().claim(worker_id, queues)
        if job is not None:
            time.sleep(self.settings.lease_ttl_s)
        return job


def test_late_claim_reply_is_given_back(store: Store) -> None:
    settings = QueueSettings(lease_ttl_s=1.5, heartbeat_interval_s=0.5)
    queue = SlowReplyQueue(store, settings)
    handlers = HandlerRegistry()
    ran = threading.Event()

    @handlers.handler("probe")
    def probe(ctx: JobContext) -> None:
        ran.set()

    job = queue.enqueue("probe", max_retries=0)
    worker = Worker(queue, handlers, queues=["default"], run_recovery=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(lambda: worker.stats.lease_lost >= 1, 20, "the late claim")
    finally:
        worker.stop(abort=True)
        thread.join(30)

    assert not ran.is_set(), "the handler ran after the lease deadline"
    final = queue.get(job.job_id)
    assert final.attempts <= 1
    assert final.state in (JobState.QUEUED, JobState.RUNNING)


def test_worker_waits_for_database_to_start(tmp_path: Path) -> None:
    # Given a worker started before any server listens on its port.
    server = devdb.pick_server()
    env = {**os.environ, "AEGIS_SERVER_SELECTION_TIMEOUT_S": "0.5"}
    env.pop("MONGODB_URI", None)
    log_path = tmp_path / "early.log"
    with open(log_path, "wb") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "aegis", "worker", "--mongodb-uri", server.uri,
             "--db", "early", "--worker-id", "early", *WORKER_FLAGS],
            stdout=log_file, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        wait_for(lambda: "retrying in" in log_path.read_text(), 30, "a retry line")
        assert worker.poll() is None, "the worker exited instead of waiting"

        # When the server comes up, the worker connects and runs a job.
        server.start()
        store = connect(server.uri, "early")
        queue = Queue(store)
        job = queue.enqueue("echo", {"n": 1})
        wait_for(
            lambda: job_state(queue, job.job_id) is JobState.SUCCESS, 60, "the job"
        )
        store.close()
    finally:
        worker.kill()
        worker.wait()
        server.cleanup()
