"""Aggregation expressions and update pipelines used by the queue operations.

All clock tests and timestamps use the database clock, `$$NOW`. User text
(payloads, results, error messages) enters a pipeline only inside
`$literal`, so a string such as "$state" is stored as written, never read
as a field path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aegis.models import MAX_ERROR_HISTORY, ErrorInfo, JobState

NOW = "$$NOW"

MAX_ERROR_TYPE_CHARS = 200
MAX_ERROR_MESSAGE_CHARS = 2000
MAX_TRACEBACK_CHARS = 4000


def ms_until(field: str) -> dict[str, Any]:
    """Milliseconds from `$$NOW` to a date field (negative once it passed)."""
    return {"$dateDiff": {"startDate": NOW, "endDate": field, "unit": "millisecond"}}


def date_after_ms(amount_ms: Any) -> dict[str, Any]:
    """The date `amount_ms` milliseconds after `$$NOW` (a number or expression)."""
    return {"$dateAdd": {"startDate": NOW, "unit": "millisecond", "amount": amount_ms}}


def lease_end(lease_ttl_s: float) -> dict[str, Any]:
    return date_after_ms(int(lease_ttl_s * 1000))


# NOTE: SecantusDB 0.7.0b3 evaluates `$gt`/`$lt` between a date field and
# `$$NOW` as false (and `$gte`/`$lte` as true) whatever the dates are, so
# every clock test goes through `$dateDiff`, which it and MongoDB agree on.
LEASE_VALID = {"$gt": [ms_until("$lease_expires_at"), 0]}
LEASE_EXPIRED = {"$lte": [ms_until("$lease_expires_at"), 0]}
RUNNABLE_NOW = {"$lte": [ms_until("$run_at"), 0]}

CANCEL_REQUESTED = {"$eq": ["$cancel_requested", True]}
# True while the attempt just made was not the last one allowed.
BELOW_CAP = {"$lt": ["$attempts", {"$add": ["$max_retries", 1]}]}


# The order in which jobs are claimed: priority, then enqueue sequence (FIFO).
# The `claim_order` index serves it.
CLAIM_ORDER = [("priority", 1), ("seq", 1)]


def claimable_filter(queues: Sequence[str]) -> dict[str, Any]:
    """Jobs that a worker serving `queues` may claim now."""
    return {
        "state": JobState.QUEUED.value,
        "queue": {"$in": list(queues)},
        "$expr": RUNNABLE_NOW,
    }


def claim_stages(
    worker_id: str, token: Any, lease_expires_at: Any
) -> list[dict[str, Any]]:
    """Pipeline that moves a job to RUNNING for `worker_id` with `token`.

    `token` and `lease_expires_at` are values or expressions.
    """
    return [
        {
            "$set": {
                "state": JobState.RUNNING.value,
                "worker_id": {"$literal": worker_id},
                "token": token,
                "attempts": {"$add": ["$attempts", 1]},
                "claimed_at": NOW,
                "updated_at": NOW,
                "heartbeat_at": NOW,
                "started_at": {"$ifNull": ["$started_at", NOW]},
                "lease_expires_at": lease_expires_at,
            }
        }
    ]


def insert_stages(
    fields: dict[str, Any], run_at: Any, seq: int
) -> list[dict[str, Any]]:
    """An upsert pipeline that inserts a new job stamped with `$$NOW`."""
    stage: dict[str, Any] = {key: {"$literal": value} for key, value in fields.items()}
    stage.update({"seq": seq, "created_at": NOW, "updated_at": NOW, "run_at": run_at})
    return [{"$set": stage}]


def error_entry(error: ErrorInfo) -> dict[str, Any]:
    """One error-history entry, stamped with the attempt, worker and `$$NOW`."""
    traceback = error.traceback[-MAX_TRACEBACK_CHARS:] if error.traceback else None
    literal = {
        "error_type": error.error_type[:MAX_ERROR_TYPE_CHARS],
        "message": error.message[:MAX_ERROR_MESSAGE_CHARS],
        "traceback": traceback,
    }
    return {
        "$mergeObjects": [
            {"$literal": literal},
            {"attempt": "$attempts", "worker_id": "$worker_id", "at": NOW},
        ]
    }


def append_error(entry: dict[str, Any]) -> dict[str, Any]:
    """The error history with `entry` appended, keeping the newest entries."""
    return {
        "$slice": [
            {"$concatArrays": [{"$ifNull": ["$errors", []]}, [entry]]},
            -MAX_ERROR_HISTORY,
        ]
    }


def end_attempt_stages(
    entry: dict[str, Any] | None, requeue_at: Any, requeue: Any
) -> list[dict[str, Any]]:
    """Pipeline stages that end a RUNNING attempt without success.

    The next state is CANCELLED if cancellation was requested, QUEUED (at
    `requeue_at`) if `requeue` holds, else FAILED. The first stage stores the
    decision in `_next` so the second can read it.
    """
    decide: dict[str, Any] = {
        "_next": {
            "$switch": {
                "branches": [
                    {"case": CANCEL_REQUESTED, "then": JobState.CANCELLED.value},
                    {"case": requeue, "then": JobState.QUEUED.value},
                ],
                "default": JobState.FAILED.value,
            }
        }
    }
    if entry is not None:
        decide["errors"] = append_error(entry)
    queued = {"$eq": ["$_next", JobState.QUEUED.value]}
    apply = {
        "state": "$_next",
        "run_at": {"$cond": [queued, requeue_at, "$run_at"]},
        "finished_at": {"$cond": [queued, None, NOW]},
        "updated_at": NOW,
        "lease_expires_at": None,
    }
    return [{"$set": decide}, {"$set": apply}, {"$unset": "_next"}]


def backoff_run_at(base_s: float, max_s: float, jitter: float) -> dict[str, Any]:
    """`$$NOW` plus `min(max_s, base_s * 2 ** (attempts - 1)) * jitter`."""
    exponential_ms = {
        "$multiply": [base_s * 1000, {"$pow": [2, {"$subtract": ["$attempts", 1]}]}]
    }
    delay_ms = {
        "$toLong": {"$multiply": [{"$min": [max_s * 1000, exponential_ms]}, jitter]}
    }
    return date_after_ms(delay_ms)
