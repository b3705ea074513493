"""Read-only queries for the API, the CLI and the metrics: lists and counts.

Nothing here writes. Times that decide a result (ages, the last minute) are
measured against the database clock read with `Store.server_time()`, and
compared as plain dates in the filter, never against `$$NOW` in `$expr`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from aegis.models import Job, JobState, as_utc
from aegis.store import Store

# The window of `JobStats.completed_last_minute`.
RECENT_WINDOW_S = 60.0


@dataclass(frozen=True)
class JobPage:
    """One page of jobs, newest first, and the cursor of the next page."""

    jobs: list[Job]
    next_cursor: int | None


@dataclass(frozen=True)
class JobStats:
    """Job counts at one moment of the database clock."""

    by_state: dict[str, int]
    by_queue: dict[str, dict[str, int]]
    oldest_queued_age_s: float | None
    completed_last_minute: int
    server_time: datetime


def list_jobs(
    store: Store,
    *,
    state: JobState | None = None,
    queue: str | None = None,
    job_type: str | None = None,
    limit: int = 50,
    before_seq: int | None = None,
) -> JobPage:
    """Return up to `limit` jobs with `seq < before_seq`, highest seq first.

    `next_cursor` is the seq of the last job returned when more jobs match,
    else None; pass it back as `before_seq` for the next page.
    """
    query: dict[str, Any] = {}
    if state is not None:
        query["state"] = state.value
    if queue is not None:
        query["queue"] = queue
    if job_type is not None:
        query["job_type"] = job_type
    if before_seq is not None:
        query["seq"] = {"$lt": before_seq}

    # Fetching one extra document shows whether another page exists.
    docs = list(store.jobs.find(query).sort("seq", -1).limit(limit + 1))
    jobs = [Job.from_doc(doc) for doc in docs[:limit]]
    next_cursor = jobs[-1].seq if len(docs) > limit else None
    return JobPage(jobs=jobs, next_cursor=next_cursor)


def count_by_queue_and_state(store: Store) -> dict[str, dict[str, int]]:
    """Return `{queue: {state: count}}` for every queue that has jobs."""
    pipeline: list[dict[str, Any]] = [
        {
            "$group": {
                "_id": {"queue": "$queue", "state": "$state"},
                "count": {"$sum": 1},
            }
        }
    ]
    counts: dict[str, dict[str, int]] = {}
    for row in store.jobs.aggregate(pipeline):
        queue_name = str(row["_id"]["queue"])
        state = str(row["_id"]["state"])
        counts.setdefault(queue_name, {})[state] = int(row["count"])
    return counts


def job_stats(store: Store) -> JobStats:
    """Count jobs by state and by queue, and measure the queued backlog."""
    now = store.server_time()
    by_queue = count_by_queue_and_state(store)
    by_state = {state.value: 0 for state in JobState}
    for states in by_queue.values():
        for state, count in states.items():
            by_state[state] = by_state.get(state, 0) + count

    # The lowest seq among QUEUED jobs is the one enqueued first.
    oldest = store.jobs.find_one(
        {"state": JobState.QUEUED.value},
        projection={"created_at": 1},
        sort=[("seq", 1)],
    )
    oldest_age_s = None
    if oldest is not None and oldest.get("created_at") is not None:
        created_at = as_utc(oldest["created_at"])
        assert created_at is not None
        oldest_age_s = max(0.0, (now - created_at).total_seconds())

    succeeded_recently = store.jobs.count_documents(
        {
            "state": JobState.SUCCESS.value,
            "finished_at": {"$gte": now - timedelta(seconds=RECENT_WINDOW_S)},
        }
    )
    return JobStats(
        by_state=by_state,
        by_queue=by_queue,
        oldest_queued_age_s=oldest_age_s,
        completed_last_minute=succeeded_recently,
        server_time=now,
    )


def job_labels(store: Store, job_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Return `{job id: (queue, job type)}` for the jobs that exist."""
    ids = [ObjectId(job_id) for job_id in job_ids]
    if not ids:
        return {}
    cursor = store.jobs.find(
        {"_id": {"$in": ids}}, projection={"queue": 1, "job_type": 1}
    )
    return {
        str(doc["_id"]): (str(doc["queue"]), str(doc["job_type"])) for doc in cursor
    }
