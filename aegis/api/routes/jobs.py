"""Jobs: submit, list, read, cancel, retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from aegis.api.deps import Authorized, QueueDep, StoreDep
from aegis.api.schemas import JobCreate, JobListPublic, JobPublic
from aegis.models import JobState
from aegis.queries import list_jobs
from aegis.queue import JobSpec
from aegis.validation import MAX_SEQ, NAME_PATTERN

router = APIRouter(prefix="/jobs", tags=["jobs"])

JobId = Annotated[
    str,
    Path(
        alias="jobId",
        pattern=r"^[0-9a-fA-F]{24}$",
        description="24 hexadecimal characters",
    ),
]
NameFilter = Annotated[str | None, Query(pattern=NAME_PATTERN.pattern, max_length=200)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Authorized],
    responses={200: {"model": JobPublic, "description": "idempotency key existed"}},
)
def submit_job(body: JobCreate, queue: QueueDep, response: Response) -> JobPublic:
    """Submit a job; 200 with the existing job if its idempotency key was used."""
    # The queue validates the spec before it writes anything: PayloadTooLarge
    # becomes 413 and InvalidJob 422.
    spec = JobSpec(
        job_type=body.job_type,
        payload=body.payload,
        queue=body.queue,
        priority=body.priority,
        max_retries=body.max_retries,
        run_at=body.run_at,
        delay_s=body.delay_seconds,
        idempotency_key=body.idempotency_key,
    )
    [(job, is_new)] = queue.enqueue_many_reporting([spec])
    if not is_new:
        response.status_code = status.HTTP_200_OK
    return JobPublic.from_job(job)


@router.get("")
def list_all_jobs(
    store: StoreDep,
    status_filter: Annotated[JobState | None, Query(alias="status")] = None,
    queue: Annotated[NameFilter, Query(alias="queue")] = None,
    job_type: Annotated[NameFilter, Query(alias="jobType")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        int | None,
        Query(ge=0, le=MAX_SEQ, description="`nextCursor` of the previous page"),
    ] = None,
) -> JobListPublic:
    """List jobs newest first, filtered by status, queue and job type."""
    page = list_jobs(
        store,
        state=status_filter,
        queue=queue,
        job_type=job_type,
        limit=limit,
        before_seq=cursor,
    )
    return JobListPublic.from_page(page)


@router.get("/{jobId}", responses={404: {"description": "no job has this id"}})
def get_job(job_id: JobId, queue: QueueDep) -> JobPublic:
    """Return one job with its error history."""
    return JobPublic.from_job(queue.get(job_id))


@router.post(
    "/{jobId}/cancel",
    dependencies=[Authorized],
    responses={
        404: {"description": "no job has this id"},
        409: {"description": "the job already ended"},
    },
)
def cancel_job(job_id: JobId, queue: QueueDep) -> JobPublic:
    """Cancel a queued job, or ask the worker to stop a running one."""
    return JobPublic.from_job(queue.cancel(job_id))


@router.post(
    "/{jobId}/retry",
    dependencies=[Authorized],
    responses={
        404: {"description": "no job has this id"},
        409: {"description": "the job is not FAILED"},
    },
)
def retry_job(job_id: JobId, queue: QueueDep) -> JobPublic:
    """Requeue a FAILED job to run now with its attempt count reset."""
    return JobPublic.from_job(queue.retry(job_id))
