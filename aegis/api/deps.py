"""Dependencies shared by the routers: the context, the queue, the token check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from aegis.api.context import ApiContext
from aegis.metrics import InstrumentedQueue
from aegis.store import Store
from aegis.workers import WorkerRegistry

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="required by write endpoints when AEGIS_API_TOKEN is set",
)


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


ContextDep = Annotated[ApiContext, Depends(get_context)]


def get_store(context: ContextDep) -> Store:
    if context.store is None:
        raise RuntimeError("the API context has no store; was the lifespan run?")
    return context.store


def get_queue(context: ContextDep) -> InstrumentedQueue:
    if context.queue is None:
        raise RuntimeError("the API context has no queue; was the lifespan run?")
    return context.queue


def get_workers(context: ContextDep) -> WorkerRegistry:
    if context.workers is None:
        raise RuntimeError("the API context has no store; was the lifespan run?")
    return context.workers


StoreDep = Annotated[Store, Depends(get_store)]
QueueDep = Annotated[InstrumentedQueue, Depends(get_queue)]
WorkersDep = Annotated[WorkerRegistry, Depends(get_workers)]


def require_token(
    context: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """Reject the request with 401 unless it carries the configured token."""
    expected = context.api_settings.token
    if expected is None:
        return
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: send the header 'Authorization: Bearer <token>'",
            headers=challenge,
        )
    # compare_digest takes as long for a near miss as for a wrong first byte.
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid bearer token", headers=challenge
        )


Authorized = Depends(require_token)
