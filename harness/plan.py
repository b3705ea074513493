"""Expand a scenario into the exact jobs and fault actions of one run.

Every random choice comes from the seed: the workload from
``random.Random(f"{seed}:workload")`` and the fault schedule from
``random.Random(f"{seed}:faults")``. Separate streams keep the workload the
same when only the faults of a scenario change. String seeds are hashed with
SHA-512 by `random.Random`, so a plan is the same on every Python process and
platform.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from harness.scenario import (
    ClockSkewFault,
    DbRestartFault,
    ExponentialDuration,
    FaultSpec,
    FixedDuration,
    KillFault,
    LatencyFault,
    PauseFault,
    Scenario,
    TerminateFault,
    UniformDuration,
)

__all__ = ["FaultAction", "JobSpec", "Plan", "generate_plan"]

JobType = Literal["work", "crash", "hang"]
FaultActionName = Literal[
    "kill",
    "terminate",
    "restart",
    "pause",
    "resume",
    "db_stop",
    "db_start",
    "latency_start",
    "latency_end",
    "clock_skew",
]

# A hang job sleeps this many lease lengths unless the scenario sets hang_for.
HANG_LEASES = 3.0
# Generated times are rounded to milliseconds to keep saved plans readable.
TIME_DECIMALS = 3


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobSpec(_Record):
    """One job to enqueue.

    `job_type` is ``work`` (sleep ``payload.duration_s``, raising on the first
    ``payload.failing_attempts`` attempts), ``crash`` (the handler kills its
    own process) or ``hang`` (the handler freezes its whole worker process
    for ``payload.sleep_s``, past its lease). Every payload carries ``index``, the job's position in the plan.
    """

    index: int
    enqueue_at_s: float  # offset from the start of the run
    queue: str
    job_type: JobType
    payload: dict[str, Any]
    priority: int
    max_retries: int


class FaultAction(_Record):
    """One step of a fault: its start (``kill``, ``pause`` ...) or its heal.

    `target` is a worker index, or None for the database. `params` contains
    ``delay_ms`` and ``drop_probability`` for ``latency_start`` and
    ``offset_s`` for ``clock_skew`` (0 when the skew heals).
    """

    at_s: float  # offset from the start of the fault phase
    fault_index: int  # position of the fault in the scenario's `faults`
    action: FaultActionName
    target: int | None
    params: dict[str, float] = {}


class Plan(_Record):
    """The jobs and fault actions of one run, saved with its report."""

    scenario: str
    seed: int
    jobs: tuple[JobSpec, ...]
    faults: tuple[FaultAction, ...]


def generate_plan(scenario: Scenario, seed: int | None = None) -> Plan:
    """Generate the workload and the fault schedule from the seed alone.

    `seed` overrides the scenario's seed, as ``--seed`` does on the command
    line. The same scenario and seed always give the same plan.
    """
    seed = scenario.seed if seed is None else seed
    workload_rng = random.Random(f"{seed}:workload")
    fault_rng = random.Random(f"{seed}:faults")
    return Plan(
        scenario=scenario.name,
        seed=seed,
        jobs=tuple(_generate_jobs(scenario, workload_rng)),
        faults=tuple(_generate_faults(scenario, fault_rng)),
    )


def _weighted_choice(rng: random.Random, weights: Mapping[Any, float]) -> Any:
    # Sorted keys make the draw independent of the key order in the YAML file.
    keys = sorted(weights)
    return rng.choices(keys, weights=[weights[key] for key in keys])[0]


def _draw_duration_s(scenario: Scenario, rng: random.Random) -> float:
    distribution = scenario.workload.job_duration
    if isinstance(distribution, FixedDuration):
        return distribution.value_s
    if isinstance(distribution, UniformDuration):
        return rng.uniform(distribution.min_s, distribution.max_s)
    assert isinstance(distribution, ExponentialDuration)
    duration_s = rng.expovariate(1.0 / distribution.mean_s)
    if distribution.max_s is not None:
        duration_s = min(duration_s, distribution.max_s)
    return duration_s


def _draw_failing_attempts(
    rng: random.Random, probability: float, max_attempts: int
) -> int:
    """Count the leading attempts that fail, each with `probability`.

    A job whose count reaches `max_attempts` ends FAILED at the retry cap.
    """
    failing = 0
    while failing < max_attempts and rng.random() < probability:
        failing += 1
    return failing


def _generate_jobs(scenario: Scenario, rng: random.Random) -> list[JobSpec]:
    workload = scenario.workload
    max_retries = scenario.queue.max_retries
    poison_indexes = set(rng.sample(range(workload.jobs), workload.poison.count))
    hang_for_s = workload.poison.hang_for_s or HANG_LEASES * scenario.queue.lease_ttl_s

    jobs = []
    for index in range(workload.jobs):
        rate = workload.enqueue_rate_per_s
        enqueue_at_s = 0.0 if rate is None else index / rate
        queue = _weighted_choice(rng, workload.queues)
        priority = _weighted_choice(rng, workload.priorities)

        job_type: JobType = "work"
        payload: dict[str, Any] = {"index": index}
        if index in poison_indexes:
            job_type = workload.poison.kind
            if job_type == "hang":
                payload["sleep_s"] = round(hang_for_s, TIME_DECIMALS)
        else:
            duration_s = _draw_duration_s(scenario, rng)
            payload["duration_s"] = round(duration_s, TIME_DECIMALS)
            payload["failing_attempts"] = _draw_failing_attempts(
                rng, workload.failure_probability, max_retries + 1
            )

        jobs.append(
            JobSpec(
                index=index,
                enqueue_at_s=round(enqueue_at_s, TIME_DECIMALS),
                queue=queue,
                job_type=job_type,
                payload=payload,
                priority=priority,
                max_retries=max_retries,
            )
        )
    return jobs


def _generate_faults(scenario: Scenario, rng: random.Random) -> list[FaultAction]:
    """Place every fault occurrence, then pick its targets in time order.

    A worker is busy from a fault's start until it heals. ``random`` targets
    prefer idle workers, so that faults spread over the workers instead of
    piling onto one that is already down.
    """
    occurrences = sorted(
        (at_s, index)
        for index, fault in enumerate(scenario.faults)
        for at_s in fault.occurrence_times_s(scenario.duration_s)
    )
    busy_until_s = [0.0] * scenario.workers.count
    actions: list[FaultAction] = []
    for at_s, index in occurrences:
        fault = scenario.faults[index]
        if isinstance(fault, DbRestartFault):
            actions += _fault_actions(fault, index, at_s, None)
            continue
        for target in _pick_targets(fault.target, at_s, busy_until_s, rng):
            steps = _fault_actions(fault, index, at_s, target)
            actions += steps
            busy_until_s[target] = max(busy_until_s[target], steps[-1].at_s)
    return sorted(actions, key=lambda action: action.at_s)


def _pick_targets(
    target: str | int,
    at_s: float,
    busy_until_s: Sequence[float],
    rng: random.Random,
) -> list[int]:
    if target == "all":
        return list(range(len(busy_until_s)))
    if isinstance(target, int):
        return [target]
    idle = [index for index, until_s in enumerate(busy_until_s) if until_s <= at_s]
    return [rng.choice(idle or range(len(busy_until_s)))]


def _fault_actions(
    fault: FaultSpec, fault_index: int, at_s: float, target: int | None
) -> list[FaultAction]:
    """Return the start action of one occurrence and the action that heals it."""

    def action(
        name: FaultActionName, offset_s: float, params: dict[str, float] | None = None
    ) -> FaultAction:
        return FaultAction(
            at_s=round(at_s + offset_s, TIME_DECIMALS),
            fault_index=fault_index,
            action=name,
            target=target,
            params=params or {},
        )

    if isinstance(fault, KillFault):
        return [action("kill", 0), action("restart", fault.restart_delay_s)]
    if isinstance(fault, TerminateFault):
        return [action("terminate", 0), action("restart", fault.restart_delay_s)]
    if isinstance(fault, PauseFault):
        return [action("pause", 0), action("resume", fault.duration_s)]
    if isinstance(fault, DbRestartFault):
        return [action("db_stop", 0), action("db_start", fault.duration_s)]
    if isinstance(fault, LatencyFault):
        params = {
            "delay_ms": fault.delay_ms,
            "drop_probability": fault.drop_probability,
        }
        return [
            action("latency_start", 0, params),
            action("latency_end", fault.duration_s),
        ]
    assert isinstance(fault, ClockSkewFault)
    return [
        action("clock_skew", 0, {"offset_s": fault.offset_s}),
        action("clock_skew", fault.duration_s, {"offset_s": 0.0}),
    ]
