"""Record queue operations as history events, one JSONL file per process.

`EventLog` appends one JSON object per line. Each event is a single
`os.write` on a file opened with `O_APPEND` and no user-space buffer, so an
event is either entirely in the file or absent, even when the process is
SIGKILLed right after.

`RecordingQueue` wraps a `aegis.queue.Queue` and writes an `invoke` event
before each operation and an `ok`, `fail` or `unknown` event after it:
- `ok` carries what the database returned, with database times as epoch
  seconds in `db_time` and the other date fields;
- `fail` with `error: "stale"` is a fenced write that was rejected
  (`LeaseLost`); other `fail` events are errors that changed nothing
  (invalid arguments);
- `unknown` is a database error, after which the write may or may not have
  been applied.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pymongo.errors import PyMongoError

from aegis.errors import AegisError, LeaseLost
from aegis.models import ErrorInfo, Job, Lease, RecoveryResult
from aegis.queue import JobSpec, Queue
from aegis.settings import QueueSettings

log = logging.getLogger(__name__)

T = TypeVar("T")


def epoch_s(value: datetime | None) -> float | None:
    """Return a database date as epoch seconds, or None."""
    return value.timestamp() if value is not None else None


class EventLog:
    """Append-only JSONL writer for one process's history events."""

    def __init__(self, path: Path, process: str, worker: str | None = None) -> None:
        self.path = path
        self.process = process
        self.pid = os.getpid()
        self.worker = worker
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()
        self._next_index = 0
        self._next_op = 0

    def next_op(self) -> int:
        """Return a new operation id, shared by an invoke and its completion."""
        with self._lock:
            self._next_op += 1
            return self._next_op

    def record(
        self,
        event_type: str,
        f: str,
        *,
        job: str | None = None,
        token: int | None = None,
        db_time: float | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Write one event and return it."""
        with self._lock:
            event: dict[str, Any] = {
                "i": self._next_index,
                "t": time.monotonic(),
                "process": self.process,
                "pid": self.pid,
                "worker": self.worker,
                "type": event_type,
                "f": f,
                "job": job,
                "token": token,
                "db_time": db_time,
                **fields,
            }
            line = json.dumps(event, default=str, separators=(",", ":")) + "\n"
            # One write call per event, so a kill cannot leave half a line.
            os.write(self._fd, line.encode())
            self._next_index += 1
        return event

    def info(self, f: str, **fields: Any) -> dict[str, Any]:
        """Write an `info` event (lifecycle or fault)."""
        return self.record("info", f, **fields)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _claim_fields(job: Job | None) -> dict[str, Any]:
    if job is None:
        return {"job": None}
    return {
        "job": job.job_id,
        "token": job.token,
        "attempts": job.attempts,
        "priority": job.priority,
        "seq": job.seq,
        "db_time": epoch_s(job.claimed_at),
        "lease_expires_at": epoch_s(job.lease_expires_at),
    }


def _end_fields(job: Job) -> dict[str, Any]:
    """Fields of an `ok` event for a write that ended an attempt."""
    return {
        "state": job.state.value,
        "attempts": job.attempts,
        "run_at": epoch_s(job.run_at),
        # updated_at is stamped by every write, also those that requeue.
        "db_time": epoch_s(job.updated_at),
    }


class RecordingQueue:
    """A `Queue` that records every operation it delegates as history events.

    Implements `aegis.worker.QueueOperations`, plus `enqueue` for the
    harness process.
    """

    def __init__(self, queue: Queue, events: EventLog) -> None:
        self.queue = queue
        self.events = events
        self.settings: QueueSettings = queue.settings

    def _call(
        self,
        f: str,
        call: Callable[[], T],
        ok_fields: Callable[[T], dict[str, Any]],
        *,
        job: str | None = None,
        token: int | None = None,
        **invoke_fields: Any,
    ) -> T:
        op = self.events.next_op()
        self.events.record("invoke", f, job=job, token=token, op=op, **invoke_fields)
        try:
            result = call()
        except LeaseLost:
            self.events.record("fail", f, job=job, token=token, op=op, error="stale")
            raise
        except PyMongoError as exc:
            self.events.record(
                "unknown", f, job=job, token=token, op=op, error=type(exc).__name__,
                message=str(exc)[:300],
            )  # fmt: skip
            raise
        except AegisError as exc:
            self.events.record(
                "fail", f, job=job, token=token, op=op, error=type(exc).__name__,
                message=str(exc)[:300],
            )  # fmt: skip
            raise
        fields = {"job": job, "token": token, "op": op, **ok_fields(result)}
        self.events.record("ok", f, **fields)
        return result

    def enqueue(self, spec: JobSpec, **invoke_fields: Any) -> Job:
        """Enqueue one job; `invoke_fields` are added to the invoke event."""

        def ok_fields(job: Job) -> dict[str, Any]:
            return {
                "job": job.job_id,
                "seq": job.seq,
                "priority": job.priority,
                "queue": job.queue,
                "max_retries": job.max_retries,
                "run_at": epoch_s(job.run_at),
                "db_time": epoch_s(job.created_at),
            }

        return self._call(
            "enqueue",
            lambda: self.queue.enqueue_many([spec])[0],
            ok_fields,
            queue=spec.queue,
            priority=spec.priority,
            job_type=spec.job_type,
            **invoke_fields,
        )

    def claim(self, worker_id: str, queues: Sequence[str]) -> Job | None:
        return self._call(
            "claim",
            lambda: self.queue.claim(worker_id, queues),
            _claim_fields,
            queues=list(queues),
        )

    def renew(self, job_id: str, token: int) -> Lease:
        def ok_fields(lease: Lease) -> dict[str, Any]:
            return {
                "db_time": epoch_s(lease.renewed_at),
                "lease_expires_at": epoch_s(lease.lease_expires_at),
                "cancel_requested": lease.cancel_requested,
            }

        return self._call(
            "renew",
            lambda: self.queue.renew(job_id, token),
            ok_fields,
            job=job_id,
            token=token,
        )

    def complete(self, job_id: str, token: int, result: Any = None) -> Job:
        def ok_fields(job: Job) -> dict[str, Any]:
            return {"state": job.state.value, "db_time": epoch_s(job.finished_at)}

        return self._call(
            "complete",
            lambda: self.queue.complete(job_id, token, result),
            ok_fields,
            job=job_id,
            token=token,
        )

    def fail(
        self, job_id: str, token: int, error: ErrorInfo, *, retryable: bool = True
    ) -> Job:
        return self._call(
            "fail",
            lambda: self.queue.fail(job_id, token, error, retryable=retryable),
            _end_fields,
            job=job_id,
            token=token,
            error_type=error.error_type,
        )

    def release(self, job_id: str, token: int) -> Job:
        return self._call(
            "release",
            lambda: self.queue.release(job_id, token),
            _end_fields,
            job=job_id,
            token=token,
        )

    def finish_cancelled(self, job_id: str, token: int) -> Job:
        return self._call(
            "finish_cancelled",
            lambda: self.queue.finish_cancelled(job_id, token),
            _end_fields,
            job=job_id,
            token=token,
        )

    def recover(self) -> RecoveryResult:
        def ok_fields(result: RecoveryResult) -> dict[str, Any]:
            return {
                "requeued": [list(pair) for pair in result.requeued],
                "failed": [list(pair) for pair in result.failed],
                "cancelled": [list(pair) for pair in result.cancelled],
                "db_time": epoch_s(result.at),
            }

        return self._call("recover", self.queue.recover, ok_fields)

    def next_expiry_s(self) -> float | None:
        # A read that changes nothing: not part of the history.
        return self.queue.next_expiry_s()

    def cancel(self, job_id: str) -> Job:
        return self._call(
            "cancel",
            lambda: self.queue.cancel(job_id),
            lambda job: {"state": job.state.value},
            job=job_id,
        )
