"""Report plots, report.md and report.html from a small hand-made run folder.

No database and no worker process: the run folder is written by
`tests.run_folders`, and the report is drawn from its files alone.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from harness.plots import PLOTS, PlotSpec
from harness.plots.series import build_series
from harness.report import read_run_folder, write_run_report
from tests.run_folders import INVARIANTS, JOB_B, JOB_C, write_run_folder

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_PNG_BYTES = 5_000


def draw_report(folder: Path, description: str | None = None) -> list[str]:
    run = read_run_folder(folder)
    return write_run_report(
        run.path,
        run.summary,
        run.history,
        run.final,
        description=description,
        recovery_bound_s=4.5,
    )


def test_series_follow_the_history(tmp_path: Path) -> None:
    run = read_run_folder(write_run_folder(tmp_path / "run"))

    series = build_series(run.history, run.final)

    assert len(series.completions_s) == 3
    assert [window.kind for window in series.faults] == ["kill", "pause"]
    assert series.faults[0].start_s == pytest.approx(1.5)
    assert series.faults[0].end_s == pytest.approx(2.5)
    assert series.recovered_jobs == [JOB_B]
    assert len(series.kills) == 1
    (job, recover_s), = series.kills[0].jobs  # fmt: skip
    assert job == JOB_B
    assert recover_s == pytest.approx(3.005 - 1.5)
    assert [event.job for event in series.stale_writes] == [JOB_B]
    assert series.depth_by_state["SUCCESS"][-1] == 3
    assert series.depth_by_state["QUEUED"][-1] == 0
    assert series.depth_by_state["RUNNING"][-1] == 0


def test_series_count_a_retry_as_queued(tmp_path: Path) -> None:
    run = read_run_folder(write_run_folder(tmp_path / "run"))

    series = build_series(run.history, run.final)

    # Job C failed once: RUNNING -> QUEUED, then claimed again.
    c_tokens = [lease.token for lease in series.leases[JOB_C]]
    assert c_tokens == [1, 2]
    assert max(series.depth_by_state["QUEUED"]) >= 1


def test_report_writes_every_plot(tmp_path: Path) -> None:
    folder = write_run_folder(tmp_path / "run")

    errors = draw_report(folder)

    assert errors == []
    for spec in PLOTS:
        data = (folder / spec.file_name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), spec.file_name
        assert len(data) > MIN_PNG_BYTES, spec.file_name


def test_report_html_is_self_contained(tmp_path: Path) -> None:
    folder = write_run_folder(tmp_path / "run")

    draw_report(folder, description="Tiny run for the tests.")

    page = (folder / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == len(PLOTS)
    assert 'src="http' not in page
    assert "<link" not in page
    for name in INVARIANTS:
        assert name in page
    assert "Tiny run for the tests." in page
    assert "SecantusDB 0.7.0b3" in page
    assert "all invariants hold" in page


def test_report_markdown_links_plots(tmp_path: Path) -> None:
    folder = write_run_folder(tmp_path / "run")

    draw_report(folder)

    text = (folder / "report.md").read_text(encoding="utf-8")
    assert "# Chaos run report: tiny" in text
    for spec in PLOTS:
        assert f"]({spec.file_name})" in text
    for name in INVARIANTS:
        assert f"| {name} | ok |" in text


def test_report_shows_violated_invariant(tmp_path: Path) -> None:
    folder = write_run_folder(tmp_path / "run", violated="single_commit")

    draw_report(folder)

    page = (folder / "report.html").read_text(encoding="utf-8")
    text = (folder / "report.md").read_text(encoding="utf-8")
    assert '<td class="violated">VIOLATED</td>' in page
    assert "VIOLATED: single_commit" in page
    assert "two accepted completions of one job" in page
    assert f"job {JOB_B}; tokens 1, 2" in text
    assert "| single_commit | VIOLATED | 3 | 1 |" in text


def test_report_description_from_scenario_copy(tmp_path: Path) -> None:
    folder = write_run_folder(tmp_path / "run")
    (folder / "tiny.yaml").write_text(
        "name: tiny\ndescription: Read from the copy.\n", encoding="utf-8"
    )

    draw_report(folder)

    assert "Read from the copy." in (folder / "report.md").read_text(encoding="utf-8")


def test_failing_plot_keeps_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a plot that raises
    def broken(data: object, path: Path) -> None:
        raise RuntimeError("plot exploded")

    broken_spec = PlotSpec("broken.png", "Broken plot", broken)
    monkeypatch.setattr("harness.plots.PLOTS", (*PLOTS[:2], broken_spec))
    folder = write_run_folder(tmp_path / "run")

    # When the report is drawn
    with caplog.at_level(logging.ERROR, logger="harness.plots"):
        errors = draw_report(folder)

    # Then the error is returned, logged and noted, and the other plots exist
    assert errors == ["broken.png: RuntimeError('plot exploded')"]
    assert "plot broken.png failed" in caplog.text
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "Plot failed: RuntimeError(&#x27;plot exploded&#x27;)" in page
    assert page.count("data:image/png;base64,") == 2
    assert not (folder / "broken.png").exists()
    assert (folder / PLOTS[0].file_name).exists()


def test_report_from_empty_history(tmp_path: Path) -> None:
    folder = write_run_folder(tmp_path / "run")
    (folder / "history.jsonl").write_text("", encoding="utf-8")

    errors = draw_report(folder)

    assert errors == []
    assert (folder / "report.html").exists()
