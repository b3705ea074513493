"""Queue operations: the only code that writes job state.

Every operation is one conditional write, so the database decides each state
move atomically; no operation reads a job and then writes it.

- `claim` picks the best available job (lowest priority number, then lowest
  enqueue sequence) and moves it to RUNNING with a new fencing token and a
  lease that ends at `$$NOW + lease_ttl_s`.
- Every later write for that claim (`renew`, `complete`, `fail`, `release`,
  `finish_cancelled`) is fenced: it matches only `{_id, token, state:
  RUNNING}` with a lease that has not expired by the database clock. A write
  that matches nothing is stale: it changes nothing, is logged and raises
  `LeaseLost`.
- `recover` moves RUNNING jobs whose lease expired back to QUEUED, or to
  FAILED at the retry cap. Each move is conditional on the expired token, so
  many processes may recover at once.

Guarantee: a handler runs at least once per job, and at most one completion
per job is accepted.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError
from pymongo.operations import UpdateOne

from aegis.errors import InvalidJob, InvalidTransition, JobNotFound, LeaseLost
from aegis.expressions import (
    BELOW_CAP,
    CLAIM_ORDER,
    LEASE_EXPIRED,
    LEASE_VALID,
    NOW,
    backoff_run_at,
    claim_stages,
    claimable_filter,
    date_after_ms,
    end_attempt_stages,
    error_entry,
    insert_stages,
    lease_end,
    ms_until,
)
from aegis.models import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_PRIORITY,
    MAX_PRIORITY,
    MIN_PRIORITY,
    ErrorInfo,
    Job,
    JobState,
    Lease,
    RecoveryResult,
    as_utc,
)
from aegis.settings import DEFAULT_QUEUE, QueueSettings
from aegis.store import SEQ_COUNTER_ID, Store
from aegis.validation import (
    MAX_MAX_RETRIES,
    check_delay_s,
    check_idempotency_key,
    check_int,
    check_name,
    check_payload,
    check_result,
    check_run_at,
    parse_job_id,
)

log = logging.getLogger(__name__)

# MongoDB's error code for a unique index violation.
DUPLICATE_KEY_CODE = 11000


def _log_enqueued(job: Job) -> None:
    log.info(
        "job %s enqueued (type %s, queue %s, priority %d, seq %d)",
        job.job_id,
        job.job_type,
        job.queue,
        job.priority,
        job.seq,
    )


@dataclass(frozen=True)
class JobSpec:
    """Arguments of one enqueue, for `enqueue_many`."""

    job_type: str
    payload: Mapping[str, Any] | None = None
    queue: str = DEFAULT_QUEUE
    priority: int = DEFAULT_PRIORITY
    max_retries: int = DEFAULT_MAX_RETRIES
    run_at: datetime | None = None
    delay_s: float | None = None
    idempotency_key: str | None = None


class Queue:
    """Queue operations on one database. Thread-safe; share one per process."""

    def __init__(
        self,
        store: Store,
        settings: QueueSettings | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or QueueSettings()
        self._rng = rng or random.Random()

    # -- enqueue -----------------------------------------------------------

    def enqueue(
        self,
        job_type: str,
        payload: Mapping[str, Any] | None = None,
        *,
        queue: str = DEFAULT_QUEUE,
        priority: int = DEFAULT_PRIORITY,
        max_retries: int = DEFAULT_MAX_RETRIES,
        run_at: datetime | None = None,
        delay_s: float | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Insert one QUEUED job and return it.

        With `idempotency_key`, a second enqueue with the same key inserts
        nothing and returns the job the first one created. Raises `InvalidJob`
        on bad arguments, before anything is written.
        """
        spec = JobSpec(
            job_type,
            payload,
            queue,
            priority,
            max_retries,
            run_at,
            delay_s,
            idempotency_key,
        )
        fields, run_at_expression = self._new_document(spec)
        seq = self._reserve_seqs(1)
        try:
            doc = self.store.jobs.find_one_and_update(
                {"_id": ObjectId()},
                insert_stages(fields, run_at_expression, seq),
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            if idempotency_key is None:
                raise
            return self._existing(idempotency_key)
        assert doc is not None  # upsert with ReturnDocument.AFTER
        job = Job.from_doc(doc)
        _log_enqueued(job)
        return job

    def enqueue_many(self, specs: Sequence[JobSpec]) -> list[Job]:
        """Insert several jobs; sequence numbers follow the order of `specs`.

        Validates every spec before writing any. Jobs whose idempotency key
        already exists are returned as stored, not inserted again.
        """
        return [job for job, _ in self.enqueue_many_reporting(specs)]

    def enqueue_many_reporting(
        self, specs: Sequence[JobSpec]
    ) -> list[tuple[Job, bool]]:
        """Like `enqueue_many`, pairing each job with whether this call created it.

        A job is not new when its idempotency key already existed.
        """
        documents = [self._new_document(spec) for spec in specs]
        if not documents:
            return []
        first_seq = self._reserve_seqs(len(documents))
        ids = [ObjectId() for _ in documents]
        writes = [
            UpdateOne(
                {"_id": job_id},
                insert_stages(fields, run_at, first_seq + offset),
                upsert=True,
            )
            for offset, (job_id, (fields, run_at)) in enumerate(
                zip(ids, documents, strict=True)
            )
        ]

        duplicates: dict[int, str] = {}
        try:
            self.store.jobs.bulk_write(writes, ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                key = documents[error["index"]][0].get("idempotency_key")
                if error.get("code") != DUPLICATE_KEY_CODE or key is None:
                    raise
                duplicates[error["index"]] = key

        jobs = self._fetch_created(ids, duplicates)
        for index, job in enumerate(jobs):
            if index not in duplicates:
                _log_enqueued(job)
        return [(job, index not in duplicates) for index, job in enumerate(jobs)]

    def _reserve_seqs(self, count: int) -> int:
        """Reserve `count` sequence numbers atomically; return the first.

        FIFO order is the order in which the database hands these out, so
        a job whose enqueue returned before another's began sorts first.
        """
        counter = self.store.counters.find_one_and_update(
            {"_id": SEQ_COUNTER_ID},
            {"$inc": {"value": count}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert counter is not None  # upsert with ReturnDocument.AFTER
        return int(counter["value"]) - count + 1

    def _existing(self, idempotency_key: str) -> Job:
        doc = self.store.jobs.find_one({"idempotency_key": idempotency_key})
        if doc is None:
            raise JobNotFound(f"no job has idempotency key {idempotency_key!r}")
        log.info(
            "job %s: already enqueued with idempotency key %r",
            doc["_id"],
            idempotency_key,
        )
        return Job.from_doc(doc)

    @staticmethod
    def _new_document(spec: JobSpec) -> tuple[dict[str, Any], Any]:
        """Validate a spec; return its literal fields and its run_at expression."""
        fields: dict[str, Any] = {
            "queue": check_name("queue", spec.queue),
            "job_type": check_name("job type", spec.job_type),
            "payload": check_payload(spec.payload),
            "priority": check_int(
                "priority", spec.priority, MIN_PRIORITY, MAX_PRIORITY
            ),
            "max_retries": check_int(
                "max_retries", spec.max_retries, 0, MAX_MAX_RETRIES
            ),
            "state": JobState.QUEUED.value,
            "attempts": 0,
            "token": 0,
            "errors": [],
            "cancel_requested": False,
        }
        if spec.idempotency_key is not None:
            fields["idempotency_key"] = check_idempotency_key(spec.idempotency_key)
        if spec.run_at is not None and spec.delay_s is not None:
            raise InvalidJob("give run_at or delay_s, not both")
        if spec.run_at is not None:
            return fields, {"$literal": check_run_at(spec.run_at)}
        delay_s = check_delay_s(spec.delay_s or 0.0)
        return fields, date_after_ms(int(delay_s * 1000)) if delay_s else NOW

    def _fetch_created(
        self, ids: list[ObjectId], duplicates: dict[int, str]
    ) -> list[Job]:
        inserted = [job_id for i, job_id in enumerate(ids) if i not in duplicates]
        by_id = {
            doc["_id"]: doc for doc in self.store.jobs.find({"_id": {"$in": inserted}})
        }
        existing = {}
        if duplicates:
            cursor = self.store.jobs.find(
                {"idempotency_key": {"$in": list(duplicates.values())}}
            )
            existing = {doc["idempotency_key"]: doc for doc in cursor}
        jobs = []
        for i, job_id in enumerate(ids):
            doc = existing.get(duplicates[i]) if i in duplicates else by_id.get(job_id)
            if doc is None:
                raise JobNotFound(
                    f"job {job_id} was written but could not be read back"
                )
            jobs.append(Job.from_doc(doc))
        return jobs

    # -- claim and the fenced writes ----------------------------------------

    def claim(self, worker_id: str, queues: Sequence[str]) -> Job | None:
        """Claim the best available job in `queues`, or return None.

        One atomic find-and-modify: among QUEUED jobs with `run_at <= $$NOW`,
        take the lowest priority number, then the lowest sequence, and set
        RUNNING, `token + 1`, `attempts + 1` and a lease of `lease_ttl_s`.
        """
        doc = self.store.jobs.find_one_and_update(
            claimable_filter(queues),
            claim_stages(worker_id, {"$add": ["$token", 1]}, self._new_lease_end()),
            sort=CLAIM_ORDER,
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return None
        job = Job.from_doc(doc)
        log.info(
            "job %s attempt %d token %d worker %s: claimed (type %s, queue %s, priority %d)",
            job.job_id,
            job.attempts,
            job.token,
            worker_id,
            job.job_type,
            job.queue,
            job.priority,
        )
        return job

    def _new_lease_end(self) -> dict[str, Any]:
        """The expiry of a lease granted now: `$$NOW + lease_ttl_s`."""
        return lease_end(self.settings.lease_ttl_s)

    @staticmethod
    def fenced(job_id: str | ObjectId, token: int) -> dict[str, Any]:
        """The filter every write after a claim uses."""
        return {
            "_id": parse_job_id(job_id),
            "token": token,
            "state": JobState.RUNNING.value,
            "$expr": LEASE_VALID,
        }

    def _fenced_write(
        self,
        operation: str,
        job_id: str | ObjectId,
        token: int,
        stages: list[dict[str, Any]],
        projection: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        doc = self.store.jobs.find_one_and_update(
            self.fenced(job_id, token),
            stages,
            projection=projection,
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            log.warning(
                "job %s token %d: stale %s rejected (lease expired, recovered or superseded)",
                job_id,
                token,
                operation,
            )
            raise LeaseLost(operation, str(job_id), token)
        return doc

    def renew(self, job_id: str | ObjectId, token: int) -> Lease:
        """Extend the lease to `$$NOW + lease_ttl_s`; raise `LeaseLost` if stale."""
        stage = {
            "lease_expires_at": self._new_lease_end(),
            "heartbeat_at": NOW,
        }
        doc = self._fenced_write(
            "renew",
            job_id,
            token,
            [{"$set": stage}],
            projection={
                "lease_expires_at": 1,
                "heartbeat_at": 1,
                "cancel_requested": 1,
            },
        )
        return Lease(
            job_id=str(job_id),
            token=token,
            lease_expires_at=as_utc(doc["lease_expires_at"]),  # type: ignore[arg-type]
            renewed_at=as_utc(doc["heartbeat_at"]),  # type: ignore[arg-type]
            cancel_requested=bool(doc.get("cancel_requested", False)),
        )

    def complete(self, job_id: str | ObjectId, token: int, result: Any = None) -> Job:
        """Move the job to SUCCESS with its result; raise `LeaseLost` if stale.

        Raises `InvalidJob`, writing nothing, if the result cannot be stored.
        """
        check_result(result)
        stage = {
            "state": JobState.SUCCESS.value,
            "result": {"$literal": result},
            "finished_at": NOW,
            "updated_at": NOW,
            "lease_expires_at": None,
        }
        job = Job.from_doc(
            self._fenced_write("complete", job_id, token, [{"$set": stage}])
        )
        log.info(
            "job %s attempt %d token %d worker %s: succeeded",
            job.job_id,
            job.attempts,
            token,
            job.worker_id,
        )
        return job

    def fail(
        self,
        job_id: str | ObjectId,
        token: int,
        error: ErrorInfo,
        *,
        retryable: bool = True,
    ) -> Job:
        """Record a failed attempt; retry later, or end FAILED at the cap.

        Below the cap (`attempts <= max_retries`) the job returns to QUEUED
        with `run_at = $$NOW + backoff`, where backoff is
        `min(backoff_max_s, backoff_base_s * 2 ** (attempts - 1))` times a
        random factor in [0.5, 1). A job whose cancellation was requested
        ends CANCELLED instead. Raises `LeaseLost` if stale.
        """
        jitter = 0.5 + self._rng.random() / 2
        retry_at = backoff_run_at(
            self.settings.backoff_base_s, self.settings.backoff_max_s, jitter
        )
        requeue = {"$and": [retryable, BELOW_CAP]}
        stages = end_attempt_stages(error_entry(error), retry_at, requeue)
        job = Job.from_doc(self._fenced_write("fail", job_id, token, stages))
        if job.state is JobState.QUEUED:
            log.warning(
                "job %s attempt %d token %d: failed with %s: %s; retry at %s",
                job.job_id,
                job.attempts,
                token,
                error.error_type,
                error.message,
                job.run_at.isoformat(),
            )
        else:
            log.warning(
                "job %s attempt %d token %d: failed with %s: %s; ended %s (max_retries %d)",
                job.job_id,
                job.attempts,
                token,
                error.error_type,
                error.message,
                job.state.value,
                job.max_retries,
            )
        return job

    def release(self, job_id: str | ObjectId, token: int) -> Job:
        """Give a running job back to the queue, to run now on any worker.

        Used by a worker that stops before the job finished. The job did not
        fail, so the attempt is given back: `attempts` drops by one and the
        retry cap still bounds the attempts that ended in failure or expiry.
        A job whose cancellation was requested ends CANCELLED instead.
        Raises `LeaseLost` if stale.
        """
        refund = {
            "$set": {
                "attempts": {
                    "$cond": [
                        {"$eq": ["$state", JobState.QUEUED.value]},
                        {"$subtract": ["$attempts", 1]},
                        "$attempts",
                    ]
                }
            }
        }
        stages = [*end_attempt_stages(None, NOW, True), refund]
        job = Job.from_doc(self._fenced_write("release", job_id, token, stages))
        log.info(
            "job %s token %d: released, now %s (attempts %d of %d)",
            job.job_id,
            token,
            job.state.value,
            job.attempts,
            job.max_retries + 1,
        )
        return job

    def finish_cancelled(self, job_id: str | ObjectId, token: int) -> Job:
        """Move a running job whose handler stopped on request to CANCELLED."""
        stage = {
            "state": JobState.CANCELLED.value,
            "finished_at": NOW,
            "updated_at": NOW,
            "lease_expires_at": None,
        }
        job = Job.from_doc(
            self._fenced_write("cancel", job_id, token, [{"$set": stage}])
        )
        log.info(
            "job %s attempt %d token %d: cancelled", job.job_id, job.attempts, token
        )
        return job

    # -- recovery ---------------------------------------------------------

    def recover(self) -> RecoveryResult:
        """Move RUNNING jobs whose lease expired back to QUEUED, or to FAILED.

        The expired attempt already counted when the job was claimed. A job
        that used all `max_retries + 1` attempts ends FAILED with a "lease
        expired" error, and one whose cancellation was requested ends
        CANCELLED. Each move is conditional on the expired token, so a
        job that a concurrent recovery already moved is skipped.
        """
        return self._recover(LEASE_EXPIRED, BELOW_CAP)

    def _recover(
        self, expired: dict[str, Any], requeue: dict[str, Any]
    ) -> RecoveryResult:
        """Run a recovery sweep with the given expiry test and requeue condition."""
        candidates = self.store.jobs.find(
            {"state": JobState.RUNNING.value, "$expr": expired},
            projection={"_id": 1, "token": 1},
        )
        moved_to: dict[str, list[tuple[str, int]]] = {
            JobState.QUEUED.value: [],
            JobState.FAILED.value: [],
            JobState.CANCELLED.value: [],
        }
        last_move_at = None
        error = ErrorInfo("LeaseExpired", "lease expired before the job finished")
        stages = end_attempt_stages(error_entry(error), NOW, requeue)
        for candidate in list(candidates):
            doc = self.store.jobs.find_one_and_update(
                {
                    "_id": candidate["_id"],
                    "token": candidate["token"],
                    "state": JobState.RUNNING.value,
                    "$expr": expired,
                },
                stages,
                projection={"state": 1, "attempts": 1, "worker_id": 1, "updated_at": 1},
                return_document=ReturnDocument.AFTER,
            )
            if doc is None:
                continue
            moved = (str(candidate["_id"]), int(candidate["token"]))
            moved_to[doc["state"]].append(moved)
            last_move_at = as_utc(doc["updated_at"])
            log.warning(
                "job %s attempt %d token %d worker %s: lease expired; recovered to %s",
                moved[0],
                doc["attempts"],
                moved[1],
                doc.get("worker_id"),
                doc["state"],
            )
        return RecoveryResult(
            requeued=moved_to[JobState.QUEUED.value],
            failed=moved_to[JobState.FAILED.value],
            cancelled=moved_to[JobState.CANCELLED.value],
            at=last_move_at,
        )

    def next_expiry_s(self) -> float | None:
        """Return seconds until the earliest RUNNING lease expires, by the database clock.

        Negative when that lease already expired; None when nothing runs.
        Workers use it to time their next recovery sweep.
        """
        pipeline: list[dict[str, Any]] = [
            {"$match": {"state": JobState.RUNNING.value}},
            {"$sort": {"lease_expires_at": 1}},
            {"$limit": 1},
            {"$project": {"_id": 0, "ms": ms_until("$lease_expires_at")}},
        ]
        earliest = list(self.store.jobs.aggregate(pipeline))
        if not earliest or earliest[0].get("ms") is None:
            return None
        return float(earliest[0]["ms"]) / 1000

    # -- operator actions -------------------------------------------------

    def cancel(self, job_id: str | ObjectId) -> Job:
        """Cancel a QUEUED job, or request cancellation of a RUNNING one.

        A running job's worker sees the request at its next heartbeat. Raises
        `JobNotFound`, or `InvalidTransition` if the job already ended.
        """
        oid = parse_job_id(job_id)
        # The job may move between the two conditional writes (a claim, a
        # recovery); a few rounds settle it without reading then writing.
        for _ in range(5):
            doc = self.store.jobs.find_one_and_update(
                {"_id": oid, "state": JobState.QUEUED.value},
                [
                    {
                        "$set": {
                            "state": JobState.CANCELLED.value,
                            "finished_at": NOW,
                            "updated_at": NOW,
                        }
                    }
                ],
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                log.info("job %s: cancelled while queued", oid)
                return Job.from_doc(doc)
            doc = self.store.jobs.find_one_and_update(
                {"_id": oid, "state": JobState.RUNNING.value},
                [{"$set": {"cancel_requested": True, "updated_at": NOW}}],
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                log.info("job %s token %d: cancellation requested", oid, doc["token"])
                return Job.from_doc(doc)
            job = self.get(oid)
            if job.state.is_terminal:
                raise InvalidTransition(f"job {oid} is already {job.state.value}")
        raise InvalidTransition(f"job {oid} kept changing state; try the cancel again")

    def retry(self, job_id: str | ObjectId) -> Job:
        """Requeue a FAILED job to run now, with its attempt count reset.

        The error history is kept. Raises `JobNotFound`, or
        `InvalidTransition` if the job is not FAILED.
        """
        oid = parse_job_id(job_id)
        doc = self.store.jobs.find_one_and_update(
            {"_id": oid, "state": JobState.FAILED.value},
            [
                {
                    "$set": {
                        "state": JobState.QUEUED.value,
                        "attempts": 0,
                        "run_at": NOW,
                        "finished_at": None,
                        "updated_at": NOW,
                        "cancel_requested": False,
                    }
                }
            ],
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            job = self.get(oid)
            raise InvalidTransition(
                f"job {oid} is {job.state.value}; only FAILED jobs can be retried"
            )
        log.info("job %s: requeued by operator after FAILED", oid)
        return Job.from_doc(doc)

    def get(self, job_id: str | ObjectId) -> Job:
        """Return one job; raise `JobNotFound` if no job has that id."""
        oid = parse_job_id(job_id)
        doc = self.store.jobs.find_one({"_id": oid})
        if doc is None:
            raise JobNotFound(f"job {oid} not found")
        return Job.from_doc(doc)
