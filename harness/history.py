"""The run history: one JSON object per line, recorded by every process.

Each worker, the enqueuer and the fault injector append events to their own
JSONL file (`harness.recording.EventLog`). After the run, `merge` sorts the
files into one history by `t`, and `finalize` closes the operations that a
killed process never completed. Checkers read the result and the `FinalState`.

An operation is an ``invoke`` event followed by an ``ok``, ``fail`` or
``unknown`` completion from the same process. A ``fail`` had no effect, for
example a fenced write that matched nothing (``error: "stale"``). An
``unknown`` may or may not have taken effect: a database error, or a process
that died during the call. ``info`` events record lifecycle and faults.

`t` is ``time.monotonic()``, which reads the system-wide CLOCK_MONOTONIC on
Linux, so times from different processes on one host are comparable.
"""

from __future__ import annotations

import bisect
import json
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NotRequired, Required, TypedDict, cast

from aegis.models import TERMINAL_STATES as JOB_END_STATES

__all__ = [
    "EVENT_TYPES",
    "TERMINAL_STATES",
    "Effect",
    "Event",
    "EventType",
    "FinalState",
    "HistoryError",
    "JobRecord",
    "Pairing",
    "finalize",
    "merge",
    "pair_operations",
    "read_final",
    "read_history",
    "write_final",
    "write_history",
]

EventType = Literal["invoke", "ok", "fail", "unknown", "info"]
EVENT_TYPES: frozenset[str] = frozenset({"invoke", "ok", "fail", "unknown", "info"})
TERMINAL_STATES: frozenset[str] = frozenset(state.value for state in JOB_END_STATES)

# Operations whose invoke already names the job, so a completion can be paired
# by (worker, f, job) when events carry no `op` id.
JOB_OPERATIONS = frozenset(
    {
        "renew",
        "complete",
        "fail",
        "release",
        "finish_cancelled",
        "cancel",
        "retry",
        "execute",
    }
)
# Info events after which a process has no operation in flight.
DEATH_EVENTS = frozenset({"kill", "worker_exit"})


class Event(TypedDict, total=False):
    """One history line. Only the keys marked Required are always present.

    The other keys depend on the operation. An ``enqueue`` ok has ``seq``,
    ``priority``, ``queue``, ``max_retries`` and ``run_at``. A ``claim``
    invoke has ``queues``, and its ok has ``attempts``, ``priority``, ``seq``
    and ``lease_expires_at``. The oks of ``fail``, ``release`` and ``cancel``
    have ``state``, and a ``recover`` ok has ``requeued`` and ``failed``
    lists of ``[job, token]``. Times named ``*_at`` and ``db_time`` are epoch
    seconds from the database clock.
    """

    i: Required[int]  # position in the merged history
    t: Required[float]  # time.monotonic() when the event was recorded
    process: Required[str]  # logical process name ("w2", "enqueuer", "nemesis")
    type: Required[EventType]
    f: Required[str]  # operation, or lifecycle or fault name for info events
    pid: int | None
    worker: str | None  # "<process>-<pid>": one incarnation of a process
    # Optional per-process operation id shared by an invoke and its completion.
    op: int
    job: str | None
    token: int | None
    db_time: float | None
    error: str
    queues: list[str]
    queue: str
    seq: int
    priority: int
    max_retries: int
    attempts: int
    run_at: float
    lease_expires_at: float
    state: str
    requeued: list[list[Any]]
    failed: list[list[Any]]
    exit_code: int | None
    reason: str


class JobRecord(TypedDict):
    """One job document as read from the database after the run."""

    job: str
    state: str
    attempts: int
    token: int
    max_retries: int
    priority: int
    seq: int
    queue: str
    run_at: float | None


class Effect(TypedDict):
    """One side-effect document written by the harness handler.

    Documents may carry more keys, such as ``attempt`` and ``worker``.
    """

    job: str
    token: int
    process: str


class FinalState(TypedDict):
    """The database after the run: every job document and every side effect."""

    jobs: list[JobRecord]
    effects: list[Effect]
    # Optional run facts for the report, such as the drain end time.
    meta: NotRequired[dict[str, Any]]


class HistoryError(ValueError):
    """Raised when a history or final-state file cannot be parsed."""


# -- reading and writing -----------------------------------------------------


def write_history(path: str | Path, events: Iterable[Event]) -> None:
    """Write events as JSONL, one compact object per line."""
    with open(path, "w", encoding="utf-8") as file:
        for event in events:
            file.write(json.dumps(event, separators=(",", ":")) + "\n")


_REQUIRED_KEYS = ("i", "t", "process", "type", "f")


