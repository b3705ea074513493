"""The queue against a small model: random operation sequences on the live server.

Hypothesis drives enqueue, claim, complete, fail, lease expiry, recovery,
cancellation and stale writes; after every step each job's state, attempts
and token must match the model, and attempts never exceed the cap.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from aegis.errors import InvalidTransition, LeaseLost
from aegis.models import ErrorInfo, JobState
from aegis.queue import Queue
from aegis.settings import QueueSettings
from aegis.store import connect

ERROR = ErrorInfo("ModelError", "failed on purpose")


@dataclass
class ModelJob:
    job_id: str
    priority: int
    seq: int
    max_retries: int
    state: JobState = JobState.QUEUED
    attempts: int = 0
    token: int = 0
    expired: bool = False
    cancel_requested: bool = False

    def end_attempt(self) -> None:
        """Apply the next state after a failed, released or expired attempt."""
        if self.cancel_requested:
            self.state = JobState.CANCELLED
        elif self.attempts < self.max_retries + 1:
            self.state = JobState.QUEUED
        else:
            self.state = JobState.FAILED
        self.expired = False


class QueueMachine(RuleBasedStateMachine):
    uri: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.store = connect(self.uri, f"aegis_model_{uuid.uuid4().hex[:10]}")
        self.store.ensure_indexes()
        # Zero backoff keeps retried jobs runnable at once, like the model.
        settings = QueueSettings(
            lease_ttl_s=60, heartbeat_interval_s=10, backoff_base_s=0, backoff_max_s=0
        )
        self.queue = Queue(self.store, settings)
        self.jobs: dict[str, ModelJob] = {}

    def teardown(self) -> None:
        self.store.client.drop_database(self.store.db.name)
        self.store.close()

    def _running(self, valid: bool) -> list[ModelJob]:
        return [
            j
            for j in self.jobs.values()
            if j.state is JobState.RUNNING and j.expired != valid
        ]

    @rule(priority=st.integers(0, 9), max_retries=st.integers(0, 2))
    def enqueue(self, priority: int, max_retries: int) -> None:
        job = self.queue.enqueue("model", priority=priority, max_retries=max_retries)
        self.jobs[job.job_id] = ModelJob(job.job_id, priority, job.seq, max_retries)

    @rule()
    def claim(self) -> None:
        queued = [j for j in self.jobs.values() if j.state is JobState.QUEUED]
        expected = min(queued, key=lambda j: (j.priority, j.seq), default=None)

        claimed = self.queue.claim("model-worker", ["default"])

        if expected is None:
            assert claimed is None
            return
        assert claimed is not None
        assert claimed.job_id == expected.job_id, "claim broke priority or FIFO order"
        expected.state = JobState.RUNNING
        expected.attempts += 1
        expected.token += 1
        assert claimed.token == expected.token

    @precondition(lambda self: self._running(valid=True))
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self._running(valid=True)))
        self.queue.complete(job.job_id, job.token, {"ok": True})
        job.state = JobState.SUCCESS

    @precondition(lambda self: self._running(valid=True))
    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self._running(valid=True)))
        updated = self.queue.fail(job.job_id, job.token, ERROR)
        job.end_attempt()
        assert updated.state is job.state

    @precondition(lambda self: self._running(valid=True))
    @rule(data=st.data())
    def renew(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self._running(valid=True)))
        lease = self.queue.renew(job.job_id, job.token)
        assert lease.cancel_requested == job.cancel_requested

    @precondition(lambda self: self._running(valid=True))
    @rule(data=st.data())
    def expire_lease(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self._running(valid=True)))
        past = self.store.server_time() - timedelta(seconds=1)
        self.store.jobs.update_one(
            {"_id": self.queue.get(job.job_id).id}, {"$set": {"lease_expires_at": past}}
        )
        job.expired = True

    @precondition(lambda self: self._running(valid=False))
    @rule(data=st.data())
    def write_on_expired_lease(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self._running(valid=False)))
        with pytest.raises(LeaseLost):
            self.queue.complete(job.job_id, job.token)

    @rule()
    def recover(self) -> None:
        expired = self._running(valid=False)
        result = self.queue.recover()
        for job in expired:
            job.end_attempt()
        moved = {
            job_id for job_id, _ in result.requeued + result.failed + result.cancelled
        }
        assert moved == {job.job_id for job in expired}

    @precondition(lambda self: any(j.token > 0 for j in self.jobs.values()))
    @rule(
        data=st.data(),
        operation=st.sampled_from(["renew", "complete", "fail", "release"]),
    )
    def stale_write(self, data: st.DataObject, operation: str) -> None:
        job = data.draw(st.sampled_from([j for j in self.jobs.values() if j.token > 0]))
        stale_token = data.draw(st.integers(0, job.token - 1)) if job.token > 1 else 0
        with pytest.raises(LeaseLost):
            if operation == "renew":
                self.queue.renew(job.job_id, stale_token)
            elif operation == "complete":
                self.queue.complete(job.job_id, stale_token)
            elif operation == "fail":
                self.queue.fail(job.job_id, stale_token, ERROR)
            else:
                self.queue.release(job.job_id, stale_token)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job = data.draw(
            st.sampled_from(sorted(self.jobs.values(), key=lambda j: j.seq))
        )
        if job.state.is_terminal:
            with pytest.raises(InvalidTransition):
                self.queue.cancel(job.job_id)
        elif job.state is JobState.QUEUED:
            assert self.queue.cancel(job.job_id).state is JobState.CANCELLED
            job.state = JobState.CANCELLED
        else:
            assert self.queue.cancel(job.job_id).cancel_requested
            job.cancel_requested = True

    @invariant()
    def database_matches_model(self) -> None:
        docs = {
            str(d["_id"]): d
            for d in self.store.jobs.find({}, {"state": 1, "attempts": 1, "token": 1})
        }
        assert set(docs) == set(self.jobs)
        for job_id, job in self.jobs.items():
            doc = docs[job_id]
            assert doc["state"] == job.state.value, job_id
            assert doc["attempts"] == job.attempts, job_id
            assert doc["token"] == job.token, job_id
            assert doc["attempts"] <= job.max_retries + 1, job_id


def test_queue_matches_model(mongo_uri: str) -> None:
    QueueMachine.uri = mongo_uri
    run_state_machine_as_test(
        QueueMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
