"""Small statistics helpers for latency samples in seconds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile, `fraction` in (0, 1]."""
    if not samples:
        raise ValueError("percentile of an empty sample")
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def to_ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
