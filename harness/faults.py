"""Fault injection: each fault occurrence is a small state machine.

    HEALTHY --start--> FAULTED --heal--> HEALED
    HEALTHY --start--> SKIPPED   (the fault cannot act here; the reason is logged)

`FaultRunner` takes the fault actions of a `harness.plan.Plan` (a start
action and its heal action per occurrence, at offsets from the start of the
fault phase) and moves the matching state machines when each action is due.
Every start and heal is an ``info`` event in the history named after the
action, with its target; a skipped fault is a ``fault_skipped`` event with
the fault's name and the reason. Random choices made while a run goes on (which busy worker
a kill hits when the planned one is idle) use an RNG seeded from the
scenario seed.
"""

from __future__ import annotations

import enum
import logging
import random
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aegis.devdb import EmbeddedServer
from harness.live import LiveHistory
from harness.plan import FaultAction
from harness.processes import WorkerPool, WorkerSlot, clock_skew_method
from harness.proxy import TcpProxy
from harness.recording import EventLog

log = logging.getLogger(__name__)


class FaultState(enum.StrEnum):
    HEALTHY = "healthy"
    FAULTED = "faulted"
    HEALED = "healed"
    SKIPPED = "skipped"


class FaultSkipped(Exception):
    """Raised by a fault's start when it cannot act; the message is the reason."""


@dataclass
class FaultContext:
    """What faults act on: the workers, the database server and the proxies."""

    pool: WorkerPool
    events: EventLog
    live: LiveHistory
    rng: random.Random
    server: EmbeddedServer | None = None
    proxies: list[TcpProxy] | None = None
    # Why db_restart or latency faults cannot act in this run, if they cannot.
    server_skip_reason: str = "the harness does not own the database server"
    proxy_skip_reason: str = "workers do not connect through a proxy"
    # Worker slots that an active fault holds.
    held: set[int] = field(default_factory=set)


class Fault:
    """One occurrence of a fault; subclasses define `_start` and `_heal`."""

    start_action: ClassVar[str]
    heal_action: ClassVar[str]

    def __init__(self, action: FaultAction) -> None:
        self.fault_index = action.fault_index
        self.target = action.target
        self.params = dict(action.params)
        self.planned_at_s = action.at_s
        self.state = FaultState.HEALTHY
        self.skip_reason: str | None = None
        self.details: dict[str, Any] = {}

    @property
    def kind(self) -> str:
        return self.start_action

    def start(self, ctx: FaultContext) -> None:
        if self.state is not FaultState.HEALTHY:
            raise RuntimeError(f"{self.kind} fault started twice ({self.state})")
        try:
            self.details = self._start(ctx)
        except FaultSkipped as exc:
            self.state = FaultState.SKIPPED
            self.skip_reason = str(exc)
            log.warning("%s fault skipped: %s", self.kind, exc)
            # A name of its own, so no checker mistakes it for the fault itself.
            ctx.events.info(
                "fault_skipped",
                fault=self.start_action,
                reason=str(exc),
                **self._describe(ctx),
            )
            return
        self.state = FaultState.FAULTED
        if self.target is not None:
            ctx.held.add(self.target)
        log.info("fault %s started: %s", self.kind, self.details)
        ctx.events.info(self.start_action, **self._describe(ctx), **self.details)

    def heal(self, ctx: FaultContext) -> None:
        if self.state is not FaultState.FAULTED:
            return
        details = self._heal(ctx)
        self.state = FaultState.HEALED
        if self.target is not None:
            ctx.held.discard(self.target)
        log.info("fault %s healed: %s", self.kind, details)
        ctx.events.info(self.heal_action, **self._describe(ctx), **details)

    def _describe(self, ctx: FaultContext) -> dict[str, Any]:
        """Return the fields that name the fault and its target in an event.

        An event about a worker carries the worker's own process label and
        pid, so checkers can tie it to that process's operations.
        """
        described: dict[str, Any] = {"fault_index": self.fault_index}
        if self.target is not None:
            slot = ctx.pool.slots[self.target]
            described.update(target=slot.label, process=slot.label, pid=slot.pid)
        return described

    def _start(self, ctx: FaultContext) -> dict[str, Any]:
        raise NotImplementedError

    def _heal(self, ctx: FaultContext) -> dict[str, Any]:
        raise NotImplementedError

    def _slot(self, ctx: FaultContext) -> WorkerSlot:
        assert self.target is not None
        return ctx.pool.slots[self.target]

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "fault_index": self.fault_index,
            "target": None if self.target is None else f"w{self.target}",
            "at_s": self.planned_at_s,
            "state": self.state.value,
            "skipped": self.skip_reason,
        }


