"""Scenario loading, validation errors and seeded plan generation."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.plan import generate_plan
from harness.scenario import (
    KillFault,
    Scenario,
    ScenarioError,
    UniformDuration,
    load_scenario,
    load_scenarios,
    parse_duration_s,
    parse_scenario,
)

SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "scenarios"

MINIMAL = """
name: minimal
description: One worker, ten jobs, no faults.
seed: 3
duration: 10s
drain_timeout: 20s
workers: {count: 1}
queue:
  lease_ttl: 3s
  heartbeat_interval: 1s
  recovery_interval: 1s
  max_retries: 2
  backoff_base: 100ms
  backoff_max: 1s
workload: {jobs: 10}
"""


def minimal_data() -> dict[str, Any]:
    data = yaml.safe_load(MINIMAL)
    assert isinstance(data, dict)
    return data


def parse_data(data: dict[str, Any]) -> Scenario:
    return parse_scenario(yaml.safe_dump(data), "x.yaml")


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ScenarioError) as error:
        parse_data(data)
    return error.value.problems


# -- durations ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (2, 2.0),
        (0.25, 0.25),
        ("500ms", 0.5),
        ("2s", 2.0),
        ("1.5m", 90.0),
        ("1h", 3600.0),
        ("3", 3.0),
        (" 4 s ", 4.0),
        (".5s", 0.5),
    ],
)
def test_parse_duration_valid(value: object, seconds: float) -> None:
    assert parse_duration_s(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["2 sec", "-1s", "1d", "", "s", True, None, [1]])
def test_parse_duration_invalid(value: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration_s(value)


# -- valid files ----------------------------------------------------------------


def test_minimal_scenario_defaults() -> None:
    scenario = parse_scenario(MINIMAL)

    assert scenario.name == "minimal"
    assert scenario.duration_s == 10.0
    assert scenario.queue.lease_ttl_s == 3.0
    assert scenario.queue.backoff_base_s == pytest.approx(0.1)
    assert scenario.workers.concurrency == 1
    assert scenario.workers.queues == ("default",)
    assert scenario.workload.enqueue_rate_per_s is None
    assert scenario.workload.priorities == {5: 1.0}
    assert scenario.workload.poison.count == 0
    assert scenario.recovery_margin_s == 5.0
    assert scenario.faults == ()
    assert scenario.expect == ()


def test_full_scenario_fields() -> None:
    data = minimal_data()
    data["workers"] = {"count": 4, "concurrency": 2, "queues": ["default", "bulk"]}
    data["workload"] = {
        "jobs": 100,
        "enqueue_rate": 20,
        "queues": {"default": 3, "bulk": 1},
        "priorities": {0: 1, 9: 2},
        "job_duration": {"distribution": "uniform", "min": "100ms", "max": "1s"},
        "failure_probability": 0.1,
        "poison": {"count": 2, "kind": "hang", "hang_for": "10s"},
    }
    data["faults"] = [
        {"type": "kill", "interval": "4s", "target": 1, "restart_delay": "500ms"},
        {"type": "pause", "at": ["2s", 5], "duration": "2s", "target": "all"},
        {"type": "latency", "interval": "3s", "duration": "1s", "delay_ms": 200},
        {"type": "clock_skew", "at": [1], "duration": "3s", "offset_s": -30},
        {"type": "db_restart", "at": ["6s"], "duration": "2s"},
        {"type": "terminate", "interval": "5s", "start": "1s"},
    ]
    data["expect"] = ["kill", "pause", "recovery_after_kill", "db_stop"]

    scenario = parse_data(data)

    assert scenario.workload.enqueue_rate_per_s == 20.0
    assert isinstance(scenario.workload.job_duration, UniformDuration)
    assert scenario.workload.job_duration.max_s == 1.0
    assert scenario.workload.poison.hang_for_s == 10.0
    kill = scenario.faults[0]
    assert isinstance(kill, KillFault)
    assert kill.target == 1
    assert kill.restart_delay_s == 0.5
    assert scenario.faults[1].at_s == (2.0, 5.0)
    assert scenario.faults[5].occurrence_times_s(10.0) == [1.0, 6.0]
    assert kill.occurrence_times_s(10.0) == [4.0, 8.0]


def test_shipped_scenarios_load() -> None:
    scenarios = load_scenarios(SCENARIOS_DIR)

    names = [scenario.name for scenario in scenarios]
    assert "crash" in names
    assert len(names) == len(set(names))
    for scenario in scenarios:
        assert scenario.description
        assert "\n" not in scenario.description


def test_shipped_scenario_names_match_files() -> None:
    for path in SCENARIOS_DIR.glob("*.yaml"):
        assert load_scenario(path).name == path.stem


# -- errors ---------------------------------------------------------------------


def test_error_names_file_and_field() -> None:
    data = minimal_data()
    data["workers"]["count"] = 0

    with pytest.raises(ScenarioError) as error:
        parse_scenario(yaml.safe_dump(data), "scenarios/x.yaml")

    assert str(error.value) == "scenarios/x.yaml: workers.count: must be >= 1 (got 0)"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.pop("seed"), "seed: missing required field"),
        (lambda d: d.update(colour="red"), "colour: unknown field"),
        (
            lambda d: d["queue"].update(lease_ttl="3 sec"),
            "queue.lease_ttl: invalid duration '3 sec'",
        ),
        (lambda d: d["queue"].update(lease_ttl=0), "queue.lease_ttl: must be > 0"),
        (
            lambda d: d["queue"].update(max_retries=1.5),
            "queue.max_retries: must be an integer (got 1.5)",
        ),
        (lambda d: d.update(seed="abc"), "seed: must be an integer (got 'abc')"),
        (
            lambda d: d.update(description="two\nlines"),
            "description: must be a single line",
        ),
        (lambda d: d.update(name="Has Space"), "name: must be lower-case"),
        (
            lambda d: d["workload"].update(enqueue_rate="fast"),
            "workload.enqueue_rate: invalid enqueue rate 'fast'",
        ),
        (
            lambda d: d["workload"].update(priorities={12: 1}),
            "workload.priorities: invalid key 12: must be <= 9 (got 12)",
        ),
        (
            lambda d: d["workload"].update(priorities={0: 0, 1: 0}),
            "workload.priorities: weights must not all be 0",
        ),
        (
            lambda d: d["workload"].update(failure_probability=1.5),
            "workload.failure_probability: must be <= 1 (got 1.5)",
        ),
        (
            lambda d: d["workload"].update(job_duration={"distribution": "normal"}),
            "workload.job_duration.distribution: must be one of",
        ),
        (
            lambda d: d["workload"].update(
                job_duration={"distribution": "fixed", "value": "1s", "mean": 2}
            ),
            "workload.job_duration.mean: unknown field",
        ),
        (
            lambda d: d["workload"].update(poison={"count": 1, "kind": "explode"}),
            "workload.poison.kind: must be 'crash' or 'hang' (got 'explode')",
        ),
        (
            lambda d: d.update(faults=[{"type": "flood", "interval": "1s"}]),
            "faults[0].type: must be one of",
        ),
        (
            lambda d: d.update(faults=[{"interval": "1s"}]),
            "faults[0].type: missing required field",
        ),
        (
            lambda d: d.update(
                faults=[{"type": "kill", "interval": "1s", "delay_ms": 5}]
            ),
            "faults[0].delay_ms: unknown field",
        ),
        (
            lambda d: d.update(faults=[{"type": "kill", "target": "some"}]),
            "faults[0].target: invalid target 'some'",
        ),
        (
            lambda d: d.update(faults=[{"type": "kill"}]),
            "faults[0]: set exactly one of 'interval' or 'at'",
        ),
        (
            lambda d: d.update(faults=[{"type": "pause", "interval": "2s"}]),
            "faults[0].duration: missing required field",
        ),
        (
            lambda d: d.update(
                faults=[{"type": "latency", "interval": "2s", "duration": "1s"}]
            ),
            "faults[0]: set delay_ms or drop_probability above 0",
        ),
        (
            lambda d: d.update(
                faults=[{"type": "clock_skew", "at": [1], "duration": 1, "offset_s": 0}]
            ),
            "faults[0].offset_s: must not be 0",
        ),
        (lambda d: d.update(expect=["sunrise"]), "expect[0]: must be 'retry'"),
    ],
)
def test_field_errors(change: Any, expected: str) -> None:
    data = minimal_data()
    change(data)

    problems = problems_of(data)

    assert any(problem.startswith(expected) for problem in problems), problems


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["queue"].update(heartbeat_interval="3s"),
            "queue.heartbeat_interval: must be shorter than queue.lease_ttl",
        ),
        (
            lambda d: d["queue"].update(backoff_base="2s"),
            "queue.backoff_base: must be <= queue.backoff_max",
        ),
        (
            lambda d: d["workload"].update(queues={"bulk": 1}),
            "workload.queues.bulk: no worker serves this queue",
        ),
        (
            lambda d: d["workload"].update(poison={"count": 11}),
            "workload.poison.count: must be <= workload.jobs (10)",
        ),
        (
            lambda d: d["workload"].update(poison={"count": 1, "hang_for": "2s"}),
            "workload.poison.hang_for: must be longer than queue.lease_ttl",
        ),
        (
            lambda d: d["workload"].update(
                job_duration={"distribution": "uniform", "min": 2, "max": 1}
            ),
            "workload.job_duration.min: must be <= workload.job_duration.max",
        ),
        (
            lambda d: d.update(
                faults=[{"type": "kill", "interval": "1s", "target": 3}]
            ),
            "faults[0].target: worker index must be < workers.count (1) (got 3)",
        ),
        (
            lambda d: d.update(faults=[{"type": "kill", "at": ["12s"]}]),
            "faults[0].at[0]: must be before the end of the fault phase",
        ),
        (
            lambda d: d.update(faults=[{"type": "kill", "interval": "20s"}]),
            "faults[0].interval: the fault never starts within duration 10s",
        ),
        (
            lambda d: d.update(expect=["recovery_after_kill"]),
            "expect[0]: 'recovery_after_kill' cannot happen without a kill fault",
        ),
        (
            lambda d: d.update(expect=["worker_crash"]),
            "expect[0]: 'worker_crash' cannot happen without poison crash jobs",
        ),
    ],
)
def test_consistency_errors(change: Any, expected: str) -> None:
    data = minimal_data()
    change(data)

    problems = problems_of(data)

    assert any(problem.startswith(expected) for problem in problems), problems


def test_every_problem_reported() -> None:
    data = minimal_data()
    data["workers"]["count"] = 0
    data["queue"]["lease_ttl"] = "soon"

    problems = problems_of(data)

    assert len(problems) == 2


def test_invalid_yaml_error() -> None:
    with pytest.raises(ScenarioError, match=r"^x.yaml: invalid YAML"):
        parse_scenario("name: [unclosed", "x.yaml")


def test_top_level_not_mapping() -> None:
    with pytest.raises(ScenarioError, match="expected a mapping of fields, got a list"):
        parse_scenario("- 1\n- 2\n", "x.yaml")


def test_empty_file_error() -> None:
    with pytest.raises(ScenarioError, match="got empty"):
        parse_scenario("", "x.yaml")


def test_duplicate_key_rejected() -> None:
    text = MINIMAL + "seed: 4\n"

    with pytest.raises(ScenarioError, match="found duplicate key 'seed'"):
        parse_scenario(text, "x.yaml")


def test_missing_file_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ScenarioError) as error:
        load_scenario(path)

    assert str(error.value) == f"{path}: scenario file not found"


def test_load_scenario_from_file(tmp_path: Path) -> None:
    path = tmp_path / "minimal.yaml"
    path.write_text(textwrap.dedent(MINIMAL), encoding="utf-8")

    assert load_scenario(path).seed == 3


# -- plan generation ------------------------------------------------------------


def busy_scenario() -> Scenario:
    data = minimal_data()
    data["workers"] = {"count": 4, "concurrency": 2, "queues": ["default", "bulk"]}
    data["duration"] = "60s"
    data["workload"] = {
        "jobs": 150,
        "enqueue_rate": 10,
        "queues": {"default": 2, "bulk": 1},
        "priorities": {0: 1, 5: 3, 9: 1},
        "job_duration": {"distribution": "exponential", "mean": "300ms", "max": "2s"},
        "failure_probability": 0.2,
        "poison": {"count": 3, "kind": "crash"},
    }
    data["faults"] = [
        {"type": "kill", "interval": "7s", "restart_delay": "1s"},
        {"type": "pause", "interval": "11s", "duration": "3s"},
        {"type": "latency", "at": ["20s"], "duration": "5s", "delay_ms": 300},
        {"type": "clock_skew", "at": ["30s"], "duration": "5s", "offset_s": 20},
        {"type": "db_restart", "at": ["40s"], "duration": "3s"},
    ]
    return parse_data(data)


def test_plan_same_seed_same_plan() -> None:
    scenario = busy_scenario()

    assert generate_plan(scenario) == generate_plan(scenario)
    assert generate_plan(scenario, seed=99) == generate_plan(scenario, seed=99)


def test_plan_seed_override_changes_plan() -> None:
    scenario = busy_scenario()

    default = generate_plan(scenario)
    other = generate_plan(scenario, seed=scenario.seed + 1)

    assert default.seed == scenario.seed
    assert other.seed == scenario.seed + 1
    assert default.jobs != other.jobs
    assert default.faults != other.faults


def test_plan_matches_saved_json() -> None:
    plan = generate_plan(busy_scenario())

    assert type(plan).model_validate_json(plan.model_dump_json()) == plan


def test_plan_workload_follows_scenario() -> None:
    scenario = busy_scenario()

    jobs = generate_plan(scenario).jobs

    assert [job.index for job in jobs] == list(range(150))
    assert jobs[10].enqueue_at_s == pytest.approx(1.0)
    assert {job.queue for job in jobs} == {"default", "bulk"}
    assert {job.priority for job in jobs} == {0, 5, 9}
    assert sum(1 for job in jobs if job.job_type == "crash") == 3
    assert all(job.max_retries == 2 for job in jobs)
    work = [job for job in jobs if job.job_type == "work"]
    assert all(0 <= job.payload["duration_s"] <= 2.0 for job in work)
    assert all(0 <= job.payload["failing_attempts"] <= 3 for job in work)
    assert any(job.payload["failing_attempts"] > 0 for job in work)
    assert all(job.payload["index"] == job.index for job in jobs)


def test_plan_hang_jobs_sleep_past_lease() -> None:
    data = minimal_data()
    data["workload"] = {"jobs": 5, "poison": {"count": 2, "kind": "hang"}}

    jobs = generate_plan(parse_data(data)).jobs

    hangs = [job for job in jobs if job.job_type == "hang"]
    assert len(hangs) == 2
    assert all(job.payload["sleep_s"] == 9.0 for job in hangs)


def test_plan_fault_actions_pair_start_and_heal() -> None:
    scenario = busy_scenario()

    actions = generate_plan(scenario).faults

    assert [action.at_s for action in actions] == sorted(a.at_s for a in actions)
    kills = [action for action in actions if action.action == "kill"]
    restarts = [action for action in actions if action.action == "restart"]
    assert [k.at_s for k in kills] == [7.0 * n for n in range(1, 9)]
    assert [r.at_s for r in restarts] == [7.0 * n + 1.0 for n in range(1, 9)]
    assert all(0 <= k.target < 4 for k in kills if k.target is not None)
    pauses = [action for action in actions if action.action == "pause"]
    resumes = [action for action in actions if action.action == "resume"]
    assert [p.target for p in pauses] == [r.target for r in resumes]
    db = [action for action in actions if action.target is None]
    assert [(a.action, a.at_s) for a in db] == [("db_stop", 40.0), ("db_start", 43.0)]
    latency = next(a for a in actions if a.action == "latency_start")
    assert latency.params == {"delay_ms": 300.0, "drop_probability": 0.0}
    skews = [a for a in actions if a.action == "clock_skew"]
    assert [a.params["offset_s"] for a in skews] == [20.0, 0.0]


def test_plan_random_target_prefers_idle_workers() -> None:
    data = minimal_data()
    data["workers"] = {"count": 2}
    data["duration"] = "10s"
    # Two pauses start together and last past each other: the second must
    # pick the worker the first left idle.
    data["faults"] = [
        {"type": "pause", "at": [1], "duration": "5s"},
        {"type": "pause", "at": [2], "duration": "5s"},
    ]

    actions = generate_plan(parse_data(data)).faults

    pauses = [action for action in actions if action.action == "pause"]
    assert {pause.target for pause in pauses} == {0, 1}


def test_plan_all_target_hits_every_worker() -> None:
    data = minimal_data()
    data["workers"] = {"count": 3}
    data["faults"] = [{"type": "kill", "at": [1], "target": "all"}]

    actions = generate_plan(parse_data(data)).faults

    kills = [action for action in actions if action.action == "kill"]
    assert sorted(kill.target for kill in kills if kill.target is not None) == [0, 1, 2]


def test_plan_workload_ignores_fault_changes() -> None:
    scenario = busy_scenario()
    changed = scenario.model_copy(update={"faults": ()})

    assert generate_plan(changed).jobs == generate_plan(scenario).jobs
