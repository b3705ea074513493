"""`python -m harness compare`: two hand-made run folders, and a bad folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from tests.run_folders import write_run_folder

REPO = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIMEOUT_S = 60


def harness(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def test_compare_prints_differences(tmp_path: Path) -> None:
    run_a = write_run_folder(tmp_path / "a")
    run_b = write_run_folder(tmp_path / "b", violated="single_commit")
    out_dir = tmp_path / "out"

    result = harness("compare", str(run_a), str(run_b), "--out", str(out_dir))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    single_commit = next(line for line in lines if line.startswith("single_commit"))
    assert single_commit.split() == ["single_commit", "ok", "VIOLATED", "(1)", "*"]
    drained = next(line for line in lines if line.startswith("drained"))
    assert drained.split() == ["drained", "ok", "ok"]
    assert any(line.split()[:4] == ["kills", "1", "1", "+0"] for line in lines)
    assert f"run A: {run_a}" in result.stdout
    plot = out_dir / "compare-throughput.png"
    assert plot.read_bytes().startswith(PNG_SIGNATURE)
    assert f"throughput plot: {plot}" in result.stdout


def test_compare_plot_defaults_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_a = write_run_folder(tmp_path / "a")
    run_b = write_run_folder(tmp_path / "b")
    monkeypatch.chdir(tmp_path)

    code = main(["compare", str(run_a), str(run_b)])

    assert code == 0
    assert (tmp_path / "compare-throughput.png").is_file()


def test_compare_rejects_missing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_a = write_run_folder(tmp_path / "a")
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    out_dir = tmp_path / "out"

    code = main(["compare", str(run_a), str(not_a_run), "--out", str(out_dir)])

    output = capsys.readouterr()
    assert code == 2
    assert "is not a run folder: missing summary.json, history.jsonl" in output.err
    assert output.out == ""
    assert not out_dir.exists()


def test_compare_rejects_absent_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_a = write_run_folder(tmp_path / "a")

    code = main(["compare", str(tmp_path / "absent"), str(run_a)])

    assert code == 2
    assert "absent is not a folder" in capsys.readouterr().err


def test_compare_rejects_invalid_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_a = write_run_folder(tmp_path / "a")
    run_b = write_run_folder(tmp_path / "b")
    (run_b / "summary.json").write_text("{not json", encoding="utf-8")

    code = main(["compare", str(run_a), str(run_b)])

    assert code == 2
    assert "invalid run file" in capsys.readouterr().err
