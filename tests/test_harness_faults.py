"""Fault state machines acting on real processes (`sleep`, not workers)."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.faults import (
    DbRestartFault,
    FaultContext,
    FaultRunner,
    FaultState,
    KillFault,
    LatencyFault,
    PauseFault,
    TerminateFault,
)
from harness.live import LiveHistory
from harness.plan import FaultAction
from harness.processes import (
    WorkerConfig,
    WorkerPool,
    WorkerSlot,
    faketime_env,
)
from harness.recording import EventLog

WAIT_S = 5.0


class SleepPool(WorkerPool):
    """A pool whose processes are `sleep` commands instead of workers."""

    def command(self, slot: WorkerSlot) -> list[str]:
        return ["sleep", "60"]


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[SleepPool]:
    config = WorkerConfig(
        mongodb_uris=["unused"] * 2,
        db_name="unused",
        settings={},
        queues=["default"],
        concurrency=1,
        history_dir=tmp_path / "events",
        log_dir=tmp_path / "logs",
    )
    pool = SleepPool(config, 2)
    pool.start_all()
    yield pool
    pool.kill_all()


@pytest.fixture
def ctx(pool: SleepPool, tmp_path: Path) -> Iterator[FaultContext]:
    events_dir = tmp_path / "events"
    events_dir.mkdir(exist_ok=True)
    events = EventLog(events_dir / "nemesis.jsonl", "nemesis")
    yield FaultContext(pool, events, LiveHistory(events_dir), random.Random(1))
    events.close()


def action(
    name: str, target: int | None = 0, at_s: float = 0.0, **params: float
) -> FaultAction:
    return FaultAction.model_validate(
        {
            "at_s": at_s,
            "fault_index": 0,
            "action": name,
            "target": target,
            "params": params,
        }
    )


def process_state(pid: int) -> str:
    """Return the one-letter state of a process from /proc (R, S, T, Z ...)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def wait_for(condition: Any, timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def nemesis_events(ctx: FaultContext) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ctx.events.path.read_text().splitlines()]


def test_kill_fault_kills_and_restarts(pool: SleepPool, ctx: FaultContext) -> None:
    slot = pool.slots[0]
    first_pid = slot.pid
    assert first_pid is not None
    fault = KillFault(action("kill"))

    fault.start(ctx)

    assert fault.state is FaultState.FAULTED
    assert wait_for(lambda: not slot.alive)
    assert slot.process is not None
    assert slot.process.returncode == -signal.SIGKILL
    assert pool.supervise() == []  # an expected exit, not a crash
    assert not slot.alive  # held down until the fault heals

    fault.heal(ctx)
    assert fault.state is FaultState.HEALED
    assert wait_for(lambda: bool(pool.supervise() or slot.alive))
    assert slot.pid != first_pid
    assert slot.incarnation == 2

    kill, restart = nemesis_events(ctx)
    assert kill["f"] == "kill"
    assert kill["process"] == "w0"
    assert kill["pid"] == first_pid
    assert restart["f"] == "restart"


def test_pause_fault_stops_and_resumes(pool: SleepPool, ctx: FaultContext) -> None:
    slot = pool.slots[1]
    assert slot.pid is not None
    fault = PauseFault(action("pause", target=1))

    fault.start(ctx)
    assert wait_for(lambda: process_state(slot.pid or 0) == "T")
    assert slot.paused

    fault.heal(ctx)
    assert wait_for(lambda: process_state(slot.pid or 0) in ("S", "R"))
    assert not slot.paused
    assert slot.alive
    assert [e["f"] for e in nemesis_events(ctx)] == ["pause", "resume"]


def test_terminate_fault_sends_sigterm(pool: SleepPool, ctx: FaultContext) -> None:
    slot = pool.slots[0]
    fault = TerminateFault(action("terminate"))

    fault.start(ctx)

    assert wait_for(lambda: not slot.alive)
    assert slot.process is not None
    assert slot.process.returncode == -signal.SIGTERM
    assert pool.supervise() == []
    fault.heal(ctx)
    assert wait_for(lambda: bool(pool.supervise() or slot.alive))


def test_unexpected_exit_is_reported_once(pool: SleepPool) -> None:
    slot = pool.slots[0]
    pid = slot.pid
    assert pid is not None

    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not slot.alive)
    crashes = pool.supervise()

    assert crashes == [(slot, pid, -signal.SIGKILL)]
    assert pool.supervise() == []
    assert pool.crashes == 1
    # The pool starts a new process after a short delay.
    assert wait_for(lambda: bool(pool.supervise() or slot.alive))
    assert slot.pid != pid


def test_fault_skipped_without_target(pool: SleepPool, ctx: FaultContext) -> None:
    pool.slots[0].wanted = False
    pool.send(pool.slots[0], signal.SIGKILL)
    assert wait_for(lambda: not pool.slots[0].alive)
    fault = PauseFault(action("pause"))

    fault.start(ctx)
    fault.heal(ctx)

    assert fault.state is FaultState.SKIPPED
    assert fault.skip_reason == "worker w0 is not running"
    (event,) = nemesis_events(ctx)
    assert event["f"] == "fault_skipped"
    assert event["fault"] == "pause"


def test_db_restart_skipped_without_owned_server(ctx: FaultContext) -> None:
    fault = DbRestartFault(action("db_stop", target=None))

    fault.start(ctx)

    assert fault.state is FaultState.SKIPPED
    assert fault.skip_reason == ctx.server_skip_reason


def test_latency_skipped_without_proxy(ctx: FaultContext) -> None:
    fault = LatencyFault(action("latency_start", delay_ms=100.0))

    fault.start(ctx)

    assert fault.state is FaultState.SKIPPED


def test_fault_started_twice_raises(pool: SleepPool, ctx: FaultContext) -> None:
    fault = PauseFault(action("pause"))
    fault.start(ctx)

    with pytest.raises(RuntimeError, match="started twice"):
        fault.start(ctx)
    fault.heal(ctx)


def test_fault_runner_runs_actions_in_time_order(
    pool: SleepPool, ctx: FaultContext
) -> None:
    runner = FaultRunner(
        [
            action("resume", target=1, at_s=1.0),
            action("pause", target=1, at_s=0.5),
            action("kill", target=0, at_s=0.2),
            action("restart", target=0, at_s=2.0),
        ],
        ctx,
    )

    runner.run_due(0.6)
    assert runner.pending == 2
    assert pool.slots[1].paused
    assert [fault.state for fault in runner.faults] == [
        FaultState.FAULTED,
        FaultState.FAULTED,
    ]

    runner.heal_all()
    assert runner.pending == 0
    assert not pool.slots[1].paused
    assert runner.counts() == {"kill": {"healed": 1}, "pause": {"healed": 1}}


def test_faketime_env_shifts_wall_clock_only() -> None:
    env = faketime_env("/lib/libfaketimeMT.so.1", -90.0)

    assert env["LD_PRELOAD"] == "/lib/libfaketimeMT.so.1"
    assert env["FAKETIME"] == "-90s"
    assert env["FAKETIME_DONT_FAKE_MONOTONIC"] == "1"
