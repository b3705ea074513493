"""Scenario files: the workers, queue settings, workload and faults of one run.

`load_scenario` reads and validates a YAML file. Durations are written as a
number of seconds or as a string such as ``500ms``, ``2s`` or ``1.5m``. In
Python every duration field carries its unit in its name (``lease_ttl_s``),
and the YAML name is its alias (``lease_ttl``). `harness.plan` expands a
scenario into the exact jobs and fault actions of a run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from aegis.models import MAX_PRIORITY, MIN_PRIORITY

__all__ = [
    "COVERAGE_EVENTS",
    "ClockSkewFault",
    "CoverageEvent",
    "DbRestartFault",
    "ExponentialDuration",
    "FaultSpec",
    "FixedDuration",
    "KillFault",
    "LatencyFault",
    "PauseFault",
    "PoisonSpec",
    "QueueSpec",
    "Scenario",
    "ScenarioError",
    "TerminateFault",
    "UniformDuration",
    "WorkersSpec",
    "WorkloadSpec",
    "load_scenario",
    "load_scenarios",
    "parse_duration_s",
    "parse_scenario",
]

# Events a scenario can require in `expect`. `harness.checkers.coverage`
# defines how each one is found in a history.
CoverageEvent = Literal[
    "retry",
    "retry_exhausted",
    "stale_write_rejected",
    "lease_lost",
    "recovery",
    "recovery_after_kill",
    "duplicate_execution",
    "release",
    "cancel",
    "worker_crash",
    "db_error",
    "kill",
    "pause",
    "terminate",
    "restart",
    "db_stop",
    "latency_start",
    "clock_skew",
]
COVERAGE_EVENTS: tuple[str, ...] = get_args(CoverageEvent)

_DURATION_PATTERN = re.compile(
    r"^\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|m|h)?\s*$"
)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_HINT = "expected seconds as a number, or a string such as 500ms, 2s or 1.5m"
_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class ScenarioError(ValueError):
    """Raised when a scenario file is missing, is not valid YAML or fails validation.

    `problems` lists one ``field.path: message`` entry per invalid field, and
    the message prefixes each with the file name, one per line.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


def _format_location(location: tuple[int | str, ...], data: object) -> str:
    """Join an error location into ``faults[0].interval`` form.

    Pydantic adds the tag of a discriminated union (``kill``) to the location.
    Walking the input alongside shows which parts are tags, so they are dropped.
    """
    path = ""
    node = data
    for part in location:
        if isinstance(part, int) and not isinstance(node, dict):
            path += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        if isinstance(node, dict) and part not in node:
            if part in (node.get("type"), node.get("distribution")):
                continue
        path += f".{part}" if path else str(part)
        node = node.get(part) if isinstance(node, dict) else None
    return path or "(top level)"


# Error types raised by this module's validators; their messages show the value.
_CUSTOM_ERRORS = frozenset({"duration", "enqueue_rate", "target"})
# Messages for pydantic error types, each followed by the rejected value.
_TYPE_MESSAGES = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a finite number",
    "float_parsing": "must be a finite number",
    "finite_number": "must be a finite number",
    "string_type": "must be a string",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
}
_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


def _describe_error(error: Mapping[str, Any]) -> str:
    """Turn one pydantic error into a short message that shows the bad value."""
    kind = error["type"]
    context = error.get("ctx") or {}
    got = f"(got {error.get('input')!r})"

    if kind in {"missing", "union_tag_not_found"}:
        return "missing required field"
    if kind == "extra_forbidden":
        return "unknown field; see docs/harness.md for the allowed fields"
    if kind == "value_error":
        return str(context["error"])
    if kind in _CUSTOM_ERRORS:
        return str(error["msg"])

    if kind in _BOUNDS:
        symbol, key = _BOUNDS[kind]
        bound = context[key]
        shown = f"{bound:g}" if isinstance(bound, float) else str(bound)
        return f"must be {symbol} {shown} {got}"
    if kind == "literal_error":
        return f"must be {context['expected']} {got}"
    if kind == "union_tag_invalid":
        return f"must be one of {context['expected_tags']} (got {context['tag']!r})"
    if kind == "too_short":
        return f"must contain at least {context['min_length']} item(s) {got}"
    if kind in _TYPE_MESSAGES:
        return f"{_TYPE_MESSAGES[kind]} {got}"
    return f"{error['msg']} {got}"


