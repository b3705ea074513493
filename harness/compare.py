"""Compare two run folders: invariants, stats, coverage and throughput.

`python -m harness compare RUN_A RUN_B` prints plain tables of the two runs
side by side, with a ``*`` on each row that differs, and draws the
throughput of both runs on one plot (``compare-throughput.png``). It reads
only the report folders.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.report import RunFolder

if TYPE_CHECKING:
    from harness.plots.style import FigureInfo

log = logging.getLogger(__name__)

COMPARE_PLOT = "compare-throughput.png"
RUN_COLORS = ("#1f77b4", "#d62728")


def plain_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Return left-aligned columns separated by two spaces, with a rule line."""
    widths = [
        max(len(row[column]) for row in [header, *rows])
        for column in range(len(header))
    ]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True))
    ]
    lines.append("  ".join("-" * width for width in widths))
    for row in rows:
        lines.append(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        )
    return "\n".join(line.rstrip() for line in lines)


def _verdict_text(verdict: Mapping[str, Any] | None) -> str:
    if verdict is None:
        return "absent"
    if verdict.get("ok"):
        return "ok"
    return f"VIOLATED ({len(verdict.get('violations') or [])})"


def invariant_rows(a: RunFolder, b: RunFolder) -> list[list[str]]:
    invariants_a = a.summary.get("invariants") or {}
    invariants_b = b.summary.get("invariants") or {}
    rows = []
    for name in sorted({*invariants_a, *invariants_b}):
        text_a = _verdict_text(invariants_a.get(name))
        text_b = _verdict_text(invariants_b.get(name))
        rows.append([name, text_a, text_b, "*" if text_a != text_b else ""])
    return rows


def _delta(value_a: Any, value_b: Any) -> str:
    numbers = (int, float)
    if isinstance(value_a, numbers) and isinstance(value_b, numbers):
        if isinstance(value_a, bool) or isinstance(value_b, bool):
            return ""
        difference = value_b - value_a
        return (
            f"{difference:+.3f}"
            if isinstance(difference, float)
            else f"{difference:+d}"
        )
    return ""


def value_rows(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[list[str]]:
    """Return name, A, B, B - A and a change mark for every key of either."""
    rows = []
    for name in [*a, *(key for key in b if key not in a)]:
        value_a, value_b = a.get(name, "absent"), b.get(name, "absent")
        changed = "*" if value_a != value_b else ""
        rows.append(
            [name, str(value_a), str(value_b), _delta(value_a, value_b), changed]
        )
    return rows


def _describe(label: str, run: RunFolder) -> str:
    summary = run.summary
    server = summary.get("server") or {}
    return (
        f"run {label}: {run.path} (scenario {summary.get('scenario')}, "
        f"seed {summary.get('seed')}, break {summary.get('break') or 'none'}, "
        f"{server.get('name', '?')} {server.get('version', '?')})"
    )


def render_comparison(a: RunFolder, b: RunFolder) -> str:
    """Return the text that `compare` prints, without the plot line."""
    coverage_a = (a.summary.get("coverage") or {}).get("counts") or {}
    coverage_b = (b.summary.get("coverage") or {}).get("counts") or {}
    sections = [
        _describe("A", a) + "\n" + _describe("B", b),
        plain_table(("invariant", "A", "B", "differs"), invariant_rows(a, b)),
        plain_table(
            ("stat", "A", "B", "B - A", "differs"),
            value_rows(a.summary.get("stats") or {}, b.summary.get("stats") or {}),
        ),
        plain_table(
            ("coverage event", "A", "B", "B - A", "differs"),
            value_rows(coverage_a, coverage_b),
        ),
    ]
    return "\n\n".join(sections)


def draw_throughput_comparison(a: RunFolder, b: RunFolder, path: Path) -> None:
    """Draw the completions per second of both runs on one time axis."""
    from harness.plots.charts import THROUGHPUT_BUCKETS, bucket_counts, bucket_width_s
    from harness.plots.series import build_series
    from harness.plots.style import TIME_LABEL, new_figure, save

    series = [build_series(run.history, run.final) for run in (a, b)]
    end_s = max(max(item.end_s for item in series), 1.0)
    width_s = bucket_width_s(end_s, THROUGHPUT_BUCKETS)
    info = _comparison_info(a, b)
    figure, (axes,) = new_figure(info, "throughput of two runs")
    buckets = range(0, math.floor(end_s / width_s) + 1)
    for label, run, item, color in zip("AB", (a, b), series, RUN_COLORS, strict=True):
        counts = bucket_counts(item.completions_s, width_s)
        rates = [counts.get(bucket, 0) / width_s for bucket in buckets]
        axes.step(
            [bucket * width_s for bucket in buckets], rates, where="post",
            color=color, label=f"{label}: {run.path.name}",
        )  # fmt: skip
        for window in item.faults:
            window_end_s = window.end_s if window.end_s is not None else item.end_s
            axes.axvspan(window.start_s, window_end_s, color=color, alpha=0.1, lw=0)
            if window.instant:
                axes.axvline(window.start_s, color=color, ls="--", lw=1)
    axes.set_xlabel(TIME_LABEL)
    axes.set_ylabel(f"jobs completed per second ({width_s:g} s buckets)")
    axes.set_xlim(0, end_s)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper right", fontsize=8, title="shaded: each run's faults",
                title_fontsize=8)  # fmt: skip
    save(figure, path)


def _comparison_info(a: RunFolder, b: RunFolder) -> FigureInfo:
    from harness.plots.style import FigureInfo

    servers = []
    for run in (a, b):
        server = run.summary.get("server") or {}
        servers.append(f"{server.get('name', '?')} {server.get('version', '?')}")
    server_text = servers[0] if servers[0] == servers[1] else " vs ".join(servers)
    scenarios = {str(run.summary.get("scenario")) for run in (a, b)}
    seeds = " vs ".join(str(run.summary.get("seed")) for run in (a, b))
    return FigureInfo(" vs ".join(sorted(scenarios)), seeds, server_text)