def _require_alive(slot: WorkerSlot) -> None:
    if not slot.alive:
        raise FaultSkipped(f"worker {slot.label} is not running")


class KillFault(Fault):
    """SIGKILL a worker in the middle of a job; start a new one on heal."""

    start_action = "kill"
    heal_action = "restart"

    def _start(self, ctx: FaultContext) -> dict[str, Any]:
        self.target = self._pick_busy_worker(ctx)
        slot = self._slot(ctx)
        _require_alive(slot)
        running = sorted(ctx.live.running_jobs(slot.worker_id))
        slot.wanted = False
        ctx.pool.send(slot, signal.SIGKILL)
        return {"running_jobs": running}

    def _pick_busy_worker(self, ctx: FaultContext) -> int:
        """Keep the planned target if it runs a job, else pick a busy one."""
        assert self.target is not None
        busy = [
            slot.index
            for slot in ctx.pool.slots
            if slot.alive
            and not slot.paused
            and (slot.index == self.target or slot.index not in ctx.held)
            and ctx.live.running_jobs(slot.worker_id)
        ]
        if self.target in busy or not busy:
            return self.target
        return ctx.rng.choice(busy)

    def _heal(self, ctx: FaultContext) -> dict[str, Any]:
        self._slot(ctx).wanted = True
        return {}


class TerminateFault(Fault):
    """SIGTERM a worker, which drains and exits; start a new one on heal."""

    start_action = "terminate"
    heal_action = "restart"

    def _start(self, ctx: FaultContext) -> dict[str, Any]:
        slot = self._slot(ctx)
        _require_alive(slot)
        slot.wanted = False
        ctx.pool.send(slot, signal.SIGTERM)
        return {}

    def _heal(self, ctx: FaultContext) -> dict[str, Any]:
        # The pool starts the new process once the draining one has exited.
        self._slot(ctx).wanted = True
        return {}


class PauseFault(Fault):
    """SIGSTOP a worker; SIGCONT on heal, when its leases have expired."""

    start_action = "pause"
    heal_action = "resume"

    def _start(self, ctx: FaultContext) -> dict[str, Any]:
        slot = self._slot(ctx)
        _require_alive(slot)
        running = sorted(ctx.live.running_jobs(slot.worker_id))
        ctx.pool.send(slot, signal.SIGSTOP)
        return {"running_jobs": running}

    def _heal(self, ctx: FaultContext) -> dict[str, Any]:
        slot = self._slot(ctx)
        ctx.pool.send(slot, signal.SIGCONT)
        return {}


class DbRestartFault(Fault):
    """Stop the harness's own database server; start it again on heal."""

    start_action = "db_stop"
    heal_action = "db_start"

    def _start(self, ctx: FaultContext) -> dict[str, Any]:
        if ctx.server is None:
            raise FaultSkipped(ctx.server_skip_reason)
        ctx.server.stop()
        return {"server_pid": ctx.server.pid}

    def _heal(self, ctx: FaultContext) -> dict[str, Any]:
        assert ctx.server is not None
        ctx.server.start()
        return {"server_pid": ctx.server.pid}


