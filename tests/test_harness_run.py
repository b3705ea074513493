"""`python -m harness`: the command line, and a crash scenario end to end.

The end-to-end run starts its own embedded server (or uses `MONGODB_URI`),
three worker processes and two SIGKILLs. It took about 20 s on a 2-core
machine with SecantusDB 0.7.0b3.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CI_CRASH = REPO / "scenarios" / "ci-crash.yaml"
RUN_TIMEOUT_S = 240


def harness(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def pids_of_children_named(pattern: str) -> list[int]:
    """Return pids of live processes whose command line contains `pattern`."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if pattern.encode() in command:
            pids.append(int(proc.name))
    return pids


def test_cli_list_shows_descriptions() -> None:
    result = harness("list")

    assert result.returncode == 0, result.stderr
    assert "ci-crash.yaml" in result.stdout
    assert "two SIGKILLs" in result.stdout


def test_cli_missing_scenario_exits_2(tmp_path: Path) -> None:
    result = harness("run", str(tmp_path / "absent.yaml"))

    assert result.returncode == 2
    assert "scenario file not found" in result.stderr


def test_cli_invalid_scenario_exits_2(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("name: bad\ndescription: x\nseed: 1\n")

    result = harness("run", str(scenario))

    assert result.returncode == 2
    assert "missing required field" in result.stderr


def test_cli_unknown_flag_exits_2() -> None:
    result = harness("run", str(CI_CRASH), "--no-such-flag")

    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr


def test_cli_unknown_break_exits_2() -> None:
    result = harness("run", str(CI_CRASH), "--break", "nothing")

    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_cli_nonempty_report_dir_exits_2(tmp_path: Path) -> None:
    (tmp_path / "old.jsonl").write_text("{}\n")

    result = harness("run", str(CI_CRASH), "--report-dir", str(tmp_path))

    assert result.returncode == 2
    assert "not empty" in result.stderr


def test_crash_scenario_end_to_end(tmp_path: Path) -> None:
    report_dir = tmp_path / "report"

    result = harness("run", str(CI_CRASH), "--report-dir", str(report_dir))

    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "all invariants hold" in result.stdout
    assert "jobs done" in result.stderr  # live progress

    summary = json.loads((report_dir / "summary.json").read_text())
    assert summary["scenario"] == "ci-crash"
    assert summary["seed"] == 7
    assert summary["server"]["name"] in ("SecantusDB", "MongoDB")
    assert summary["server"]["version"]
    for name, verdict in summary["invariants"].items():
        assert verdict["ok"], (name, verdict["violations"][:3])
        assert verdict["checked"] >= 0
    assert {"no_lost_jobs", "single_commit", "lease_exclusive"} <= set(
        summary["invariants"]
    )
    stats = summary["stats"]
    assert stats["jobs"] == 60
    assert stats["completions"] + stats["jobs_by_state"].get("FAILED", 0) == 60
    assert stats["kills"] == 2
    assert stats["recoveries"] >= 1
    assert stats["duration_s"] > 0
    assert summary["coverage"]["ok"]
    assert summary["coverage"]["counts"]["recovery_after_kill"] >= 1

    for name in ("history.jsonl", "final.json", "schedule.json", "ci-crash.yaml"):
        assert (report_dir / name).exists(), name
    schedule = json.loads((report_dir / "schedule.json").read_text())
    assert [a["action"] for a in schedule["faults"]] == [
        "kill",
        "restart",
        "kill",
        "restart",
    ]
    # No worker of this run outlives the harness.
    assert pids_of_children_named(str(report_dir / "events")) == []


def test_break_no_recovery_is_detected(tmp_path: Path) -> None:
    # A short variant of ci-crash: with recovery off, the killed worker's
    # jobs stay RUNNING and the drain times out.
    scenario = tmp_path / "no-recovery.yaml"
    text = CI_CRASH.read_text()
    text = text.replace("name: ci-crash", "name: no-recovery")
    text = text.replace("duration: 16s", "duration: 8s")
    text = text.replace("drain_timeout: 25s", "drain_timeout: 4s")
    text = text.replace("jobs: 60", "jobs: 20")
    text = text.replace("at: [5s, 10s]", "at: [3s]")
    scenario.write_text(text)

    result = harness(
        "run", str(scenario), "--break", "no-recovery", "--report-dir",
        str(tmp_path / "report"), "--quiet",
    )  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert "VIOLATED" in result.stdout
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["break"] == "no-recovery"
    assert not summary["invariants"]["no_lost_jobs"]["ok"]
