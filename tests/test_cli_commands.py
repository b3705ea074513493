"""The `aegis` commands run through `aegis.cli.main` against a live database."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from aegis.cli import main
from aegis.devdb import free_port, uri_for_port
from aegis.handlers import import_handler_modules, registry
from aegis.models import ErrorInfo
from aegis.queue import Queue
from aegis.settings import QueueSettings
from aegis.store import Store
from aegis.workers import WorkerRegistry


@pytest.fixture
def db_flags(mongo_uri: str, db_name: str, store: Store) -> list[str]:
    """Flags pointing the CLI at this test's database (created by `store`)."""
    return ["--mongodb-uri", mongo_uri, "--db", db_name]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--log-level", "WARNING", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_enqueue_then_jobs_lists_it(
    capsys: pytest.CaptureFixture[str], db_flags: list[str]
) -> None:
    code, out, _ = run(capsys, "enqueue", "echo", "--payload", '{"a": 1}', *db_flags)
    job_id = out.strip()

    list_code, table, _ = run(capsys, "jobs", *db_flags)

    assert code == 0
    assert list_code == 0
    assert table.splitlines()[0].split() == [
        "ID", "STATUS", "QUEUE", "TYPE", "PRIORITY", "ATTEMPTS", "CREATED",
    ]  # fmt: skip
    assert job_id in table
    assert "QUEUED" in table


def test_jobs_json_filters_and_cursor(
    capsys: pytest.CaptureFixture[str], db_flags: list[str], queue: Queue
) -> None:
    for _ in range(3):
        queue.enqueue("echo", queue="a")
    queue.enqueue("sleep", queue="b")

    _, out, _ = run(capsys, "jobs", "--json", "--queue", "a", "--limit", "2", *db_flags)
    first = json.loads(out)
    _, out, _ = run(
        capsys, "jobs", "--json", "--queue", "a", "--cursor",
        str(first["nextCursor"]), *db_flags,
    )  # fmt: skip
    second = json.loads(out)
    _, out, _ = run(capsys, "jobs", "--json", "--job-type", "sleep", *db_flags)
    by_type = json.loads(out)

    assert len(first["jobs"]) == 2
    assert len(second["jobs"]) == 1
    assert second["nextCursor"] is None
    assert {job["queue"] for job in first["jobs"] + second["jobs"]} == {"a"}
    assert [job["jobType"] for job in by_type["jobs"]] == ["sleep"]


def test_jobs_status_filter(
    capsys: pytest.CaptureFixture[str], db_flags: list[str], queue: Queue
) -> None:
    cancelled = queue.enqueue("echo")
    queue.enqueue("echo")
    queue.cancel(cancelled.job_id)

    _, out, _ = run(capsys, "jobs", "--json", "--status", "CANCELLED", *db_flags)

    assert [job["jobId"] for job in json.loads(out)["jobs"]] == [cancelled.job_id]


def test_jobs_limit_out_of_range(
    capsys: pytest.CaptureFixture[str], db_flags: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["jobs", "--limit", "501", *db_flags])

    assert exit_info.value.code == 2
    assert "expected 1 to 500" in capsys.readouterr().err


def test_jobs_show_prints_job(
    capsys: pytest.CaptureFixture[str], db_flags: list[str], queue: Queue
) -> None:
    job = queue.enqueue("echo", {"k": "v"})

    code, out, _ = run(capsys, "jobs", *db_flags, "show", job.job_id)

    assert code == 0
    shown = json.loads(out)
    assert shown["jobId"] == job.job_id
    assert shown["payload"] == {"k": "v"}
    assert shown["errors"] == []


def test_jobs_show_flags_after_id(
    capsys: pytest.CaptureFixture[str], db_flags: list[str], queue: Queue
) -> None:
    job = queue.enqueue("echo")

    code, out, _ = run(capsys, "jobs", "show", job.job_id, *db_flags)

    assert code == 0
    assert json.loads(out)["jobId"] == job.job_id


def test_jobs_show_unknown_and_malformed(
    capsys: pytest.CaptureFixture[str], db_flags: list[str]
) -> None:
    unknown = run(capsys, "jobs", "show", "0123456789abcdef01234567", *db_flags)
    malformed = run(capsys, "jobs", "show", "nope", *db_flags)

    assert unknown[0] == 1
    assert "not found" in unknown[2]
    assert malformed[0] == 2
    assert "invalid job id" in malformed[2]


def test_cancel_command(
    capsys: pytest.CaptureFixture[str], db_flags: list[str], queue: Queue
) -> None:
    job = queue.enqueue("echo")

    code, out, _ = run(capsys, "cancel", job.job_id, *db_flags)
    again, _, err = run(capsys, "cancel", job.job_id, *db_flags)

    assert code == 0
    assert out.strip() == f"job {job.job_id}: CANCELLED"
    assert again == 1
    assert "already CANCELLED" in err


