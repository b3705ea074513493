"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter

from aegis.api.deps import StoreDep
from aegis.api.schemas import StatusPublic

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> StatusPublic:
    """Return 200 while the process serves requests."""
    return StatusPublic(status="ok")


@router.get("/readyz", responses={503: {"description": "the database is unreachable"}})
def readyz(store: StoreDep) -> StatusPublic:
    """Return 200 when a database ping succeeds, else 503."""
    store.ping()
    return StatusPublic(status="ready")
