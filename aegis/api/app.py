"""The FastAPI application: `create_app(...)`, and `app` for uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from aegis.api.context import ApiContext
from aegis.api.errors import BodySizeLimit, install_error_handlers
from aegis.api.routes import health, jobs, metrics, recovery, stats, workers
from aegis.settings import ApiSettings, QueueSettings, StoreSettings
from aegis.store import Store

log = logging.getLogger(__name__)


def create_app(
    api_settings: ApiSettings | None = None,
    store_settings: StoreSettings | None = None,
    queue_settings: QueueSettings | None = None,
    *,
    store: Store | None = None,
) -> FastAPI:
    """Build the app. Settings default to the environment.

    With `store`, the app uses it and leaves it open at shutdown; otherwise
    it connects at start-up and closes the connection at shutdown.
    """
    context = ApiContext(
        api_settings=api_settings or ApiSettings(),
        store_settings=store_settings or StoreSettings(),
        queue_settings=queue_settings or QueueSettings(),
        store=store,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context.open()
        if context.api_settings.token is None:
            log.warning(
                "AEGIS_API_TOKEN is not set: submit, cancel, retry and "
                "requeue-stuck accept requests without a token"
            )
        try:
            yield
        finally:
            context.close()

    app = FastAPI(
        title="AegisQueue",
        summary="A job queue on MongoDB with fenced leases",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.context = context
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimit, max_body_bytes=context.api_settings.max_request_body_bytes
    )
    # The fixed /jobs/... paths come before /jobs/{jobId}, which would match them.
    for router in (
        stats.router,
        workers.router,
        recovery.router,
        jobs.router,
        health.router,
        metrics.router,
    ):
        app.include_router(router)
    return app


app = create_app()
