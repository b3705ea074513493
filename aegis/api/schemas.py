"""Request and response bodies. JSON field names are camelCase.

Each resource has a Create schema (what a client may send, unknown fields
rejected) and a Public schema (what the API returns).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from aegis.models import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_PRIORITY,
    MAX_PRIORITY,
    MIN_PRIORITY,
    ErrorRecord,
    Job,
    JobState,
    RecoveryResult,
)
from aegis.queries import JobPage, JobStats
from aegis.settings import DEFAULT_QUEUE
from aegis.validation import (
    MAX_DELAY_S,
    MAX_MAX_RETRIES,
    MAX_PAYLOAD_DEPTH,
    NAME_PATTERN,
    payload_depth,
)
from aegis.workers import WorkerInfo

Name = Annotated[
    StrictStr,
    Field(
        pattern=NAME_PATTERN.pattern,
        description="1-200 letters, digits, '_', '.', ':' or '-'",
    ),
]


def _date_time_string(value: Any) -> Any:
    """Accept only ISO 8601 text for a date-time, not a number of seconds."""
    if not isinstance(value, str | datetime):
        raise ValueError("expected an ISO 8601 date-time string with a time zone")
    return value


class JobCreate(BaseModel):
    """A job to submit."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid")

    job_type: Name = Field(description="handler name, for example `echo`")
    payload: dict[str, Any] = Field(
        default_factory=dict, description="JSON object passed to the handler"
    )
    queue: Name = Field(DEFAULT_QUEUE, description="queue name")
    priority: StrictInt = Field(
        DEFAULT_PRIORITY,
        ge=MIN_PRIORITY,
        le=MAX_PRIORITY,
        description="0 runs first, 9 last",
    )
    max_retries: StrictInt = Field(
        DEFAULT_MAX_RETRIES,
        ge=0,
        le=MAX_MAX_RETRIES,
        description="retries after the first attempt",
    )
    run_at: Annotated[AwareDatetime, BeforeValidator(_date_time_string)] | None = Field(
        None, description="earliest start, with a time zone; excludes delaySeconds"
    )
    # Strict: a JSON number, not a numeric string or a boolean.
    delay_seconds: StrictFloat | None = Field(
        None,
        ge=0,
        le=MAX_DELAY_S,
        allow_inf_nan=False,
        description="seconds from now before the job may run; excludes runAt",
    )
    idempotency_key: StrictStr | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="a second submit with the same key returns the first job",
    )

    @field_validator("payload")
    @classmethod
    def _check_depth(cls, payload: dict[str, Any]) -> dict[str, Any]:
        depth = payload_depth(payload)
        if depth > MAX_PAYLOAD_DEPTH:
            raise ValueError(
                f"payload is nested {depth} levels deep; the maximum is "
                f"{MAX_PAYLOAD_DEPTH}"
            )
        return payload

    @model_validator(mode="after")
    def _check_start(self) -> JobCreate:
        if self.run_at is not None and self.delay_seconds is not None:
            raise ValueError("give runAt or delaySeconds, not both")
        return self


class PublicModel(BaseModel):
    """Base of response bodies: camelCase JSON, built from snake_case names."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class ErrorRecordPublic(PublicModel):
    """One failed attempt in a job's error history."""

    attempt: int
    worker_id: str | None
    error_type: str
    message: str
    traceback: str | None
    at: datetime | None

    @classmethod
    def from_record(cls, record: ErrorRecord) -> ErrorRecordPublic:
        return cls(
            attempt=record.attempt,
            worker_id=record.worker_id,
            error_type=record.error_type,
            message=record.message,
            traceback=record.traceback,
            at=record.at,
        )


class JobPublic(PublicModel):
    """A job as stored, with its error history."""

    job_id: str
    job_type: str
    payload: dict[str, Any]
    priority: int
    max_retries: int
    status: JobState
    queue: str
    attempts: int
    seq: int = Field(description="enqueue order; the list cursor")
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    errors: list[ErrorRecordPublic]
    result: Any
    idempotency_key: str | None
    cancel_requested: bool
    worker_id: str | None
    lease_expires_at: datetime | None

    @classmethod
    def from_job(cls, job: Job) -> JobPublic:
        return cls(
            job_id=job.job_id,
            job_type=job.job_type,
            payload=job.payload,
            priority=job.priority,
            max_retries=job.max_retries,
            status=job.state,
            queue=job.queue,
            attempts=job.attempts,
            seq=job.seq,
            run_at=job.run_at,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            errors=[ErrorRecordPublic.from_record(e) for e in job.errors],
            result=job.result,
            idempotency_key=job.idempotency_key,
            cancel_requested=job.cancel_requested,
            worker_id=job.worker_id,
            lease_expires_at=job.lease_expires_at,
        )


class JobListPublic(PublicModel):
    """One page of jobs, newest first."""

    jobs: list[JobPublic]
    next_cursor: int | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )

    @classmethod
    def from_page(cls, page: JobPage) -> JobListPublic:
        return cls(
            jobs=[JobPublic.from_job(job) for job in page.jobs],
            next_cursor=page.next_cursor,
        )


class StatsPublic(PublicModel):
    """Job counts by the database clock."""

    by_status: dict[str, int]
    by_queue: dict[str, dict[str, int]]
    oldest_queued_age_s: float | None = Field(
        description="seconds since the oldest QUEUED job was enqueued"
    )
    completed_last_minute: int = Field(
        description="jobs that reached SUCCESS in the last 60 seconds"
    )
    server_time: datetime

    @classmethod
    def from_stats(cls, stats: JobStats) -> StatsPublic:
        return cls(
            by_status=stats.by_state,
            by_queue=stats.by_queue,
            oldest_queued_age_s=stats.oldest_queued_age_s,
            completed_last_minute=stats.completed_last_minute,
            server_time=stats.server_time,
        )


class WorkerPublic(PublicModel):
    """One worker process and its liveness."""

    worker_id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    status: str = Field(description="ALIVE or DEAD")
    stopped: bool = Field(description="the worker marked itself stopped on exit")
    started_at: datetime | None
    last_heartbeat_at: datetime | None
    heartbeat_age_s: float | None
    current_jobs: list[str]

    @classmethod
    def from_info(cls, info: WorkerInfo) -> WorkerPublic:
        return cls(
            worker_id=info.worker_id,
            host=info.host,
            pid=info.pid,
            queues=info.queues,
            concurrency=info.concurrency,
            status=info.liveness,
            stopped=info.stopped,
            started_at=info.started_at,
            last_heartbeat_at=info.heartbeat_at,
            heartbeat_age_s=info.heartbeat_age_s,
            current_jobs=info.current_jobs,
        )


class RecoveryPublic(PublicModel):
    """Jobs moved by one recovery sweep."""

    requeued: int
    failed: int
    cancelled: int
    requeued_ids: list[str]
    failed_ids: list[str]
    cancelled_ids: list[str]

    @classmethod
    def from_result(cls, result: RecoveryResult) -> RecoveryPublic:
        return cls(
            requeued=len(result.requeued),
            failed=len(result.failed),
            cancelled=len(result.cancelled),
            requeued_ids=[job_id for job_id, _ in result.requeued],
            failed_ids=[job_id for job_id, _ in result.failed],
            cancelled_ids=[job_id for job_id, _ in result.cancelled],
        )


class StatusPublic(PublicModel):
    """The body of the health checks."""

    status: str
