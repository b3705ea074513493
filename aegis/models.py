"""The job document and its states.

A job is one document in the `jobs` collection. Field names here are the
MongoDB field names; the REST API maps them to camelCase.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId


class JobState(enum.StrEnum):
    """Lifecycle state of a job."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUCCESS, JobState.FAILED, JobState.CANCELLED})

MIN_PRIORITY = 0
MAX_PRIORITY = 9
DEFAULT_PRIORITY = 5
DEFAULT_MAX_RETRIES = 3

# Entries kept in a job's error history; older ones are dropped first.
MAX_ERROR_HISTORY = 20


def as_utc(value: datetime | None) -> datetime | None:
    """Attach UTC to a naive datetime read from BSON (BSON dates are UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ErrorRecord:
    """One failed attempt: who ran it, what was raised, when (database time)."""

    attempt: int
    worker_id: str | None
    error_type: str
    message: str
    traceback: str | None
    at: datetime | None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ErrorRecord:
        return cls(
            attempt=int(doc.get("attempt", 0)),
            worker_id=doc.get("worker_id"),
            error_type=str(doc.get("error_type", "")),
            message=str(doc.get("message", "")),
            traceback=doc.get("traceback"),
            at=as_utc(doc.get("at")),
        )


@dataclass(frozen=True)
class ErrorInfo:
    """What went wrong in one attempt, as stored in the job's error history."""

    error_type: str
    message: str
    traceback: str | None = None

    @classmethod
    def from_exception(
        cls, exc: BaseException, traceback: str | None = None
    ) -> ErrorInfo:
        return cls(type(exc).__name__, str(exc), traceback)


@dataclass(frozen=True)
class Job:
    """A snapshot of one job document."""

    id: ObjectId
    queue: str
    job_type: str
    payload: dict[str, Any]
    priority: int
    max_retries: int
    state: JobState
    attempts: int
    token: int
    seq: int
    run_at: datetime
    created_at: datetime
    worker_id: str | None = None
    claimed_at: datetime | None = None
    lease_expires_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    cancel_requested: bool = False
    idempotency_key: str | None = None
    result: Any = None
    errors: list[ErrorRecord] = field(default_factory=list)

    @property
    def job_id(self) -> str:
        return str(self.id)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Job:
        return cls(
            id=doc["_id"],
            queue=doc["queue"],
            job_type=doc["job_type"],
            payload=doc.get("payload") or {},
            priority=int(doc["priority"]),
            max_retries=int(doc["max_retries"]),
            state=JobState(doc["state"]),
            attempts=int(doc.get("attempts", 0)),
            token=int(doc.get("token", 0)),
            seq=int(doc["seq"]),
            run_at=as_utc(doc["run_at"]),  # type: ignore[arg-type]
            created_at=as_utc(doc["created_at"]),  # type: ignore[arg-type]
            worker_id=doc.get("worker_id"),
            claimed_at=as_utc(doc.get("claimed_at")),
            lease_expires_at=as_utc(doc.get("lease_expires_at")),
            started_at=as_utc(doc.get("started_at")),
            finished_at=as_utc(doc.get("finished_at")),
            updated_at=as_utc(doc.get("updated_at")),
            cancel_requested=bool(doc.get("cancel_requested", False)),
            idempotency_key=doc.get("idempotency_key"),
            result=doc.get("result"),
            errors=[ErrorRecord.from_doc(e) for e in doc.get("errors", [])],
        )


@dataclass(frozen=True)
class Lease:
    """The result of a successful renewal."""

    job_id: str
    token: int
    lease_expires_at: datetime
    renewed_at: datetime
    cancel_requested: bool


@dataclass(frozen=True)
class RecoveryResult:
    """Jobs moved by one recovery sweep, as (job id, expired token) pairs.

    `at` is the database time of the last move, None when nothing moved.
    """

    requeued: list[tuple[str, int]]
    failed: list[tuple[str, int]]
    cancelled: list[tuple[str, int]] = field(default_factory=list)
    at: datetime | None = None

    @property
    def count(self) -> int:
        return len(self.requeued) + len(self.failed) + len(self.cancelled)