def _validation_problems(exc: ValidationError, data: object) -> list[str]:
    problems = []
    for error in exc.errors():
        location = tuple(error["loc"])
        message = _describe_error(error)
        if location[-1:] == ("[key]",):
            # A bad mapping key: name the mapping, and the key in the message.
            message = f"invalid key {location[-2]!r}: {message}"
            location = location[:-2]
        if error["type"] in {"union_tag_invalid", "union_tag_not_found"}:
            location += (str(error["ctx"]["discriminator"]).strip("'"),)
        problems.append(f"{_format_location(location, data)}: {message}")
    return problems


def _invalid(kind: str, message: str, value: object) -> PydanticCustomError:
    """Build a validation error whose message shows `value` as written."""
    return PydanticCustomError(kind, message, {"value": repr(value)})


def parse_duration_s(value: object) -> float:
    """Convert a duration to seconds, raising a pydantic error if it is invalid.

    Accepts a number of seconds, or a string made of a number and an optional
    unit: ``ms``, ``s`` (the default), ``m`` or ``h``. Strings cannot be
    negative, and the range of a number is checked by the field it fills.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise _invalid("duration", "invalid duration {value}: not finite", value)
        return float(value)
    if isinstance(value, str):
        match = _DURATION_PATTERN.match(value)
        if match:
            unit = match["unit"] or "s"
            return float(match["number"]) * _UNIT_SECONDS[unit]
    raise _invalid("duration", "invalid duration {value}: " + _DURATION_HINT, value)


def _parse_enqueue_rate(value: object) -> float | None:
    """Map ``all_at_start`` to None and check that a rate is a positive number."""
    if value == "all_at_start" or value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isfinite(value) and value > 0:
            return float(value)
    raise _invalid(
        "enqueue_rate",
        "invalid enqueue rate {value}: expected jobs per second as a number > 0, "
        "or 'all_at_start'",
        value,
    )


PositiveDuration = Annotated[float, BeforeValidator(parse_duration_s), Field(gt=0)]
NonNegativeDuration = Annotated[float, BeforeValidator(parse_duration_s), Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
Weight = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_weights(weights: Mapping[Any, float]) -> None:
    if not weights:
        raise ValueError("must contain at least one entry")
    if sum(weights.values()) <= 0:
        raise ValueError("weights must not all be 0")


class WorkersSpec(_Spec):
    """Worker processes started for the run."""

    count: int = Field(ge=1)
    concurrency: int = Field(default=1, ge=1)
    queues: tuple[str, ...] = Field(default=("default",), min_length=1)

    @field_validator("queues")
    @classmethod
    def _unique_queues(cls, queues: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(queues)) != len(queues):
            raise ValueError(f"queue names must be unique (got {list(queues)})")
        return queues


class QueueSpec(_Spec):
    """Lease, recovery and retry settings passed to every worker."""

    lease_ttl_s: PositiveDuration = Field(alias="lease_ttl")
    heartbeat_interval_s: PositiveDuration = Field(alias="heartbeat_interval")
    recovery_interval_s: PositiveDuration = Field(alias="recovery_interval")
    max_retries: int = Field(ge=0)
    backoff_base_s: NonNegativeDuration = Field(alias="backoff_base")
    backoff_max_s: NonNegativeDuration = Field(alias="backoff_max")


class FixedDuration(_Spec):
    """Every job runs for the same time."""

    distribution: Literal["fixed"]
    value_s: NonNegativeDuration = Field(alias="value")


class UniformDuration(_Spec):
    """Job run times drawn uniformly from [min, max]."""

    distribution: Literal["uniform"]
    min_s: NonNegativeDuration = Field(alias="min")
    max_s: NonNegativeDuration = Field(alias="max")


class ExponentialDuration(_Spec):
    """Job run times drawn from an exponential distribution, optionally capped."""

    distribution: Literal["exponential"]
    mean_s: PositiveDuration = Field(alias="mean")
    max_s: PositiveDuration | None = Field(default=None, alias="max")


JobDuration = Annotated[
    FixedDuration | UniformDuration | ExponentialDuration,
    Field(discriminator="distribution"),
]


class PoisonSpec(_Spec):
    """Jobs whose handler crashes its worker process or hangs past its lease."""

    count: int = Field(default=0, ge=0)
    kind: Literal["crash", "hang"] = "crash"
    # How long a hang job sleeps; None means three lease lengths.
    hang_for_s: PositiveDuration | None = Field(default=None, alias="hang_for")


class WorkloadSpec(_Spec):
    """The jobs enqueued during the run."""

    jobs: int = Field(ge=1)
    # Jobs per second, or None to enqueue every job at the start.
    enqueue_rate_per_s: Annotated[
        float | None, BeforeValidator(_parse_enqueue_rate)
    ] = Field(default=None, alias="enqueue_rate")
    queues: dict[str, Weight] = Field(default_factory=lambda: {"default": 1.0})
    priorities: dict[
        Annotated[int, Field(ge=MIN_PRIORITY, le=MAX_PRIORITY)], Weight
    ] = Field(default_factory=lambda: {5: 1.0})
    job_duration: JobDuration = Field(
        default_factory=lambda: FixedDuration(distribution="fixed", value=0.1)
    )
    failure_probability: Probability = 0.0
    poison: PoisonSpec = Field(default_factory=PoisonSpec)

    @field_validator("queues", "priorities")
    @classmethod
    def _nonzero_weights(cls, weights: dict[Any, float]) -> dict[Any, float]:
        _check_weights(weights)
        return weights


class _FaultSpec(_Spec):
    """Timing shared by every fault: a fixed interval or explicit times."""

    # Offsets from the start of the fault phase.
    interval_s: PositiveDuration | None = Field(default=None, alias="interval")
    start_s: NonNegativeDuration | None = Field(default=None, alias="start")
    at_s: tuple[NonNegativeDuration, ...] | None = Field(default=None, alias="at")

    @model_validator(mode="after")
    def _one_timing(self) -> _FaultSpec:
        if (self.interval_s is None) == (self.at_s is None):
            raise ValueError("set exactly one of 'interval' or 'at'")
        if self.at_s is not None and self.start_s is not None:
            raise ValueError("'start' applies only with 'interval'")
        if self.at_s is not None and not self.at_s:
            raise ValueError("'at' must list at least one time")
        return self

    def occurrence_times_s(self, phase_s: float) -> list[float]:
        """Return the offsets at which this fault starts, all before `phase_s`."""
        if self.at_s is not None:
            return sorted(self.at_s)
        assert self.interval_s is not None
        first_s = self.interval_s if self.start_s is None else self.start_s
        count = max(0, math.ceil((phase_s - first_s) / self.interval_s))
        return [first_s + n * self.interval_s for n in range(count)]


def _parse_target(value: object) -> str | int:
    """Check a fault target: "random", "all" or a worker index."""
    if value in ("random", "all"):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _invalid(
        "target",
        "invalid target {value}: expected 'random', 'all' or a worker index >= 0",
        value,
    )


# "random" picks a worker that is not under another fault at that moment (any
# worker if all are), "all" hits every worker, and an integer names one worker.
Target = Annotated[str | int, BeforeValidator(_parse_target)]


class KillFault(_FaultSpec):
    """SIGKILL a worker, then start a new one after `restart_delay`."""

    type: Literal["kill"]
    target: Target = "random"
    restart_delay_s: NonNegativeDuration = Field(default=1.0, alias="restart_delay")


class TerminateFault(_FaultSpec):
    """SIGTERM a worker (graceful shutdown), then restart it."""

    type: Literal["terminate"]
    target: Target = "random"
    restart_delay_s: NonNegativeDuration = Field(default=1.0, alias="restart_delay")


class PauseFault(_FaultSpec):
    """SIGSTOP a worker for `duration`, then SIGCONT it."""

    type: Literal["pause"]
    target: Target = "random"
    duration_s: PositiveDuration = Field(alias="duration")


class LatencyFault(_FaultSpec):
    """Delay or drop a worker's database traffic for `duration`."""

    type: Literal["latency"]
    target: Target = "random"
    duration_s: PositiveDuration = Field(alias="duration")
    delay_ms: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    drop_probability: Probability = 0.0

    @model_validator(mode="after")
    def _has_effect(self) -> LatencyFault:
        if self.delay_ms == 0 and self.drop_probability == 0:
            raise ValueError("set delay_ms or drop_probability above 0")
        return self