class LatencyFault(Fault):
    """Delay or cut one worker's database traffic in its proxy."""

    start_action = "latency_start"
    heal_action = "latency_end"

    def _proxy(self, ctx: FaultContext) -> TcpProxy:
        if ctx.proxies is None:
            raise FaultSkipped(ctx.proxy_skip_reason)
        assert self.target is not None
        return ctx.proxies[self.target]

    def _start(self, ctx: FaultContext) -> dict[str, Any]:
        proxy = self._proxy(ctx)
        delay_ms = float(self.params.get("delay_ms", 0.0))
        drop_probability = float(self.params.get("drop_probability", 0.0))
        proxy.set_delay(delay_ms / 1000)
        proxy.set_drop_probability(drop_probability)
        return {"delay_ms": delay_ms, "drop_probability": drop_probability}

    def _heal(self, ctx: FaultContext) -> dict[str, Any]:
        proxy = self._proxy(ctx)
        proxy.set_delay(0.0)
        proxy.set_drop_probability(0.0)
        return {"connections_dropped": proxy.connections_dropped}


class ClockSkewFault(Fault):
    """Restart a worker with its wall clock shifted by `offset_s`.

    With libfaketime, when it works with Python here, the whole process's
    wall clock moves. Otherwise the worker shifts `time.time` in-process
    (`harness.skewed_clock`). Either way the monotonic clock stays real, so
    history times stay comparable, and the database clock is untouched.
    Lease decisions use the database clock, so the skew should change nothing.
    """

    start_action = "clock_skew"
    heal_action = "clock_skew"

    def _start(self, ctx: FaultContext) -> dict[str, Any]:
        _require_alive(self._slot(ctx))
        offset_s = float(self.params.get("offset_s", 0.0))
        self._restart_with_offset(ctx, offset_s)
        return {"offset_s": offset_s, "method": clock_skew_method()}

    def _heal(self, ctx: FaultContext) -> dict[str, Any]:
        self._restart_with_offset(ctx, 0.0)
        return {"offset_s": 0.0}

    def _restart_with_offset(self, ctx: FaultContext, offset_s: float) -> None:
        slot = self._slot(ctx)
        slot.clock_offset_s = offset_s
        # A graceful stop; the pool starts the process again with the offset.
        ctx.pool.send(slot, signal.SIGTERM)


FAULT_TYPES: dict[str, type[Fault]] = {
    cls.start_action: cls
    for cls in (
        KillFault,
        TerminateFault,
        PauseFault,
        DbRestartFault,
        LatencyFault,
    )
}
HEAL_ACTIONS = frozenset({"restart", "resume", "db_start", "latency_end"})


def _is_start(action: FaultAction) -> bool:
    if action.action == "clock_skew":
        return float(action.params.get("offset_s", 0.0)) != 0.0
    return action.action not in HEAL_ACTIONS


class FaultRunner:
    """Runs the plan's fault actions in time order."""

    def __init__(self, actions: Sequence[FaultAction], ctx: FaultContext) -> None:
        self.actions = sorted(actions, key=lambda action: action.at_s)
        self.ctx = ctx
        self.faults: list[Fault] = []
        self._next = 0
        self._open: dict[tuple[int, int | None], Fault] = {}

    @property
    def pending(self) -> int:
        return len(self.actions) - self._next

    def run_due(self, elapsed_s: float) -> None:
        """Run every action whose time is at or before `elapsed_s`."""
        while self._next < len(self.actions):
            action = self.actions[self._next]
            if action.at_s > elapsed_s:
                return
            self._next += 1
            self._run(action)

    def _run(self, action: FaultAction) -> None:
        key = (action.fault_index, action.target)
        if _is_start(action):
            fault_type: type[Fault] = ClockSkewFault
            if action.action != "clock_skew":
                fault_type = FAULT_TYPES[action.action]
            fault = fault_type(action)
            self.faults.append(fault)
            self._open[key] = fault
            fault.start(self.ctx)
        else:
            opened = self._open.pop(key, None)
            if opened is None:
                log.warning("heal action %s has no started fault", action.action)
                return
            opened.heal(self.ctx)

    def heal_all(self) -> None:
        """Heal every fault still active; no action after this one runs."""
        self._next = len(self.actions)
        for fault in list(self._open.values()):
            fault.heal(self.ctx)
        self._open.clear()

    def counts(self) -> dict[str, dict[str, int]]:
        """Return, per fault kind, how many occurrences ended in each state."""
        result: dict[str, dict[str, int]] = {}
        for fault in self.faults:
            by_state = result.setdefault(fault.kind, {})
            by_state[fault.state.value] = by_state.get(fault.state.value, 0) + 1
        return result
