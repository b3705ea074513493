"""Timelines: the leases of recovered jobs, and the life of each worker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from harness.checkers.index import ENDING_WRITES
from harness.plots.charts import finish_time_axis
from harness.plots.series import Lease, MarkedEvent, RunSeries
from harness.plots.style import TIME_LABEL, FigureInfo, new_figure, save

# More rows than this make the labels unreadable. The title then counts the
# jobs left out.
MAX_LEASE_ROWS = 40
ROW_HEIGHT_IN = 0.28
WORKER_COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b",
    "#e377c2", "#bcbd22", "#17becf", "#7f7f7f", "#aec7e8",
)  # fmt: skip
LIFECYCLE_COLORS = {
    "up": "#2ca02c",
    "paused": "#ff7f0e",
    "stopping": "#9467bd",
    "down": "#d9d9d9",
}
LIFECYCLE_MARKERS = {
    "kill": ("X", "#d62728", "killed (SIGKILL)"),
    "restart": ("^", "#1f77b4", "restart requested"),
    "worker_exit": ("s", "#000000", "exited"),
    "worker_start": ("o", "#2ca02c", "started"),
}
# Lifecycle events that start or end a window drawn under a worker's row.
OVERLAY_STARTS = {"latency_start": "latency", "clock_skew": "clock_skew"}
OVERLAY_ENDS = {"latency_end": "latency", "clock_skew_end": "clock_skew"}


@dataclass
class LeaseBar:
    """One row of the lease timeline, on the run's time axis."""

    lease: Lease
    start_s: float
    end_s: float
    expired: bool
    recovered_s: float | None


def slot_of(worker: str) -> str:
    """Return the worker slot (``w1``) of a worker id (``w1-4242``)."""
    return worker.rsplit("-", 1)[0]


def _slot_color(slot: str, slots: Sequence[str]) -> str:
    return WORKER_COLORS[sorted(slots).index(slot) % len(WORKER_COLORS)]


def lease_bar(series: RunSeries, lease: Lease) -> LeaseBar | None:
    """Place a lease on the time axis; None when its claim had no `db_time`."""
    if lease.start_db is None:
        return None
    start_s = series.db_to_run_s(lease.start_db)
    by_write = lease.ended_by in ENDING_WRITES and lease.end_db is not None
    if by_write and lease.end_db is not None:
        end_s = series.db_to_run_s(lease.end_db)
    elif lease.expires_db is not None:
        end_s = series.db_to_run_s(lease.expires_db)
    else:
        end_s = start_s
    recovered_s = None
    if lease.recovered_db is not None:
        recovered_s = series.db_to_run_s(lease.recovered_db)
    return LeaseBar(lease, start_s, end_s, not by_write, recovered_s)


def timeline_jobs(series: RunSeries) -> list[str]:
    """Return the recovered jobs, then the other jobs with stale writes."""
    jobs = dict.fromkeys(series.recovered_jobs)
    for event in series.stale_writes:
        if event.job:
            jobs.setdefault(event.job)
    return list(jobs)


def _overlaps(bars: Sequence[LeaseBar]) -> list[tuple[float, float]]:
    spans = []
    for index, first in enumerate(bars):
        for second in bars[index + 1 :]:
            if first.lease.token == second.lease.token:
                continue
            start_s = max(first.start_s, second.start_s)
            end_s = min(first.end_s, second.end_s)
            if end_s > start_s:
                spans.append((start_s, end_s))
    return spans