class ClockSkewFault(_FaultSpec):
    """Shift a worker's wall clock by `offset_s` for `duration`."""

    type: Literal["clock_skew"]
    target: Target = "random"
    duration_s: PositiveDuration = Field(alias="duration")
    offset_s: float = Field(allow_inf_nan=False)

    @field_validator("offset_s")
    @classmethod
    def _nonzero_offset(cls, offset_s: float) -> float:
        if offset_s == 0:
            raise ValueError("must not be 0")
        return offset_s


class DbRestartFault(_FaultSpec):
    """Stop the database server for `duration`, then start it again."""

    type: Literal["db_restart"]
    duration_s: PositiveDuration = Field(alias="duration")


FaultSpec = Annotated[
    KillFault
    | TerminateFault
    | PauseFault
    | LatencyFault
    | ClockSkewFault
    | DbRestartFault,
    Field(discriminator="type"),
]
WorkerFault = KillFault | TerminateFault | PauseFault | LatencyFault | ClockSkewFault


class Scenario(_Spec):
    """One chaos run: what runs, what breaks, and what must be observed."""

    name: str
    description: str
    seed: int
    duration_s: PositiveDuration = Field(alias="duration")
    drain_timeout_s: PositiveDuration = Field(alias="drain_timeout")
    # Slack that recovery_bound allows beyond lease_ttl + recovery_interval for
    # a killed worker's job to be claimed again: polling, backoff, busy workers.
    recovery_margin_s: NonNegativeDuration = Field(default=5.0, alias="recovery_margin")
    workers: WorkersSpec
    queue: QueueSpec
    workload: WorkloadSpec
    faults: tuple[FaultSpec, ...] = ()
    expect: tuple[CoverageEvent, ...] = ()

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not _NAME_PATTERN.match(name):
            raise ValueError(
                f"must be lower-case letters, digits, '-' or '_' (got {name!r})"
            )
        return name

    @field_validator("description")
    @classmethod
    def _one_line(cls, description: str) -> str:
        description = description.strip()
        if not description:
            raise ValueError("must not be empty")
        if "\n" in description:
            raise ValueError("must be a single line")
        return description


