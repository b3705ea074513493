"""The queue classes behind `--break NAME`, each with one deliberate defect.

Each class overrides the `aegis.queue.Queue` operation that it breaks and
nothing else, so comparing the override with the original shows the defect.
Only `harness.worker_process` loads this module.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

import aegis.worker
from aegis.expressions import (
    BELOW_CAP,
    CLAIM_ORDER,
    LEASE_EXPIRED,
    claim_stages,
    claimable_filter,
)
from aegis.models import Job, JobState, RecoveryResult
from aegis.queue import Queue
from aegis.validation import parse_job_id
from harness.breaks import resolve_break

# A lease deadline this many leases long never passes during a run, so the
# worker keeps reporting jobs whose lease it lost.
NO_SELF_CHECK_FRACTION = 1000.0
# The pause between the find and the update of a two-step claim: about one
# round trip to a database on another host, or a short garbage-collector pause.
CLAIM_GAP_S = 0.02
# The retry-cap break's requeue test: it treats the attempt that just
# expired as not counted, so a job at the cap gets one attempt too many.
BELOW_CAP_OFF_BY_ONE = {"$lte": ["$attempts", {"$add": ["$max_retries", 1]}]}


class UnfencedQueue(Queue):
    """`fencing`: renew, complete, fail and release ignore the token and lease."""

    @staticmethod
    def fenced(job_id: str | ObjectId, token: int) -> dict[str, Any]:
        return {"_id": parse_job_id(job_id)}


class TwoStepClaimQueue(Queue):
    """`atomic-claim`: the claim reads the best job, then updates it by `_id`.

    Two workers that read the same job before either updates it both claim
    it, with the same token.
    """

    def claim(self, worker_id: str, queues: Sequence[str]) -> Job | None:
        best = self.store.jobs.find_one(
            claimable_filter(queues), projection={"token": 1}, sort=CLAIM_ORDER
        )
        if best is None:
            return None
        time.sleep(CLAIM_GAP_S)
        doc = self.store.jobs.find_one_and_update(
            {"_id": best["_id"]},
            claim_stages(worker_id, best["token"] + 1, self._new_lease_end()),
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else Job.from_doc(doc)


class _ReorderedClaimQueue(Queue):
    """A `Queue` whose otherwise atomic claim takes jobs in `claim_order`."""

    claim_order: list[tuple[str, int]] = CLAIM_ORDER

    def claim(self, worker_id: str, queues: Sequence[str]) -> Job | None:
        doc = self.store.jobs.find_one_and_update(
            claimable_filter(queues),
            claim_stages(worker_id, {"$add": ["$token", 1]}, self._new_lease_end()),
            sort=self.claim_order,
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else Job.from_doc(doc)


class PriorityBlindQueue(_ReorderedClaimQueue):
    """`priority`: the claim takes the oldest job whatever its priority."""

    claim_order = [("seq", 1)]


class NewestFirstQueue(_ReorderedClaimQueue):
    """`fifo`: within a priority the claim takes the newest job first."""

    claim_order = [("priority", 1), ("seq", -1)]


class UncappedRecoveryQueue(Queue):
    """`retry-cap`: recovery does not count the expired attempt.

    A job whose lease expired on its last allowed attempt is requeued once
    more instead of ending FAILED. Handler failures still respect the cap.
    """

    def recover(self) -> RecoveryResult:
        return self._recover(LEASE_EXPIRED, BELOW_CAP_OFF_BY_ONE)


def client_now() -> datetime:
    """Return this process's wall-clock time, which a clock_skew fault shifts."""
    return datetime.fromtimestamp(time.time(), UTC)


def _ms_until_client_now(field: str) -> dict[str, Any]:
    """Milliseconds from the worker's own time to a date field."""
    return {
        "$dateDiff": {
            "startDate": {"$literal": client_now()},
            "endDate": field,
            "unit": "millisecond",
        }
    }


def _client_lease_end(lease_ttl_s: float) -> dict[str, Any]:
    return {"$literal": client_now() + timedelta(seconds=lease_ttl_s)}


class ClientClockQueue(Queue):
    """`client-clock`: each worker sets and judges leases by its own clock.

    Claims and renewals set `lease_expires_at` from the worker's wall clock,
    fenced writes and recovery compare it with that clock, and the token
    still fences every write. A worker whose clock runs ahead by more than a
    lease sees every other worker's lease as expired and recovers it.
    """

    def _new_lease_end(self) -> dict[str, Any]:
        return _client_lease_end(self.settings.lease_ttl_s)

    @staticmethod
    def fenced(job_id: str | ObjectId, token: int) -> dict[str, Any]:
        return {
            "_id": parse_job_id(job_id),
            "token": token,
            "state": JobState.RUNNING.value,
            "$expr": {"$gt": [_ms_until_client_now("$lease_expires_at"), 0]},
        }

    def recover(self) -> RecoveryResult:
        expired = {"$lte": [_ms_until_client_now("$lease_expires_at"), 0]}
        return self._recover(expired, BELOW_CAP)


QUEUE_TYPES: dict[str, type[Queue]] = {
    "fencing": UnfencedQueue,
    "atomic-claim": TwoStepClaimQueue,
    "retry-cap": UncappedRecoveryQueue,
    "priority": PriorityBlindQueue,
    "fifo": NewestFirstQueue,
    "client-clock": ClientClockQueue,
}


def apply_break(name: str | None) -> type[Queue]:
    """Put break `name` into this process; return the queue class to use."""
    resolved = resolve_break(name)
    if resolved == "fencing":
        # The worker reads this module constant each time it sets a deadline.
        aegis.worker.LEASE_SAFETY_FRACTION = NO_SELF_CHECK_FRACTION
    if resolved is None:
        return Queue
    return QUEUE_TYPES.get(resolved, Queue)
