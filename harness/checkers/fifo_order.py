"""fifo_order: within one queue and priority, jobs are first claimed in seq order."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence

from harness.checkers.availability import (
    Availability,
    ClaimWindow,
    collect,
    describe_pass_over,
    sweep,
)
from harness.checkers.index import HistoryIndex
from harness.checkers.verdict import Verdict, Violation, make_verdict
from harness.history import Event, FinalState


class _PrefixLatest:
    """A Fenwick tree over seq ranks: the latest-ending span among the n smallest.

    Spans are only added, so each node keeps the latest end it has seen.
    Both operations take O(log n) time.
    """

    def __init__(self, seqs: list[int]) -> None:
        self.seqs = seqs  # sorted, distinct
        self.tree: list[Availability | None] = [None] * (len(seqs) + 1)

    def add(self, span: Availability) -> None:
        index = bisect.bisect_left(self.seqs, span.seq) + 1
        while index < len(self.tree):
            node = self.tree[index]
            if node is None or span.end_t > node.end_t:
                self.tree[index] = span
            index += index & -index

    def latest_below(self, seq: int) -> Availability | None:
        """Return the latest-ending span whose seq is smaller than `seq`."""
        index = bisect.bisect_left(self.seqs, seq)
        best: Availability | None = None
        while index > 0:
            node = self.tree[index]
            if node is not None and (best is None or node.end_t > best.end_t):
                best = node
            index -= index & -index
        return best


def check(
    history: Sequence[Event], final: FinalState, *, index: HistoryIndex | None = None
) -> Verdict:
    """Check that no first claim passed over an older job of the same priority.

    Only a job's first claim counts, and only the availability that its
    enqueue started. A first claim of seq s in queue q at priority p is a
    violation when a job of q and p with a smaller seq was available for the
    whole claim window, as defined in `harness.checkers.availability`.
    `checked` counts first claims.
    """
    spans, windows, _ = collect(history, final, index)
    spans = [span for span in spans if span.first]
    windows = [window for window in windows if window.first]

    seqs_by_group: dict[tuple[str, int], set[int]] = defaultdict(set)
    for span in spans:
        seqs_by_group[(span.queue, span.priority)].add(span.seq)
    trees = {
        group: _PrefixLatest(sorted(seqs)) for group, seqs in seqs_by_group.items()
    }
    violations: list[Violation] = []

    def insert(span: Availability) -> None:
        trees[(span.queue, span.priority)].add(span)

    def query(window: ClaimWindow) -> None:
        tree = trees.get((window.queue, window.priority))
        witness = tree.latest_below(window.seq) if tree is not None else None
        if witness is not None and witness.end_t > window.ok_t:
            rule = "a smaller seq of the same priority must be claimed first"
            violations.append(describe_pass_over(window, witness, rule))

    sweep(history, spans, windows, insert, query)
    return make_verdict(len(windows), violations)
