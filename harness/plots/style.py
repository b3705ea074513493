"""Shared figure set-up: titles, the server footer and the shaded fault windows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # draw to files only; a report never opens a window

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from harness.plots.series import FaultWindow, MarkedEvent  # noqa: E402

FIGURE_SIZE_IN = (10.0, 4.2)
DPI = 100
TIME_LABEL = "time since run start (s)"
FAULT_COLORS: dict[str, str] = {
    "kill": "#d62728",
    "terminate": "#9467bd",
    "pause": "#ff7f0e",
    "db_stop": "#8c564b",
    "latency_start": "#e377c2",
    "clock_skew": "#17becf",
}
FAULT_LABELS: dict[str, str] = {
    "kill": "killed until restart",
    "terminate": "terminated until restart",
    "pause": "paused",
    "db_stop": "database down",
    "latency_start": "latency",
    "clock_skew": "clock skew",
}
OTHER_FAULT_COLOR = "#7f7f7f"
FAULT_ALPHA = 0.15


@dataclass(frozen=True)
class FigureInfo:
    """Scenario, seed and server, named in every figure."""

    scenario: str
    seed: object
    server: str

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any]) -> FigureInfo:
        server = summary.get("server") or {}
        name = server.get("name", "unknown server")
        version = server.get("version", "unknown version")
        return cls(
            str(summary.get("scenario", "?")), summary.get("seed"), f"{name} {version}"
        )


def new_figure(
    info: FigureInfo, title: str, rows: int = 1, height_in: float | None = None
) -> tuple[Figure, list[Axes]]:
    """Create a figure with `rows` stacked axes that share the x axis."""
    size = (FIGURE_SIZE_IN[0], height_in or FIGURE_SIZE_IN[1] * (1 + 0.6 * (rows - 1)))
    figure, axes = plt.subplots(
        rows, 1, figsize=size, dpi=DPI, sharex=True, squeeze=False
    )
    figure.suptitle(f"{info.scenario}: {title}", fontsize=12)
    figure.text(
        0.99,
        0.005,
        f"server {info.server}, seed {info.seed}",
        ha="right",
        va="bottom",
        fontsize=8,
        color="#555555",
    )
    return figure, [row[0] for row in axes]


def shade_faults(
    axes: Axes, faults: Iterable[FaultWindow], end_s: float
) -> list[Patch]:
    """Shade each fault window and draw instant faults as vertical lines.

    Returns one legend patch per fault kind drawn.
    """
    kinds: dict[str, None] = {}
    for window in faults:
        color = FAULT_COLORS.get(window.kind, OTHER_FAULT_COLOR)
        window_end_s = window.end_s if window.end_s is not None else end_s
        axes.axvspan(window.start_s, window_end_s, color=color, alpha=FAULT_ALPHA, lw=0)
        if window.instant:
            axes.axvline(window.start_s, color=color, lw=1.2, ls="--")
        kinds.setdefault(window.kind)
    return [
        Patch(
            color=FAULT_COLORS.get(kind, OTHER_FAULT_COLOR),
            alpha=0.4,
            label=FAULT_LABELS.get(kind, kind),
        )
        for kind in kinds
    ]


def mark_skipped(axes: Axes, skipped: Iterable[MarkedEvent]) -> bool:
    """Draw skipped faults as dotted grey lines; return True if there were any."""
    drawn = False
    for event in skipped:
        axes.axvline(event.t_s, color=OTHER_FAULT_COLOR, lw=1, ls=":")
        drawn = True
    return drawn


def add_legend(axes: Axes, extra: list[Any] | None = None) -> None:
    handles, _ = axes.get_legend_handles_labels()
    handles = [*handles, *(extra or [])]
    if handles:
        axes.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.85)


def save(figure: Figure, path: Path) -> None:
    figure.tight_layout(rect=(0, 0.02, 1, 1))
    figure.savefig(path, format="png")
    plt.close(figure)


def close_all() -> None:
    """Close figures that a failed plot left open."""
    plt.close("all")
