"""`python -m harness run --break NAME`: each defect fails its invariants.

Each break runs on its short scenario from `harness.breaks.CATALOGUE` and
must violate exactly the invariants listed there while every other one
holds, which also shows that each of those checkers can fail. The same
clock-skew scenario without a break must pass. Each run starts its own
embedded server (or uses `MONGODB_URI`) and takes about 15–25 s on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness import skewed_clock
from harness.breaks import BREAKS, BY_NAME, CATALOGUE, resolve_break

REPO = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_S = 180
# no-recovery waits out its drain timeout; tests/test_harness_run.py runs it.
SHOWN_HERE = [entry.name for entry in CATALOGUE if entry.name != "no-recovery"]


def run_harness(
    scenario: str, report_dir: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "run", scenario, "--quiet",
         "--report-dir", str(report_dir), *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )  # fmt: skip


def violated(summary: dict[str, Any]) -> set[str]:
    return {
        name for name, verdict in summary["invariants"].items() if not verdict["ok"]
    }


def test_breaks_catalogue_names() -> None:
    assert set(SHOWN_HERE) == {
        "fencing", "atomic-claim", "retry-cap", "client-clock", "priority", "fifo",
    }  # fmt: skip
    assert "no-recovery" in BREAKS
    assert resolve_break("fencing") == "fencing"
    assert resolve_break(None) is None
    with pytest.raises(ValueError, match="unknown break 'nothing'"):
        resolve_break("nothing")


def test_break_help_lists_every_name() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--help"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert result.returncode == 0
    # argparse wraps lines, also at the hyphen of a name such as atomic-claim.
    help_text = "".join(result.stdout.split())
    for name in BREAKS:
        assert name in help_text, name


def test_skewed_clock_shifts_wall_clock_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(skewed_clock.CLOCK_OFFSET_ENV, "300")
    try:
        # Given a process whose wall clock was shifted by five minutes
        offset_s = skewed_clock.install_from_environment()
        wall_s, monotonic_s = time.time(), time.monotonic()
        # When the real clocks are read at the same moment
        real_wall_s = skewed_clock._real_time()
    finally:
        skewed_clock.install(0.0)

    # Then only the wall clock moved
    assert offset_s == 300.0
    assert 299.0 < wall_s - real_wall_s < 301.0
    assert abs(time.monotonic() - monotonic_s) < 1.0
    assert abs(time.time() - real_wall_s) < 1.0


def test_skewed_clock_rejects_bad_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(skewed_clock.CLOCK_OFFSET_ENV, "5 min")

    with pytest.raises(ValueError, match="expected seconds as a number"):
        skewed_clock.install_from_environment()


@pytest.mark.slow
@pytest.mark.parametrize("name", SHOWN_HERE)
def test_break_violates_its_invariants(name: str, tmp_path: Path) -> None:
    entry = BY_NAME[name]
    report_dir = tmp_path / "report"

    result = run_harness(entry.scenario, report_dir, "--break", name)

    output = result.stdout + result.stderr[-3000:]
    assert result.returncode == 1, output
    assert "invariants VIOLATED" in result.stdout, output
    summary = json.loads((report_dir / "summary.json").read_text())
    assert summary["break"] == name
    assert violated(summary) == set(entry.violates), summary["invariants"]
    assert summary["drained"] is True


# Scenarios of the breaks whose normal run no other test covers.
NORMAL_RUNS = sorted(
    {entry.scenario for entry in CATALOGUE}
    - {BY_NAME["client-clock"].scenario, BY_NAME["no-recovery"].scenario}
)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", NORMAL_RUNS)
def test_break_scenario_holds_without_break(scenario: str, tmp_path: Path) -> None:
    report_dir = tmp_path / "report"

    result = run_harness(scenario, report_dir)

    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    summary = json.loads((report_dir / "summary.json").read_text())
    assert violated(summary) == set()


@pytest.mark.slow
def test_clock_skew_passes_without_break(tmp_path: Path) -> None:
    report_dir = tmp_path / "report"

    result = run_harness(BY_NAME["client-clock"].scenario, report_dir)

    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    summary = json.loads((report_dir / "summary.json").read_text())
    assert violated(summary) == set()
    assert summary["coverage"]["ok"]
    assert summary["coverage"]["counts"]["clock_skew"] >= 1
    assert summary["stats"]["faults_skipped"] == 0
    history = (report_dir / "history.jsonl").read_text().splitlines()
    skews = [json.loads(line) for line in history if '"clock_skew"' in line]
    starts = [event for event in skews if event.get("offset_s")]
    assert starts, "no clock_skew start event in the history"
    assert all(event["method"] in ("in-process", "libfaketime") for event in starts)
