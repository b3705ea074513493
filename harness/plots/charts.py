"""Charts over time: throughput, latency quantiles, queue depth, recovery."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from harness.history import FinalState
from harness.plots.series import RunSeries
from harness.plots.style import (
    TIME_LABEL,
    FigureInfo,
    add_legend,
    mark_skipped,
    new_figure,
    save,
    shade_faults,
)

# Candidate bucket widths; the first that gives at most the wanted count is used.
BUCKET_WIDTHS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 300.0)
THROUGHPUT_BUCKETS = 40
# Fewer, wider buckets, so that each quantile rests on more samples.
LATENCY_BUCKETS = 20
QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
STATE_COLORS = {
    "QUEUED": "#1f77b4",
    "RUNNING": "#2ca02c",
    "SUCCESS": "#2ca02c",
    "FAILED": "#d62728",
    "CANCELLED": "#7f7f7f",
}


def bucket_width_s(span_s: float, max_buckets: int) -> float:
    """Pick a bucket width that splits `span_s` into at most `max_buckets`."""
    for width_s in BUCKET_WIDTHS_S:
        if span_s / width_s <= max_buckets:
            return width_s
    return BUCKET_WIDTHS_S[-1]


def bucket_counts(times_s: Sequence[float], width_s: float) -> dict[int, int]:
    return dict(Counter(math.floor(t_s / width_s) for t_s in times_s))


def nearest_rank(sorted_values: Sequence[float], quantile: float) -> float:
    """Return the nearest-rank quantile of a sorted, non-empty sequence."""
    rank = max(1, math.ceil(quantile * len(sorted_values)))
    return sorted_values[rank - 1]


def finish_time_axis(
    axes: Axes, series: RunSeries, legend: bool = True
) -> list[Artist]:
    """Shade the faults, set the time range and add the legend.

    Returns the legend entries of the faults, for plots that place their
    legend themselves (`legend=False`).
    """
    patches: list[Artist] = [*shade_faults(axes, series.faults, series.end_s)]
    if mark_skipped(axes, series.skipped_faults):
        patches.append(Line2D([], [], color="#7f7f7f", ls=":", label="fault skipped"))
    axes.set_xlim(min(0.0, axes.get_xlim()[0]), max(series.end_s, 1.0))
    axes.grid(True, alpha=0.3)
    if legend:
        add_legend(axes, patches)
    return patches


def draw_throughput(series: RunSeries, info: FigureInfo, path: Path) -> None:
    width_s = bucket_width_s(series.end_s, THROUGHPUT_BUCKETS)
    counts = bucket_counts(series.completions_s, width_s)
    buckets = range(0, math.floor(series.end_s / width_s) + 1)
    rates = [counts.get(bucket, 0) / width_s for bucket in buckets]
    figure, (axes,) = new_figure(info, "throughput")
    axes.bar(
        [bucket * width_s for bucket in buckets],
        rates,
        width=width_s,
        align="edge",
        color="#1f77b4",
        label=f"jobs completed per second ({width_s:g} s buckets)",
    )
    axes.set_ylabel("jobs/s")
    axes.set_xlabel(TIME_LABEL)
    finish_time_axis(axes, series)
    save(figure, path)


def _draw_quantiles(
    axes: Axes, samples: Sequence[tuple[float, float]], width_s: float
) -> None:
    by_bucket: dict[int, list[float]] = {}
    for t_s, value_s in samples:
        by_bucket.setdefault(math.floor(t_s / width_s), []).append(value_s)
    buckets = sorted(by_bucket)
    centers_s = [(bucket + 0.5) * width_s for bucket in buckets]
    for name, quantile in QUANTILES:
        values_ms = [
            1000 * nearest_rank(sorted(by_bucket[bucket]), quantile)
            for bucket in buckets
        ]
        style = ":" if name == "max" else "-"
        axes.plot(centers_s, values_ms, style, marker=".", label=name)
    if not samples:
        axes.text(0.5, 0.5, "no samples", transform=axes.transAxes, ha="center")


def draw_latency(series: RunSeries, info: FigureInfo, path: Path) -> None:
    width_s = bucket_width_s(series.end_s, LATENCY_BUCKETS)
    figure, (claim_axes, job_axes) = new_figure(info, "latency quantiles", rows=2)
    _draw_quantiles(claim_axes, series.claim_latency, width_s)
    claim_axes.set_title(
        f"claim call, invoke to ok ({width_s:g} s buckets)", fontsize=10
    )
    # Log scale: a claim blocked by a pause or a database restart takes
    # seconds, and would flatten the milliseconds of every other claim.
    claim_axes.set_yscale("log")
    claim_axes.set_ylabel("ms (log scale)")
    finish_time_axis(claim_axes, series)
    _draw_quantiles(job_axes, series.end_to_end_latency, width_s)
    job_axes.set_title(
        "job end to end, enqueue ok to complete ok (by completion time)", fontsize=10
    )
    job_axes.set_yscale("log")
    job_axes.set_ylabel("ms (log scale)")
    job_axes.set_xlabel(TIME_LABEL)
    finish_time_axis(job_axes, series)
    save(figure, path)


def draw_queue_depth(series: RunSeries, info: FigureInfo, path: Path) -> None:
    figure, (open_axes, done_axes) = new_figure(info, "jobs by state", rows=2)
    for axes, states in (
        (open_axes, ("QUEUED", "RUNNING")),
        (done_axes, ("SUCCESS", "FAILED", "CANCELLED")),
    ):
        for state in states:
            counts = series.depth_by_state.get(state, [])
            if state in ("FAILED", "CANCELLED") and not any(counts):
                continue
            axes.step(
                [0.0, *series.depth_times_s],
                [0, *counts],
                where="post",
                color=STATE_COLORS[state],
                label=state,
            )
        axes.set_ylabel("jobs")
    open_axes.set_title(
        "open jobs (QUEUED includes retries waiting for backoff)", fontsize=10
    )
    done_axes.set_title("ended jobs, cumulative", fontsize=10)
    done_axes.set_xlabel(TIME_LABEL)
    finish_time_axis(open_axes, series)
    finish_time_axis(done_axes, series)
    save(figure, path)


def draw_attempts(final: FinalState, info: FigureInfo, path: Path) -> None:
    by_state: dict[str, Counter[int]] = {}
    for job in final["jobs"]:
        by_state.setdefault(job["state"], Counter())[int(job["attempts"])] += 1
    seen = [value for counts in by_state.values() for value in counts]
    cap = max((int(job["max_retries"]) + 1 for job in final["jobs"]), default=1)
    attempts = list(range(min([*seen, 1]), max([*seen, cap]) + 1))
    figure, (axes,) = new_figure(info, "attempts per job")
    bottom = [0] * len(attempts)
    for state, counts in sorted(by_state.items()):
        heights = [counts.get(value, 0) for value in attempts]
        bars = axes.bar(
            attempts,
            heights,
            bottom=bottom,
            color=STATE_COLORS.get(state, "#bcbd22"),
            label=f"final state {state}",
        )
        axes.bar_label(bars, labels=[str(h) if h else "" for h in heights], fontsize=8)
        bottom = [low + height for low, height in zip(bottom, heights, strict=True)]
    axes.axvline(
        cap + 0.5, color="#d62728", ls="--", lw=1, label="above max_retries + 1"
    )
    axes.set_xticks(attempts)
    axes.set_xlabel("attempts (claims of the job, from final.json)")
    axes.set_ylabel("jobs")
    axes.grid(True, axis="y", alpha=0.3)
    add_legend(axes)
    save(figure, path)


def draw_recovery(
    series: RunSeries, info: FigureInfo, path: Path, bound_s: float | None
) -> None:
    figure, (axes,) = new_figure(info, "time to recover per kill")
    reclaimed_x, reclaimed_y, lost_x = [], [], []
    for kill in series.kills:
        for _job, recover_s in kill.jobs:
            if recover_s is None:
                lost_x.append(kill.t_s)
            else:
                reclaimed_x.append(kill.t_s)
                reclaimed_y.append(recover_s)

    axes.plot(
        reclaimed_x, reclaimed_y, "o", color="#1f77b4",
        label="job held by the killed worker: kill to next claim",
    )  # fmt: skip
    top_s = max([*reclaimed_y, bound_s or 0.0, 1.0])
    if lost_x:
        axes.plot(
            lost_x, [top_s * 1.05] * len(lost_x), "x", color="#d62728",
            label="never claimed again",
        )  # fmt: skip
    if bound_s is not None:
        axes.axhline(bound_s, color="#d62728", ls="--", lw=1, label="recovery bound")
    if not series.kills:
        axes.text(
            0.5,
            0.5,
            "no kills by the harness in this run",
            transform=axes.transAxes,
            ha="center",
        )
    axes.set_ylim(0, top_s * 1.15)
    axes.set_ylabel("time to next claim (s)")
    axes.set_xlabel(f"kill time, {TIME_LABEL}")
    finish_time_axis(axes, series)
    save(figure, path)