def _parse_line(line: str, where: str) -> Event:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise HistoryError(f"{where}: invalid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise HistoryError(f"{where}: expected a JSON object")
    missing = [key for key in _REQUIRED_KEYS if key not in value]
    if missing:
        raise HistoryError(f"{where}: missing required keys {missing}")
    if value["type"] not in EVENT_TYPES:
        raise HistoryError(
            f"{where}: invalid type {value['type']!r}; expected one of "
            f"{sorted(EVENT_TYPES)}"
        )
    return cast(Event, value)


def read_history(
    path: str | Path, *, allow_truncated_tail: bool = False
) -> list[Event]:
    """Read a JSONL history; raise `HistoryError` naming the bad line.

    With `allow_truncated_tail`, a last line without its newline that does not
    parse is dropped: it is the write a killed process did not finish.
    """
    text = Path(path).read_text(encoding="utf-8")
    lines = text.split("\n")
    tail = lines.pop()  # "" when the file ends with a newline
    events = [
        _parse_line(line, f"{path}:{number}")
        for number, line in enumerate(lines, start=1)
        if line.strip()
    ]
    if tail.strip():
        try:
            events.append(_parse_line(tail, f"{path}:{len(lines) + 1}"))
        except HistoryError:
            if not allow_truncated_tail:
                raise
    return events


def merge(paths: Sequence[str | Path]) -> list[Event]:
    """Merge per-process history files into one history sorted by `t`.

    Ties in `t` keep each file's own order. `i` is renumbered from 0, and a
    truncated last line in any file is dropped.
    """
    events: list[tuple[float, int, int, Event]] = []
    for file_index, path in enumerate(paths):
        for position, event in enumerate(read_history(path, allow_truncated_tail=True)):
            events.append((event["t"], file_index, position, event))
    events.sort(key=lambda item: item[:3])
    merged = [item[3] for item in events]
    for index, event in enumerate(merged):
        event["i"] = index
    return merged


# -- pairing and finalizing --------------------------------------------------


@dataclass(frozen=True)
class Pairing:
    """Invokes matched to their completions, by position in the history."""

    invoke_of: dict[int, int]  # completion position -> invoke position
    completion_of: dict[int, int]  # invoke position -> completion position
    orphans: list[int]  # positions of invokes that never completed


def _pairing_key(event: Event) -> tuple[Any, ...]:
    worker = event.get("worker") or f"{event['process']}-{event.get('pid')}"
    if "op" in event:
        return (worker, "op", event["op"])
    job = event.get("job") if event["f"] in JOB_OPERATIONS else None
    return (worker, event["f"], job)


def pair_operations(history: Sequence[Event]) -> Pairing:
    """Match each completion to the invoke it closes, in one pass.

    Events with an ``op`` id pair by (worker, op). Others pair first-in,
    first-out by (worker, f, job), where job counts only for operations whose
    invoke names it. A completion with no open invoke stays unpaired.
    """
    open_invokes: dict[tuple[Any, ...], deque[int]] = defaultdict(deque)
    invoke_of: dict[int, int] = {}
    completion_of: dict[int, int] = {}
    for position, event in enumerate(history):
        kind = event["type"]
        if kind == "info":
            continue
        key = _pairing_key(event)
        if kind == "invoke":
            open_invokes[key].append(position)
        elif open_invokes.get(key):
            invoke = open_invokes[key].popleft()
            invoke_of[position] = invoke
            completion_of[invoke] = position
    orphans = sorted(position for queue in open_invokes.values() for position in queue)
    return Pairing(invoke_of, completion_of, orphans)


def _unknown_completion(invoke: Event, at: Event | None, reason: str) -> Event:
    event = cast(Event, {key: value for key, value in invoke.items()})
    event["type"] = "unknown"
    event["reason"] = reason
    if at is not None:
        event["t"] = at["t"]
    return event


def finalize(history: Sequence[Event]) -> list[Event]:
    """Close every invoke that never completed with an ``unknown`` completion.

    The completion goes right after the first ``kill`` or ``worker_exit`` event
    of the invoking process (same pid) that follows the invoke, with that
    event's `t` and ``reason: "killed"`` or ``"exited"``. An invoke whose
    process has no such event is closed at the end of the history with
    ``reason: "history_end"``. Returns a new list, renumbered from 0.
    """
    pairing = pair_operations(history)
    deaths: dict[int, list[int]] = defaultdict(list)
    for position, event in enumerate(history):
        if event["type"] == "info" and event["f"] in DEATH_EVENTS:
            pid = event.get("pid")
            if pid is not None:
                deaths[pid].append(position)

    closing: dict[int, list[Event]] = defaultdict(list)
    at_end: list[Event] = []
    for invoke_position in pairing.orphans:
        invoke = history[invoke_position]
        pid = invoke.get("pid")
        markers = deaths.get(pid, []) if pid is not None else []
        index = bisect.bisect_right(markers, invoke_position)
        if index == len(markers):
            at_end.append(_unknown_completion(invoke, None, "history_end"))
            continue
        death = history[markers[index]]
        reason = "killed" if death["f"] == "kill" else "exited"
        closing[markers[index]].append(_unknown_completion(invoke, death, reason))

    result: list[Event] = []
    for position, event in enumerate(history):
        result.append(cast(Event, dict(event)))
        result.extend(closing.get(position, ()))
    end_t = history[-1]["t"] if history else 0.0
    for event in at_end:
        event["t"] = max(event["t"], end_t)
        result.append(event)
    for index, event in enumerate(result):
        event["i"] = index
    return result


# -- final state ---------------------------------------------------------------


def read_final(path: str | Path) -> FinalState:
    """Read a final-state JSON file written by `write_final`."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise HistoryError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(value, dict) or not isinstance(value.get("jobs"), list):
        raise HistoryError(f"{path}: expected an object with a 'jobs' list")
    value.setdefault("effects", [])
    return cast(FinalState, value)


def write_final(path: str | Path, final: FinalState) -> None:
    """Write the final state as indented JSON."""
    Path(path).write_text(json.dumps(final, indent=1) + "\n", encoding="utf-8")
