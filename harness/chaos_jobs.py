"""The job handlers that worker processes run during a chaos run.

Job types and payloads come from `harness.plan`:
- ``work`` sleeps ``payload.duration_s``, writes a side-effect document and
  raises on its first ``payload.failing_attempts`` attempts;
- ``crash`` SIGKILLs its own worker process, as a poison job would;
- ``hang`` freezes its whole worker process for ``payload.sleep_s``, longer
  than the lease, then writes its side effect like ``work``. The heartbeat
  thread freezes too, so the lease expires, as in a stop-the-world pause.

Each side effect is one document `{job, token, attempt, process, worker, t}`
in the `effects` collection, written before the handler returns or raises,
so the effects count how often a handler ran to its end for each token.
Handlers record ``execute`` events: ``invoke`` when they start, ``ok`` or
``fail`` when they end. A ``crash`` handler records only the ``invoke``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
from typing import Any

from pymongo.collection import Collection

from aegis.handlers import HandlerRegistry, JobContext
from harness.recording import EventLog

log = logging.getLogger(__name__)

EFFECTS = "effects"
WORK = "work"
CRASH = "crash"
HANG = "hang"


# usleep takes a 32-bit count of microseconds.
MAX_FREEZE_S = 4000.0


def freeze_process(seconds: float) -> None:
    """Sleep without releasing the GIL, so every thread of this process stops.

    `ctypes.PyDLL` keeps the GIL during the call, unlike `ctypes.CDLL`.
    """
    if not 0 <= seconds <= MAX_FREEZE_S:
        raise ValueError(f"freeze must be 0 to {MAX_FREEZE_S:g} s, got {seconds}")
    libc = ctypes.PyDLL(None)
    libc.usleep(ctypes.c_uint(int(seconds * 1_000_000)))


class InjectedFailure(RuntimeError):
    """Raised by a ``work`` job on an attempt that the plan marks as failing."""


class ChaosJobs:
    """Handlers for the plan's job types, recording to one process's history."""

    def __init__(self, events: EventLog, effects: Collection[dict[str, Any]]) -> None:
        self.events = events
        self.effects = effects

    def registry(self) -> HandlerRegistry:
        handlers = HandlerRegistry()
        handlers.register(WORK, self.work)
        handlers.register(CRASH, self.crash)
        handlers.register(HANG, self.hang)
        return handlers

    def _start(self, ctx: JobContext) -> int:
        op = self.events.next_op()
        self.events.record(
            "invoke", "execute", job=ctx.job_id, token=ctx.token, op=op,
            attempts=ctx.attempt, job_type=ctx.job.job_type,
        )  # fmt: skip
        return op

    def _write_effect(self, ctx: JobContext) -> None:
        self.effects.insert_one(
            {
                "job": ctx.job_id,
                "token": ctx.token,
                "attempt": ctx.attempt,
                "process": self.events.process,
                "worker": self.events.worker,
                "t": time.monotonic(),
            }
        )

    def _run(
        self,
        ctx: JobContext,
        sleep_s: float,
        failing_attempts: int,
        freeze: bool = False,
    ) -> Any:
        op = self._start(ctx)
        try:
            if freeze:
                freeze_process(sleep_s)
            else:
                time.sleep(sleep_s)
            self._write_effect(ctx)
            if ctx.attempt <= failing_attempts:
                raise InjectedFailure(
                    f"injected failure on attempt {ctx.attempt} of {failing_attempts}"
                )
        except Exception as exc:
            self.events.record(
                "fail", "execute", job=ctx.job_id, token=ctx.token, op=op,
                error=type(exc).__name__, message=str(exc)[:300],
            )  # fmt: skip
            raise
        self.events.record("ok", "execute", job=ctx.job_id, token=ctx.token, op=op)
        return {"slept_s": sleep_s, "attempt": ctx.attempt}

    def work(self, ctx: JobContext) -> Any:
        payload = ctx.payload
        return self._run(
            ctx,
            float(payload.get("duration_s", 0.0)),
            int(payload.get("failing_attempts", 0)),
        )

    def hang(self, ctx: JobContext) -> Any:
        return self._run(ctx, float(ctx.payload.get("sleep_s", 0.0)), 0, freeze=True)

    def crash(self, ctx: JobContext) -> None:
        self._start(ctx)
        log.warning(
            "job %s token %d worker %s: poison job; killing this process",
            ctx.job_id,
            ctx.token,
            self.events.worker,
        )
        os.kill(os.getpid(), signal.SIGKILL)
