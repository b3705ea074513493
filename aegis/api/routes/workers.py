"""Worker processes and their liveness."""

from __future__ import annotations

from fastapi import APIRouter

from aegis.api.deps import ContextDep, WorkersDep
from aegis.api.schemas import WorkerPublic

router = APIRouter(prefix="/jobs", tags=["workers"])


@router.get("/workers")
def list_workers(context: ContextDep, workers: WorkersDep) -> list[WorkerPublic]:
    """List workers, newest heartbeat first, with ALIVE or DEAD."""
    dead_after_s = context.queue_settings.worker_dead_after_s
    return [WorkerPublic.from_info(info) for info in workers.list(dead_after_s)]