def test_retry_command(
    capsys: pytest.CaptureFixture[str], db_flags: list[str], queue: Queue
) -> None:
    job = queue.enqueue("echo")
    claimed = queue.claim("w1", ["default"])
    assert claimed is not None
    queue.fail(job.job_id, claimed.token, ErrorInfo("E", "m"), retryable=False)

    code, out, _ = run(capsys, "retry", job.job_id, *db_flags)
    again, _, err = run(capsys, "retry", job.job_id, *db_flags)

    assert code == 0
    assert out.strip() == f"job {job.job_id}: QUEUED"
    assert again == 1
    assert "only FAILED jobs" in err


def test_requeue_stuck_command(
    capsys: pytest.CaptureFixture[str], db_flags: list[str], store: Store
) -> None:
    short = Queue(store, QueueSettings(lease_ttl_s=0.2, heartbeat_interval_s=0.1))
    job = short.enqueue("echo", max_retries=2)
    assert short.claim("w1", ["default"]) is not None
    time.sleep(0.4)

    code, out, _ = run(capsys, "requeue-stuck", "--json", *db_flags)

    assert code == 0
    assert json.loads(out) == {
        "requeued": 1, "failed": 0, "cancelled": 0,
        "requeuedIds": [job.job_id], "failedIds": [], "cancelledIds": [],
    }  # fmt: skip


def test_stats_command(
    capsys: pytest.CaptureFixture[str], db_flags: list[str], queue: Queue
) -> None:
    queue.enqueue("echo", queue="mail")
    queue.enqueue("echo", queue="mail")

    code, table, _ = run(capsys, "stats", *db_flags)
    _, out, _ = run(capsys, "stats", "--json", *db_flags)

    assert code == 0
    assert table.splitlines()[0].split()[:3] == ["QUEUE", "QUEUED", "RUNNING"]
    assert table.splitlines()[1].split()[:2] == ["mail", "2"]
    assert "oldest queued job:" in table
    assert json.loads(out)["byQueue"] == {"mail": {"QUEUED": 2}}


def test_workers_command(
    capsys: pytest.CaptureFixture[str], db_flags: list[str], store: Store
) -> None:
    WorkerRegistry(store).register("cli-worker", ["default"], 1)

    code, table, _ = run(capsys, "workers", *db_flags)
    _, out, _ = run(capsys, "workers", "--json", "--dead-after", "60", *db_flags)

    assert code == 0
    assert "cli-worker" in table
    assert "ALIVE" in table
    workers = json.loads(out)
    assert workers[0]["workerId"] == "cli-worker"
    assert workers[0]["status"] == "ALIVE"


def test_flags_override_environment(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    db_flags: list[str],
    queue: Queue,
) -> None:
    job = queue.enqueue("echo")
    monkeypatch.setenv("AEGIS_DB", "aegis_not_this_one")
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1/?directConnection=true")

    code, out, _ = run(capsys, "jobs", "--json", *db_flags)

    assert code == 0
    assert [j["jobId"] for j in json.loads(out)["jobs"]] == [job.job_id]


def test_invalid_payload_flag(
    capsys: pytest.CaptureFixture[str], db_flags: list[str]
) -> None:
    code, _, err = run(capsys, "enqueue", "echo", "--payload", "[1]", *db_flags)

    assert code == 2
    assert "expected a JSON object" in err


def test_database_down_exit_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEGIS_SERVER_SELECTION_TIMEOUT_S", "0.3")

    code, _, err = run(capsys, "stats", "--mongodb-uri", uri_for_port(free_port()))

    assert code == 1
    assert "no MongoDB server responded" in err


def test_help_names_units(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["worker", "--help"])
    worker_help = " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    serve_help = " ".join(capsys.readouterr().out.split())

    assert "lease length in seconds" in worker_help
    assert "TCP port" in worker_help
    assert "--metrics-port" in worker_help
    assert "TCP port" in serve_help
    assert "--host" in serve_help


def test_log_level_after_command_is_accepted(
    capsys: pytest.CaptureFixture[str], db_flags: list[str]
) -> None:
    code = main(["stats", "--log-level", "ERROR", *db_flags])

    assert code == 0
    assert "QUEUE" in capsys.readouterr().out


def test_worker_imports_handler_module_from_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "cwdapp"
    package.mkdir()
    (package / "handlers_here.py").write_text(
        "from aegis import handler\n\n"
        "@handler('cwd_probe')\n"
        "def probe(ctx):\n"
        "    return 1\n"
    )
    monkeypatch.chdir(package)
    monkeypatch.setattr(
        "sys.path", [p for p in __import__("sys").path if p != str(package)]
    )

    import_handler_modules(["handlers_here"])

    assert "cwd_probe" in registry
