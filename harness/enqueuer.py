"""The thread that enqueues the plan's jobs at their planned times.

Each job carries the idempotency key ``plan-<index>``, so an enqueue whose
outcome was unknown (a database error) is retried without creating a second
job: the retry returns the job the first attempt inserted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from pymongo.errors import PyMongoError

from aegis.errors import AegisError
from aegis.queue import JobSpec
from harness.plan import JobSpec as PlannedJob
from harness.recording import RecordingQueue

log = logging.getLogger(__name__)

RETRY_DELAY_S = 0.5


def idempotency_key(index: int) -> str:
    return f"plan-{index}"


class Enqueuer(threading.Thread):
    """Enqueue planned jobs at `start_t + enqueue_at_s`, retrying database errors."""

    def __init__(
        self,
        queue: RecordingQueue,
        jobs: Sequence[PlannedJob],
        start_t: float,
    ) -> None:
        super().__init__(name="enqueuer", daemon=True)
        self.queue = queue
        self.jobs = sorted(jobs, key=lambda job: (job.enqueue_at_s, job.index))
        self.start_t = start_t
        self.stop_event = threading.Event()
        self.job_ids: dict[int, str] = {}
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        return len(self.job_ids) == len(self.jobs)

    def run(self) -> None:
        try:
            for planned in self.jobs:
                delay_s = self.start_t + planned.enqueue_at_s - time.monotonic()
                if delay_s > 0 and self.stop_event.wait(delay_s):
                    return
                if not self._enqueue(planned):
                    return
        except AegisError as exc:
            # An invalid planned job is a harness defect; the runner reports it.
            log.exception("enqueue failed")
            self.error = exc

    def _enqueue(self, planned: PlannedJob) -> bool:
        spec = JobSpec(
            planned.job_type,
            planned.payload,
            queue=planned.queue,
            priority=planned.priority,
            max_retries=planned.max_retries,
            idempotency_key=idempotency_key(planned.index),
        )
        while not self.stop_event.is_set():
            try:
                job = self.queue.enqueue(spec, index=planned.index)
            except PyMongoError as exc:
                log.warning(
                    "enqueue of job %d failed (%s); retrying in %.1f s",
                    planned.index,
                    type(exc).__name__,
                    RETRY_DELAY_S,
                )
                self.stop_event.wait(RETRY_DELAY_S)
                continue
            self.job_ids[planned.index] = job.job_id
            return True
        return False
