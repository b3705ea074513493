"""The seven measurement steps, each returning a JSON-ready dict."""

from __future__ import annotations

import random
from dataclasses import asdict
from typing import Any

from bench.checker_time import load_checkers, measure_checkers
from bench.cycle import measure_claim_latency, measure_cycles
from bench.explain import measure_explain
from bench.memory import measure_busy_noop, measure_busy_sleep, measure_idle
from bench.plan import BenchPlan
from bench.recovery import measure_recovery
from bench.rq_compare import describe_redis, measure_rq
from bench.servers import find_redis
from bench.throughput import measure_throughput

CYCLE_TARGET_RATIO = 0.8
RECOVERY_SEED = 20240601


def step_cycle(plan: BenchPlan) -> dict[str, Any]:
    result = measure_cycles(plan.cycle_jobs, plan.cycle_rounds)
    return {
        **asdict(result),
        "ratio": round(result.ratio, 3),
        "target_ratio": CYCLE_TARGET_RATIO,
        "meets_target": result.ratio >= CYCLE_TARGET_RATIO,
        "explain": measure_explain(),
    }


def step_throughput(plan: BenchPlan) -> list[dict[str, Any]]:
    return [
        asdict(measure_throughput(workers, plan.throughput_jobs))
        for workers in plan.worker_counts
    ]


def step_rq(plan: BenchPlan, aegis_rows: list[dict[str, Any]]) -> dict[str, Any]:
    executable = find_redis()
    if executable is None:
        return {
            "skipped": "redis-server is not on PATH; install it with "
            "`apt-get install -y redis-server` to compare with RQ"
        }
    try:
        facts = describe_redis(executable)
    except ImportError:
        return {"skipped": "rq is not installed; run `pip install -e .[bench]`"}
    rows = []
    aegis_by_workers = {row["workers"]: row for row in aegis_rows}
    for workers in plan.worker_counts:
        rq_row = asdict(measure_rq(executable, workers, plan.throughput_jobs))
        aegis_row = aegis_by_workers.get(workers)
        if aegis_row is not None:
            rq_row["aegis_to_rq"] = round(
                aegis_row["jobs_per_s"] / rq_row["jobs_per_s"], 3
            )
            rq_row["aegis_to_rq_steady"] = round(
                aegis_row["steady_jobs_per_s"] / rq_row["steady_jobs_per_s"], 3
            )
        rows.append(rq_row)
    return {**facts, "worker_class": "rq.worker.SimpleWorker", "rows": rows}


def step_recovery(plan: BenchPlan) -> list[dict[str, Any]]:
    rng = random.Random(RECOVERY_SEED)
    rows = []
    for setting in plan.recovery_settings:
        result = measure_recovery(setting, plan.recovery_trials, rng)
        rows.append(
            {
                **asdict(setting),
                "trials_s": result.trials_s,
                "median_s": result.median_s,
                "max_s": result.max_s,
            }
        )
    return rows


def step_latency(plan: BenchPlan) -> list[dict[str, Any]]:
    return [
        asdict(measure_claim_latency(depth, plan.latency_samples))
        for depth in plan.latency_depths
    ]


def step_checkers(plan: BenchPlan) -> dict[str, Any]:
    check_all = load_checkers()
    if check_all is None:
        return {
            "skipped": "harness.checkers.run_all cannot be imported in this checkout"
        }
    rows = [asdict(measure_checkers(check_all, size)) for size in plan.checker_sizes]
    return {"entry_point": "harness.checkers.run_all", "rows": rows}


def step_memory(plan: BenchPlan) -> list[dict[str, Any]]:
    return [
        asdict(measure_idle()),
        asdict(measure_busy_noop(plan.busy_noop_jobs)),
        asdict(measure_busy_sleep(plan.busy_sleep_jobs)),
    ]