# Coverage events that only a given fault type or poison kind can produce.
_EVENT_SOURCES: dict[str, tuple[str, ...]] = {
    "kill": ("kill",),
    "recovery_after_kill": ("kill",),
    "pause": ("pause",),
    "terminate": ("terminate",),
    "restart": ("kill", "terminate"),
    "db_stop": ("db_restart",),
    "latency_start": ("latency",),
    "clock_skew": ("clock_skew",),
}


def _consistency_problems(scenario: Scenario) -> Iterable[tuple[str, str]]:
    """Yield (field path, message) for rules that span several fields."""
    queue = scenario.queue
    if queue.heartbeat_interval_s >= queue.lease_ttl_s:
        yield (
            "queue.heartbeat_interval",
            f"must be shorter than queue.lease_ttl ({queue.lease_ttl_s:g}s), or "
            f"every lease expires before its renewal (got {queue.heartbeat_interval_s:g}s)",
        )
    if queue.backoff_base_s > queue.backoff_max_s:
        yield (
            "queue.backoff_base",
            f"must be <= queue.backoff_max ({queue.backoff_max_s:g}s) "
            f"(got {queue.backoff_base_s:g}s)",
        )

    workload = scenario.workload
    for name in workload.queues:
        if name not in scenario.workers.queues:
            yield (
                f"workload.queues.{name}",
                f"no worker serves this queue, so its jobs would never run; add it "
                f"to workers.queues (now {list(scenario.workers.queues)})",
            )
    if workload.poison.count > workload.jobs:
        yield (
            "workload.poison.count",
            f"must be <= workload.jobs ({workload.jobs}) (got {workload.poison.count})",
        )
    hang_for_s = workload.poison.hang_for_s
    if hang_for_s is not None and hang_for_s <= queue.lease_ttl_s:
        yield (
            "workload.poison.hang_for",
            f"must be longer than queue.lease_ttl ({queue.lease_ttl_s:g}s), or the "
            f"job does not outlive its lease (got {hang_for_s:g}s)",
        )
    distribution = workload.job_duration
    if isinstance(distribution, UniformDuration):
        if distribution.min_s > distribution.max_s:
            yield (
                "workload.job_duration.min",
                f"must be <= workload.job_duration.max ({distribution.max_s:g}s) "
                f"(got {distribution.min_s:g}s)",
            )

    yield from _fault_problems(scenario)


