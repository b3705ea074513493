"""Wake idle workers when a job becomes QUEUED, instead of sleeping blindly.

A background thread follows a change stream on the jobs collection and sets
an event for every insert or update that leaves a job QUEUED. A worker whose
last claim found nothing waits on that event, up to its poll interval. A
delayed job produces no change when its `run_at` arrives, so the poll
interval still bounds how late such a job starts.

Change streams need a replica set. Where the server has none, or the stream
fails, `wait` degrades to a plain sleep and the failure is logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

from pymongo.errors import OperationFailure, PyMongoError

from aegis.models import JobState
from aegis.store import Store

log = logging.getLogger(__name__)

# MongoDB's code for "change streams are only supported on replica sets".
CHANGE_STREAMS_UNSUPPORTED = 40573
STREAM_AWAIT_MS = 500
RECONNECT_DELAY_S = 2.0


class WorkSignal(Protocol):
    """Something a worker waits on when the queue looked empty."""

    def wait(self, timeout_s: float) -> bool: ...
    def notify(self) -> None: ...
    def close(self) -> None: ...


class ChangeStreamWakeup:
    """A `WorkSignal` fed by a change stream on the jobs collection."""

    def __init__(self, store: Store, queues: Sequence[str]) -> None:
        self.store = store
        self.queues = list(queues)
        self._event = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="wakeup", daemon=True)
        self._thread.start()

    def _pipeline(self) -> list[dict[str, object]]:
        queued = JobState.QUEUED.value
        return [
            {
                "$match": {
                    "$or": [
                        # Inserts and whole-document replacements.
                        {
                            "fullDocument.state": queued,
                            "fullDocument.queue": {"$in": self.queues},
                        },
                        # Updates that set the state (the queue is not in them).
                        {"updateDescription.updatedFields.state": queued},
                    ]
                }
            }
        ]

    def _follow(self) -> None:
        while not self._closed.is_set():
            try:
                with self.store.jobs.watch(
                    self._pipeline(), max_await_time_ms=STREAM_AWAIT_MS
                ) as stream:
                    while not self._closed.is_set():
                        if stream.try_next() is not None:
                            self._event.set()
            except OperationFailure as exc:
                if exc.code == CHANGE_STREAMS_UNSUPPORTED:
                    log.info("change streams unavailable (%s); idle workers poll", exc)
                    return
                log.warning("change stream failed (%s); reopening", exc)
            except PyMongoError as exc:
                log.warning("change stream failed (%s); reopening", exc)
            self._closed.wait(RECONNECT_DELAY_S)

    def wait(self, timeout_s: float) -> bool:
        """Wait until a job may be claimable or `timeout_s` passes."""
        woken = self._event.wait(timeout_s)
        self._event.clear()
        return woken

    def notify(self) -> None:
        self._event.set()

    def close(self) -> None:
        self._closed.set()
        self._event.set()
        self._thread.join(timeout=STREAM_AWAIT_MS / 1000 + 2)
