"""Map exceptions to JSON error responses, and cap the request body size.

Bodies follow FastAPI's shapes: `{"detail": "message"}`, or for errors about
one input field `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure, ExecutionTimeout, WTimeoutError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aegis.errors import (
    DatabaseUnavailable,
    InvalidJob,
    InvalidTransition,
    JobNotFound,
    PayloadTooLarge,
)

log = logging.getLogger(__name__)

# Clients may retry a 503 after this many seconds.
RETRY_AFTER_S = 5
# A database outage is logged once, then at most once per this interval.
OUTAGE_LOG_INTERVAL_S = 10.0

DATABASE_ERRORS = (
    DatabaseUnavailable,
    ConnectionFailure,
    WTimeoutError,
    ExecutionTimeout,
)


def field_error(loc: list[str | int], msg: str, error_type: str) -> dict[str, Any]:
    """Return an error body about one input field."""
    return {"detail": [{"loc": loc, "msg": msg, "type": error_type}]}


class RateLimitedWarning:
    """Log a repeated warning at most once per interval, with a repeat count."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._last_logged = -interval_s
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last_logged < self.interval_s:
                self._suppressed += 1
                return
            suppressed, self._suppressed = self._suppressed, 0
            self._last_logged = now
        if suppressed:
            message += f" ({suppressed} similar errors since the last report)"
        self.logger.warning(message, *args)


outage_warning = RateLimitedWarning(log, OUTAGE_LOG_INTERVAL_S)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only loc, msg and type: echoing the input could return megabytes.
    errors = [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    return JSONResponse(
        jsonable_encoder({"detail": errors}),
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


async def _payload_too_large(request: Request, exc: Exception) -> JSONResponse:
    body = field_error(["body", "payload"], str(exc), "payload_too_large")
    return JSONResponse(body, status_code=status.HTTP_413_CONTENT_TOO_LARGE)


async def _invalid_job(request: Request, exc: Exception) -> JSONResponse:
    body = field_error(["body"], str(exc), "invalid_job")
    return JSONResponse(body, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_404_NOT_FOUND)


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    outage_warning.warning(
        "%s %s: database unavailable: %s", request.method, request.url.path, exc
    )
    return JSONResponse(
        {"detail": "database unavailable: MongoDB did not answer; retry later"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s: unhandled error", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        {"detail": "internal server error; the server log has the details"},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    # PayloadTooLarge is an InvalidJob: it must come first to win.
    app.add_exception_handler(PayloadTooLarge, _payload_too_large)
    app.add_exception_handler(InvalidJob, _invalid_job)
    app.add_exception_handler(JobNotFound, _not_found)
    app.add_exception_handler(InvalidTransition, _conflict)
    for error_class in DATABASE_ERRORS:
        app.add_exception_handler(error_class, _database_unavailable)
    app.add_exception_handler(Exception, _internal_error)


class BodyTooLarge(HTTPException):
    """Raised while reading a request body that passed the size limit."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"request body is larger than {limit_bytes} bytes",
        )


class BodySizeLimit:
    """ASGI middleware that rejects bodies over `max_body_bytes` with 413.

    A declared `Content-Length` over the limit is rejected before the body
    is read; a body without one is counted as it arrives.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and not declared.isdigit():
            response = JSONResponse(
                {"detail": "invalid Content-Length header: expected a byte count"},
                status_code=status.HTTP_400_BAD_REQUEST,
            )
            await response(scope, receive, send)
            return
        if declared is not None and int(declared) > self.max_body_bytes:
            response = JSONResponse(
                {"detail": f"request body is larger than {self.max_body_bytes} bytes"},
                status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            )
            await response(scope, receive, send)
            return

        received_bytes = 0

        async def limited_receive() -> Message:
            nonlocal received_bytes
            message = await receive()
            if message["type"] == "http.request":
                received_bytes += len(message.get("body", b""))
                if received_bytes > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        await self.app(scope, limited_receive, send)