def _draw_job_rows(
    axes: Axes, row: int, bars: Sequence[LeaseBar], slots: Sequence[str]
) -> None:
    for offset, bar in enumerate(bars):
        color = _slot_color(slot_of(bar.lease.worker), slots)
        axes.barh(
            row + offset, bar.end_s - bar.start_s, left=bar.start_s, height=0.7,
            color=color, hatch="//" if bar.expired else None,
            edgecolor="#333333" if bar.expired else color,
        )  # fmt: skip
        axes.text(
            bar.end_s, row + offset, f" {bar.lease.worker}",
            va="center", fontsize=7,
        )  # fmt: skip
        if bar.recovered_s is not None:
            axes.plot(bar.recovered_s, row + offset, "D", color="#000000", ms=5)
    for start_s, end_s in _overlaps(bars):
        axes.fill_between(
            [start_s, end_s], row - 0.45, row + len(bars) - 0.55,
            color="#d62728", alpha=0.5,
        )  # fmt: skip


def _lease_legend(slots: Sequence[str]) -> list[object]:
    handles: list[object] = [
        Patch(facecolor=_slot_color(slot, slots), label=f"lease held by {slot}")
        for slot in sorted(slots)
    ]
    handles += [
        Patch(facecolor="white", edgecolor="#333333", hatch="//", label="ended by expiry"),
        Line2D([], [], marker="D", ls="", color="#000000", label="recovered (requeued)"),
        Line2D([], [], marker="X", ls="", color="#000000", ms=8, label="stale write rejected"),
        Patch(color="#d62728", alpha=0.5, label="lease overlap"),
    ]  # fmt: skip
    return handles


def _lease_rows(
    series: RunSeries, jobs: Sequence[str]
) -> list[tuple[str, list[LeaseBar]]]:
    """Return the bars of each job, skipping jobs beyond `MAX_LEASE_ROWS` rows."""
    rows: list[tuple[str, list[LeaseBar]]] = []
    row_count = 0
    for job in jobs:
        bars = []
        for lease in series.leases.get(job, ()):
            bar = lease_bar(series, lease)
            if bar is not None:
                bars.append(bar)
        if not bars or row_count + len(bars) > MAX_LEASE_ROWS:
            continue
        rows.append((job, bars))
        row_count += len(bars)
    return rows


