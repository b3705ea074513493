"""The workers collection: who is running, and whether each is alive.

A worker upserts its document at start, refreshes `heartbeat_at` with the
database clock on every heartbeat and marks itself stopped on exit.
Liveness is derived, never stored: ALIVE while the last heartbeat is younger
than `dead_after_s` by the database clock, DEAD otherwise (a worker that
was SIGKILLed never marks itself stopped).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aegis.models import as_utc
from aegis.store import Store

NOW = "$$NOW"


@dataclass(frozen=True)
class WorkerInfo:
    """One worker as the API and CLI show it."""

    worker_id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime | None
    heartbeat_at: datetime | None
    heartbeat_age_s: float | None
    current_jobs: list[str]
    stopped: bool
    alive: bool

    @property
    def liveness(self) -> str:
        return "ALIVE" if self.alive else "DEAD"


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerRegistry:
    """Reads and writes worker documents."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def register(self, worker_id: str, queues: Sequence[str], concurrency: int) -> None:
        self.store.workers.update_one(
            {"_id": worker_id},
            [
                {
                    "$set": {
                        "host": socket.gethostname(),
                        "pid": os.getpid(),
                        "queues": {"$literal": list(queues)},
                        "concurrency": concurrency,
                        "started_at": NOW,
                        "heartbeat_at": NOW,
                        "current_jobs": [],
                        "stopped": False,
                    }
                }
            ],
            upsert=True,
        )

    def heartbeat(self, worker_id: str, current_jobs: Sequence[str]) -> None:
        self.store.workers.update_one(
            {"_id": worker_id},
            [
                {
                    "$set": {
                        "heartbeat_at": NOW,
                        "current_jobs": {"$literal": list(current_jobs)},
                    }
                }
            ],
        )

    def mark_stopped(self, worker_id: str) -> None:
        self.store.workers.update_one(
            {"_id": worker_id},
            [{"$set": {"heartbeat_at": NOW, "current_jobs": [], "stopped": True}}],
        )

    def list(
        self, dead_after_s: float, *, include_stopped: bool = True
    ) -> list[WorkerInfo]:
        """Return workers, newest heartbeat first, with liveness by database time."""
        now = self.store.server_time()
        query: dict[str, Any] = {} if include_stopped else {"stopped": False}
        workers = []
        for doc in self.store.workers.find(query).sort("heartbeat_at", -1):
            heartbeat_at = as_utc(doc.get("heartbeat_at"))
            age_s = (now - heartbeat_at).total_seconds() if heartbeat_at else None
            stopped = bool(doc.get("stopped", False))
            workers.append(
                WorkerInfo(
                    worker_id=str(doc["_id"]),
                    host=str(doc.get("host", "")),
                    pid=int(doc.get("pid", 0)),
                    queues=list(doc.get("queues", [])),
                    concurrency=int(doc.get("concurrency", 1)),
                    started_at=as_utc(doc.get("started_at")),
                    heartbeat_at=heartbeat_at,
                    heartbeat_age_s=age_s,
                    current_jobs=[str(j) for j in doc.get("current_jobs", [])],
                    stopped=stopped,
                    alive=not stopped and age_s is not None and age_s < dead_after_s,
                )
            )
        return workers
