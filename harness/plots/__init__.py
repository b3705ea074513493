"""PNG plots of a run, drawn from its history, final state and summary.

`draw_all` builds every series in one pass over the history and draws each
plot into the report folder. A plot that raises is logged and returned with
its error, so a broken plot never changes a run's outcome. Plots never read
the database and never rerun anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.history import Event, FinalState
from harness.plots import charts, timelines
from harness.plots.series import RunSeries, build_series
from harness.plots.style import FigureInfo, close_all

__all__ = ["PLOTS", "PlotOutcome", "PlotSpec", "draw_all"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlotInput:
    """Inputs that every plot may draw from."""

    series: RunSeries
    final: FinalState
    info: FigureInfo
    recovery_bound_s: float | None


@dataclass(frozen=True)
class PlotSpec:
    """One plot: its file name, its heading in the report and how to draw it."""

    file_name: str
    title: str
    draw: Callable[[PlotInput, Path], None]


@dataclass(frozen=True)
class PlotOutcome:
    """A drawn plot, or the error that stopped it."""

    spec: PlotSpec
    path: Path | None
    error: str | None
    seconds: float


PLOTS: tuple[PlotSpec, ...] = (
    PlotSpec(
        "throughput.png",
        "Throughput",
        lambda data, path: charts.draw_throughput(data.series, data.info, path),
    ),
    PlotSpec(
        "latency.png",
        "Claim and end-to-end latency",
        lambda data, path: charts.draw_latency(data.series, data.info, path),
    ),
    PlotSpec(
        "queue-depth.png",
        "Jobs by state",
        lambda data, path: charts.draw_queue_depth(data.series, data.info, path),
    ),
    PlotSpec(
        "attempts.png",
        "Attempts per job",
        lambda data, path: charts.draw_attempts(data.final, data.info, path),
    ),
    PlotSpec(
        "recovery.png",
        "Time to recover per kill",
        lambda data, path: charts.draw_recovery(
            data.series, data.info, path, data.recovery_bound_s
        ),
    ),
    PlotSpec(
        "leases.png",
        "Leases of recovered jobs",
        lambda data, path: timelines.draw_lease_timeline(data.series, data.info, path),
    ),
    PlotSpec(
        "workers.png",
        "Worker lifecycle",
        lambda data, path: timelines.draw_worker_timeline(data.series, data.info, path),
    ),
)


def draw_all(
    report_dir: Path,
    summary: Mapping[str, Any],
    history: Sequence[Event],
    final: FinalState,
    *,
    recovery_bound_s: float | None = None,
    plots: Sequence[PlotSpec] | None = None,
) -> list[PlotOutcome]:
    """Draw `plots` (default `PLOTS`) into `report_dir`; never raise for one that fails."""
    plots = PLOTS if plots is None else plots
    info = FigureInfo.from_summary(summary)
    try:
        series = build_series(history, final)
    except Exception as exc:
        log.exception("building the plot series failed; no plots drawn")
        return [PlotOutcome(spec, None, f"series: {exc!r}", 0.0) for spec in plots]
    data = PlotInput(series, final, info, recovery_bound_s)
    return [_draw_one(spec, data, report_dir) for spec in plots]


def _draw_one(spec: PlotSpec, data: PlotInput, report_dir: Path) -> PlotOutcome:
    started = time.perf_counter()
    path = report_dir / spec.file_name
    try:
        spec.draw(data, path)
    except Exception as exc:
        log.exception("plot %s failed", spec.file_name)
        close_all()
        return PlotOutcome(spec, None, repr(exc), time.perf_counter() - started)
    return PlotOutcome(spec, path, None, time.perf_counter() - started)