def _fault_problems(scenario: Scenario) -> Iterable[tuple[str, str]]:
    duration_s = scenario.duration_s
    for index, fault in enumerate(scenario.faults):
        where = f"faults[{index}]"
        target = getattr(fault, "target", None)
        if isinstance(target, int) and target >= scenario.workers.count:
            yield (
                f"{where}.target",
                f"worker index must be < workers.count ({scenario.workers.count}) "
                f"(got {target})",
            )
        for position, at_s in enumerate(fault.at_s or ()):
            if at_s >= duration_s:
                yield (
                    f"{where}.at[{position}]",
                    f"must be before the end of the fault phase, duration "
                    f"{duration_s:g}s (got {at_s:g}s)",
                )
        if fault.interval_s is not None and not fault.occurrence_times_s(duration_s):
            yield (
                f"{where}.interval",
                f"the fault never starts within duration {duration_s:g}s; "
                f"lower 'interval' or 'start'",
            )

    fault_types: set[str] = {fault.type for fault in scenario.faults}
    if scenario.workload.poison.count > 0 and scenario.workload.poison.kind == "crash":
        fault_types.add("poison_crash")
    sources = {**_EVENT_SOURCES, "worker_crash": ("poison_crash",)}
    for position, event in enumerate(scenario.expect):
        needed = sources.get(event)
        if needed and not fault_types.intersection(needed):
            producers = " or ".join(
                "poison crash jobs" if name == "poison_crash" else f"a {name} fault"
                for name in needed
            )
            yield (
                f"expect[{position}]",
                f"{event!r} cannot happen without {producers} in this scenario",
            )


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that rejects a key repeated in one mapping.

    PyYAML keeps the last value of a repeated key, which hides typos such as
    two ``faults:`` blocks.
    """

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_scenario(text: str, source: str = "<string>") -> Scenario:
    """Parse and validate scenario YAML; raise `ScenarioError` naming each bad field.

    `source` prefixes every message, normally the file path.
    """
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ScenarioError(source, [f"invalid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ScenarioError(source, [f"expected a mapping of fields, got {kind}"])

    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, _validation_problems(exc, data)) from None

    problems = [
        f"{path}: {message}" for path, message in _consistency_problems(scenario)
    ]
    if problems:
        raise ScenarioError(source, problems)
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; raise `ScenarioError` if it is invalid."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(str(path), ["scenario file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(str(path), [f"cannot read the file: {exc}"]) from None
    return parse_scenario(text, str(path))


def load_scenarios(directory: str | Path) -> list[Scenario]:
    """Load every ``*.yaml`` file in `directory`, sorted by file name."""
    return [load_scenario(path) for path in sorted(Path(directory).glob("*.yaml"))]
