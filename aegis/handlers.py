"""Job handlers: registered by name in Python, looked up by job type.

Handlers are plain functions taking a `JobContext`. Payloads are JSON
objects; nothing in a payload is ever unpickled or evaluated.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aegis.errors import ConfigError, JobCancelled, UnknownJobType
from aegis.models import Job


@dataclass
class JobContext:
    """What a handler gets: the job, and events it should watch while running.

    `cancel_requested` is set when an operator asked to cancel the job;
    `lease_lost` when the lease is lost (its result would
    be rejected). Long handlers should check both and stop early.
    """

    job: Job
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    lease_lost: threading.Event = field(default_factory=threading.Event)

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload

    @property
    def job_id(self) -> str:
        return self.job.job_id

    @property
    def token(self) -> int:
        return self.job.token

    @property
    def attempt(self) -> int:
        return self.job.attempts

    def sleep(self, seconds: float) -> None:
        """Sleep, raising `JobCancelled` early if cancellation is requested."""
        if self.cancel_requested.wait(seconds):
            raise JobCancelled(f"job {self.job_id} cancelled while sleeping")


Handler = Callable[[JobContext], Any]


class HandlerRegistry:
    """A mapping of job type to handler."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, job_type: str, function: Handler) -> None:
        if job_type in self._handlers and self._handlers[job_type] is not function:
            raise ConfigError(
                f"a handler for job type {job_type!r} is already registered"
            )
        self._handlers[job_type] = function

    def handler(self, job_type: str) -> Callable[[Handler], Handler]:
        """Decorator form of `register`."""

        def decorate(function: Handler) -> Handler:
            self.register(job_type, function)
            return function

        return decorate

    def get(self, job_type: str) -> Handler:
        try:
            return self._handlers[job_type]
        except KeyError:
            known = ", ".join(sorted(self._handlers)) or "none"
            raise UnknownJobType(
                f"no handler registered for job type {job_type!r} (registered: {known})"
            ) from None

    def __contains__(self, job_type: object) -> bool:
        return job_type in self._handlers

    def names(self) -> list[str]:
        return sorted(self._handlers)


# The registry that `aegis worker` uses; user modules register here.
registry = HandlerRegistry()
handler = registry.handler


def import_handler_modules(modules: list[str]) -> None:
    """Import user modules so their `@handler` decorators run.

    The current directory is searched first, as `python -m` would, so a
    module next to where the worker starts is found without PYTHONPATH.
    """
    if modules and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(
                f"cannot import handler module {name!r}: {exc}; the module must be "
                "importable from the current directory or PYTHONPATH"
            ) from exc


# -- built-in demo job types -------------------------------------------------


@handler("echo")
def echo(ctx: JobContext) -> dict[str, Any]:
    """Return the payload as the result."""
    return ctx.payload


@handler("sleep")
def sleep(ctx: JobContext) -> dict[str, Any]:
    """Sleep `payload.seconds` (default 1), stopping early on cancellation."""
    seconds = float(ctx.payload.get("seconds", 1.0))
    if seconds < 0:
        raise ValueError(f"sleep: seconds must be >= 0, got {seconds}")
    started = time.monotonic()
    ctx.sleep(seconds)
    return {"slept_s": round(time.monotonic() - started, 3)}


@handler("fail")
def fail(ctx: JobContext) -> None:
    """Raise `RuntimeError(payload.message)`: a job that always fails."""
    raise RuntimeError(str(ctx.payload.get("message", "job failed on purpose")))


@handler("noop")
def noop(ctx: JobContext) -> None:
    """Do nothing; for throughput measurements."""