def draw_lease_timeline(series: RunSeries, info: FigureInfo, path: Path) -> None:
    jobs = timeline_jobs(series)
    rows = _lease_rows(series, jobs)
    row_count = sum(len(bars) for _, bars in rows)
    title = "leases of recovered jobs (database time)"
    if len(rows) < len(jobs):
        title += f", first {len(rows)} of {len(jobs)} jobs"

    height_in = max(3.5, 1.8 + ROW_HEIGHT_IN * row_count)
    figure, (axes,) = new_figure(info, title, height_in=height_in)
    slots = sorted({slot_of(bar.lease.worker) for _, bars in rows for bar in bars})

    tick_rows, tick_labels, row = [], [], 0
    stale = _stale_by_lease(series.stale_writes)
    for job, bars in rows:
        _draw_job_rows(axes, row, bars, slots)
        for offset, bar in enumerate(bars):
            tick_rows.append(row + offset)
            tick_labels.append(f"…{job[-6:]} token {bar.lease.token}")
            for t_s in stale.get((job, bar.lease.token), ()):
                axes.plot(t_s, row + offset, "X", color="#000000", ms=8)
        row += len(bars)
    if not rows:
        axes.text(0.5, 0.5, "no job was recovered in this run",
                  transform=axes.transAxes, ha="center")  # fmt: skip

    axes.set_yticks(tick_rows, tick_labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel(TIME_LABEL)
    fault_patches = finish_time_axis(axes, series, legend=False)
    axes.legend(
        handles=[*_lease_legend(slots), *fault_patches],
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        fontsize=8,
    )
    save(figure, path)


def _stale_by_lease(
    stale_writes: Sequence[MarkedEvent],
) -> dict[tuple[str | None, int | None], list[float]]:
    found: dict[tuple[str | None, int | None], list[float]] = {}
    for event in stale_writes:
        found.setdefault((event.job, event.token), []).append(event.t_s)
    return found


# -- worker lifecycle ---------------------------------------------------------

NEXT_STATE = {
    "worker_start": "up",
    "kill": "down",
    "terminate": "stopping",
    "worker_exit": "down",
    "pause": "paused",
    "resume": "up",
}


def lifecycle_segments(
    events: Sequence[MarkedEvent], end_s: float
) -> dict[str, list[tuple[str, float, float]]]:
    """Return per worker slot the (state, start_s, end_s) segments."""
    segments: dict[str, list[tuple[str, float, float]]] = {}
    current: dict[str, tuple[str, float]] = {}
    for event in events:
        state = NEXT_STATE.get(event.name)
        if state is None:
            continue
        previous = current.get(event.process)
        if previous is not None:
            segments.setdefault(event.process, []).append(
                (previous[0], previous[1], event.t_s)
            )
        current[event.process] = (state, event.t_s)
    for process, (state, since_s) in current.items():
        segments.setdefault(process, []).append((state, since_s, max(end_s, since_s)))
    return segments


def _overlay_segments(
    events: Sequence[MarkedEvent], end_s: float
) -> list[tuple[str, str, float, float]]:
    """Return (slot, fault, start_s, end_s) for latency and clock skew windows."""
    found = []
    open_since: dict[tuple[str, str], float] = {}
    for event in events:
        if event.name in OVERLAY_STARTS:
            open_since[(event.process, OVERLAY_STARTS[event.name])] = event.t_s
        elif event.name in OVERLAY_ENDS:
            key = (event.process, OVERLAY_ENDS[event.name])
            since_s = open_since.pop(key, None)
            if since_s is not None:
                found.append((*key, since_s, event.t_s))
    found += [(*key, since_s, end_s) for key, since_s in open_since.items()]
    return found


def draw_worker_timeline(series: RunSeries, info: FigureInfo, path: Path) -> None:
    segments = lifecycle_segments(series.lifecycle, series.end_s)
    slots = sorted({*segments, *(event.process for event in series.lifecycle)})
    height_in = max(3.2, 1.8 + 0.45 * len(slots))
    figure, (axes,) = new_figure(info, "worker lifecycle", height_in=height_in)
    for row, slot in enumerate(slots):
        for state, start_s, end_s in segments.get(slot, ()):
            axes.barh(row, end_s - start_s, left=start_s, height=0.5,
                      color=LIFECYCLE_COLORS[state])  # fmt: skip
    for slot, key, start_s, end_s in _overlay_segments(series.lifecycle, series.end_s):
        axes.barh(slots.index(slot) - 0.33, end_s - start_s, left=start_s, height=0.12,
                  color="#e377c2" if key == "latency" else "#17becf")  # fmt: skip
    for event in series.lifecycle:
        if event.name in LIFECYCLE_MARKERS and event.process in slots:
            marker, color, _ = LIFECYCLE_MARKERS[event.name]
            axes.plot(event.t_s, slots.index(event.process), marker, color=color, ms=7)
    axes.set_yticks(range(len(slots)), slots)
    axes.set_ylim(len(slots) - 0.4, -0.6)
    axes.set_xlabel(TIME_LABEL)
    fault_patches = finish_time_axis(axes, series, legend=False)
    used = {state for rows in segments.values() for state, _, _ in rows}
    used |= {event.name for event in series.lifecycle}
    axes.legend(
        handles=[*_lifecycle_legend(used), *fault_patches],
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        fontsize=8,
    )
    save(figure, path)


def _lifecycle_legend(used: set[str]) -> list[object]:
    """Return legend entries for the states, markers and overlays drawn."""
    handles: list[object] = [
        Patch(color=color, label=state)
        for state, color in LIFECYCLE_COLORS.items()
        if state in used
    ]
    handles += [
        Line2D([], [], marker=marker, ls="", color=color, label=label)
        for name, (marker, color, label) in LIFECYCLE_MARKERS.items()
        if name in used
    ]
    if "latency_start" in used:
        handles.append(Patch(color="#e377c2", label="latency on its traffic"))
    if "clock_skew" in used:
        handles.append(Patch(color="#17becf", label="clock skewed"))
    return handles
