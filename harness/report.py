"""The report folder of a run, its summary and the table printed at the end.

A report folder holds:
- ``summary.json``: scenario, seed, server, invariants (``{name: {ok,
  checked, violations}}``), stats, coverage and faults;
- ``history.jsonl``: the merged and finalized history;
- ``final.json``: the jobs and side effects read from the database at the end;
- ``schedule.json``: the plan (jobs and fault actions) the run used;
- a copy of the scenario file;
- ``events/``: the per-process history files, and ``logs/``: worker logs;
- ``report.md``, ``report.html`` and the PNG plots (see `write_run_report`).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from harness.checkers.verdict import Verdict
from harness.history import (
    Event,
    FinalState,
    HistoryError,
    read_final,
    read_history,
    write_final,
    write_history,
)
from harness.plan import Plan

if TYPE_CHECKING:
    from harness.plots import PlotOutcome

log = logging.getLogger(__name__)

DEFAULT_REPORTS_DIR = Path("reports")
MESSAGE_CHARS = 90
RUN_FILES = ("summary.json", "history.jsonl", "final.json")


def default_report_dir(scenario: str, now: datetime | None = None) -> Path:
    """Return ``reports/<scenario>-<UTC timestamp>``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return DEFAULT_REPORTS_DIR / f"{scenario}-{stamp}"


def compute_stats(
    history: Sequence[Event], final: FinalState, duration_s: float
) -> dict[str, Any]:
    """Count what happened in a run, from its history and final state."""
    counts: Counter[str] = Counter()
    handler_successes: Counter[str] = Counter()
    for event in history:
        kind, f = event["type"], event["f"]
        if kind == "ok" and f == "execute":
            handler_successes[str(event.get("job"))] += 1
        elif kind == "ok" and f == "complete":
            counts["completions"] += 1
        elif kind == "fail" and event.get("error") == "stale":
            counts["stale_writes_rejected"] += 1
        elif kind == "ok" and f == "recover":
            for moved in ("requeued", "failed", "cancelled"):
                entries = event.get(moved)
                counts["recoveries"] += len(entries) if isinstance(entries, list) else 0
        elif kind == "unknown" and f != "execute":
            counts["unknown_outcomes"] += 1
        elif kind == "info" and f == "worker_exit" and event.get("exit_code"):
            counts["worker_crashes"] += 1
        elif kind == "info":
            counts[f"info_{f}"] += 1

    states = Counter(job["state"] for job in final["jobs"])
    return {
        "jobs": len(final["jobs"]),
        "jobs_by_state": dict(sorted(states.items())),
        "completions": counts["completions"],
        # Handler runs that succeeded beyond the first one of their job; the
        # summary's "duplicates" section counts every extra execution.
        "repeated_successes": sum(n - 1 for n in handler_successes.values() if n > 1),
        "side_effects": len(final["effects"]),
        "kills": counts["info_kill"],
        "pauses": counts["info_pause"],
        "terminations": counts["info_terminate"],
        "db_restarts": counts["info_db_stop"],
        "worker_crashes": counts["worker_crashes"],
        "recoveries": counts["recoveries"],
        "stale_writes_rejected": counts["stale_writes_rejected"],
        "faults_skipped": counts["info_fault_skipped"],
        "unknown_outcomes": counts["unknown_outcomes"],
        "events": len(history),
        "duration_s": round(duration_s, 3),
    }


def _json_default(value: object) -> str:
    return str(value)


def write_report(
    report_dir: Path,
    *,
    summary: Mapping[str, Any],
    history: Sequence[Event],
    final: FinalState,
    plan: Plan,
    scenario_path: Path,
) -> None:
    """Write the report files into `report_dir` (which must exist)."""
    write_history(report_dir / "history.jsonl", history)
    write_final(report_dir / "final.json", final)
    (report_dir / "schedule.json").write_text(
        plan.model_dump_json(indent=1) + "\n", encoding="utf-8"
    )
    shutil.copyfile(scenario_path, report_dir / scenario_path.name)
    (report_dir / "summary.json").write_text(
        json.dumps(summary, indent=2, default=_json_default) + "\n", encoding="utf-8"
    )


def invariants_summary(verdicts: Mapping[str, Verdict]) -> dict[str, Any]:
    """Keep `ok`, `checked` and `violations` of each verdict, by name."""
    return {
        name: {
            "ok": verdict["ok"],
            "checked": verdict["checked"],
            "violations": verdict["violations"],
        }
        for name, verdict in sorted(verdicts.items())
    }


