"""Recovery of jobs whose lease expired."""

from __future__ import annotations

from fastapi import APIRouter

from aegis.api.deps import Authorized, QueueDep
from aegis.api.schemas import RecoveryPublic

router = APIRouter(prefix="/jobs", tags=["recovery"])


@router.post("/requeue-stuck", dependencies=[Authorized])
def requeue_stuck(queue: QueueDep) -> RecoveryPublic:
    """Requeue (or fail, at the retry cap) running jobs whose lease expired."""
    return RecoveryPublic.from_result(queue.recover())
