"""Job statistics."""

from __future__ import annotations

from fastapi import APIRouter

from aegis.api.deps import StoreDep
from aegis.api.schemas import StatsPublic
from aegis.queries import job_stats

router = APIRouter(prefix="/jobs", tags=["stats"])


@router.get("/stats")
def get_stats(store: StoreDep) -> StatsPublic:
    """Count jobs by status and queue, with the queued backlog's age."""
    return StatsPublic.from_stats(job_stats(store))