def _first_counterexample(verdict: Verdict) -> str:
    if not verdict["violations"]:
        return ""
    first = verdict["violations"][0]
    parts = []
    if first["job"]:
        parts.append(f"job {first['job']}")
    if first["tokens"]:
        parts.append("tokens " + ",".join(str(token) for token in first["tokens"]))
    if first["times"]:
        parts.append("t " + ",".join(f"{time:.3f}" for time in first["times"][:3]))
    message = first["message"]
    if len(message) > MESSAGE_CHARS:
        message = message[: MESSAGE_CHARS - 3] + "..."
    parts.append(message)
    return "; ".join(parts)


def render_table(verdicts: Mapping[str, Verdict]) -> str:
    """Return the invariants table: name, result, violation count, first example."""
    rows = [("invariant", "result", "violations", "first counterexample")]
    for name, verdict in sorted(verdicts.items()):
        rows.append(
            (
                name,
                "ok" if verdict["ok"] else "VIOLATED",
                str(len(verdict["violations"])),
                _first_counterexample(verdict),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = []
    for row in rows:
        cells = [row[column].ljust(widths[column]) for column in range(3)]
        lines.append("  ".join([*cells, row[3]]).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths) + "  " + "-" * 20)
    return "\n".join(lines)


def render_stats(stats: Mapping[str, Any]) -> str:
    """Return the stats as one `name value` pair per line."""
    return "\n".join(f"{name:<24} {value}" for name, value in stats.items())


# -- the readable report: plots, report.md and report.html ---------------------


class RunFolderError(ValueError):
    """Raised when a folder is not a readable run report folder."""


@dataclass
class RunFolder:
    """The files of a finished run, as read back from its report folder."""

    path: Path
    summary: dict[str, Any]
    history: list[Event]
    final: FinalState


def read_run_folder(path: Path) -> RunFolder:
    """Read summary, history and final state; raise `RunFolderError` naming the problem."""
    if not path.is_dir():
        raise RunFolderError(f"{path} is not a folder")
    missing = [name for name in RUN_FILES if not (path / name).is_file()]
    if missing:
        raise RunFolderError(
            f"{path} is not a run folder: missing {', '.join(missing)}; "
            "pass a folder written by `python -m harness run`"
        )
    try:
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
        history = read_history(path / "history.jsonl")
        final = read_final(path / "final.json")
    except (json.JSONDecodeError, HistoryError) as exc:
        raise RunFolderError(f"{path}: invalid run file: {exc}") from None
    if not isinstance(summary, dict) or "invariants" not in summary:
        raise RunFolderError(f"{path}/summary.json: missing the 'invariants' object")
    return RunFolder(path, summary, history, final)


def scenario_description(report_dir: Path, scenario: str) -> str | None:
    """Return the description from the scenario copy in the folder, if any."""
    path = report_dir / f"{scenario}.yaml"
    if not path.is_file():
        return None
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        log.warning("cannot read the description from %s: %s", path, exc)
        return None
    description = loaded.get("description") if isinstance(loaded, dict) else None
    return str(description) if description else None


def write_run_report(
    report_dir: Path,
    summary: Mapping[str, Any],
    history: Sequence[Event],
    final: FinalState,
    *,
    description: str | None = None,
    recovery_bound_s: float | None = None,
) -> list[str]:
    """Draw the plots and write ``report.md`` and ``report.html``.

    Never raises: a plot or a document that fails is logged, and its error
    is returned (and noted in the report when the report itself was written).
    """
    errors: list[str] = []
    started = time.perf_counter()
    plots: list[PlotOutcome] = []
    try:
        # Imported here, so that matplotlib loads only when a report is drawn.
        from harness.plots import draw_all

        plots = draw_all(
            report_dir, summary, history, final, recovery_bound_s=recovery_bound_s
        )
    except Exception as exc:
        log.exception("drawing the plots failed")
        errors.append(f"plots: {exc!r}")
    plot_seconds = time.perf_counter() - started
    log.info("plots drawn in %.2f s into %s", plot_seconds, report_dir)
    errors += [f"{p.spec.file_name}: {p.error}" for p in plots if p.error]
    if description is None:
        description = scenario_description(report_dir, str(summary.get("scenario")))
    try:
        from harness.plots.document import (
            build_document,
            render_html,
            render_markdown,
        )

        document = build_document(
            summary, plots, description=description, plot_seconds=plot_seconds
        )
        (report_dir / "report.md").write_text(
            render_markdown(document), encoding="utf-8"
        )
        (report_dir / "report.html").write_text(render_html(document), encoding="utf-8")
    except Exception as exc:
        log.exception("writing report.md and report.html failed")
        errors.append(f"report: {exc!r}")
    return errors
