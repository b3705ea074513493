"""Sizes of the full run and of the `--quick` run."""

from __future__ import annotations

from dataclasses import dataclass

from bench.recovery import RecoverySetting


@dataclass(frozen=True)
class BenchPlan:
    """How much work each step does."""

    cycle_jobs: int
    cycle_rounds: int
    throughput_jobs: int
    worker_counts: tuple[int, ...]
    recovery_settings: tuple[RecoverySetting, ...]
    recovery_trials: int
    latency_depths: tuple[int, ...]
    latency_samples: int
    checker_sizes: tuple[int, ...]
    busy_noop_jobs: int
    busy_sleep_jobs: int


FULL = BenchPlan(
    cycle_jobs=200,
    cycle_rounds=3,
    throughput_jobs=200,
    worker_counts=(1, 2, 4),
    recovery_settings=(
        RecoverySetting(2.0, 0.5, 1.0),
        RecoverySetting(4.0, 1.0, 1.0),
        RecoverySetting(4.0, 2.0, 1.0),
        RecoverySetting(8.0, 2.0, 1.0),
        RecoverySetting(4.0, 1.0, 5.0),
    ),
    recovery_trials=3,
    latency_depths=(100, 300, 1000),
    latency_samples=50,
    checker_sizes=(1_000, 10_000, 100_000),
    busy_noop_jobs=300,
    busy_sleep_jobs=24,
)

QUICK = BenchPlan(
    cycle_jobs=100,
    cycle_rounds=1,
    throughput_jobs=100,
    worker_counts=(1, 2, 4),
    recovery_settings=(
        RecoverySetting(2.0, 0.5, 1.0),
        RecoverySetting(4.0, 1.0, 1.0),
    ),
    recovery_trials=2,
    latency_depths=(100, 300, 1000),
    latency_samples=15,
    checker_sizes=(1_000, 10_000),
    busy_noop_jobs=100,
    busy_sleep_jobs=16,
)
