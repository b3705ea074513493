"""Write docs/benchmarks.md from the results of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.sections import all_sections
from bench.tables import markdown_table

# Allowance for the claim and the polls around it in the recovery bound.
RECOVERY_SLACK_S = 0.5

INTRO = """\
# Benchmarks

Measured by `python -m bench` (`--quick` runs smaller sizes, `--no-write`
leaves this page alone). The script starts its own database servers on
127.0.0.1, prints the tables below and rewrites this page and the raw
numbers in [benchmarks.json](benchmarks.json). RQ and the Redis client come
from `pip install -e '.[bench]'`, `redis-server` from Debian's
`redis-server` package. The benchmarks are not run in CI.
"""

METHOD = """\
## How each step is measured

Every measurement group starts a fresh database server and stops it
afterwards. SecantusDB slows down as its process ages and as documents pile
up, so a shared server would make later steps look slower than earlier ones.

1. **Cycle.** One process enqueues the jobs, then claims and completes them
   one at a time until the queue is empty. One variant goes through
   `aegis.queue.Queue` (`claim` + `complete`). The other sends raw driver
   calls (`find_one_and_update` + `update_one`) with the same filter, sort,
   update pipeline and write concern. The variants alternate round by round on one server, and
   every round starts from an empty collection.
2. **Throughput.** The queue is filled with no-op jobs, then N
   `python -m aegis worker --concurrency 1` processes start. Wall time runs
   from spawning the workers until a poll (every 0.1 s) counts every job
   SUCCESS, so it includes start-up. The steady rate uses the database's own
   timestamps, from the first `claimed_at` to the last `finished_at`.
3. **RQ.** The same number of no-op jobs on RQ with `SimpleWorker`
   processes in burst mode, each job run inside the worker process as aegis
   does. Wall time runs from spawning the workers until RQ's finished-job
   registry contains every job. The steady rate runs from the first job's
   `started_at` to the last job's `ended_at`.
4. **Recovery.** A victim worker claims a `sleep` job of 600 s, then a
   survivor worker starts. After a random delay of up to one heartbeat
   interval plus up to one recovery sweep interval, so that the kill falls
   at a random point of both cycles, the victim gets SIGKILL. The recovery time runs from the kill
   to the survivor's claim of that job (its `claimed_at`). Both timestamps
   come from this machine's clock, because the server runs on the same host.
   The poll interval is the default 1 s.
5. **Claim latency.** N jobs are queued. Each timed claim is followed by an
   untimed complete and an untimed enqueue, so the depth is N at every
   claim.
6. **Checkers.** A seeded synthetic history of a legal run in the format
   that `harness.recording` writes: enqueue, claim, execute, renew on 20% of
   jobs, a failed attempt and a retry on 10%, complete. Only the checker
   call is timed.
7. **Memory.** VmHWM from `/proc/PID/status` of one worker process: idle
   on an empty queue, after running no-op jobs, and after running sleep jobs
   with concurrency 8.
"""


def _machine(results: dict[str, Any]) -> str:
    machine = results["machine"]
    rq = results["rq"]
    rows = [
        ("Date", machine["date"]),
        ("Run", f"{results['mode']}, {results['total_s']} s in total"),
        ("CPU", f"{machine['cpu_model']}, {machine['cores']} cores (os.cpu_count())"),
        ("OS", machine["platform"]),
        (
            "1-minute load average",
            f"{machine['load_average_1min_at_start']} at start, "
            f"{machine['load_average_1min_at_end']} at end",
        ),
        ("Python", machine["python"]),
        ("aegis database", machine["server"]),
    ]
    if "skipped" not in rq:
        rows.append(("RQ", f"rq {rq['rq_version']}, Redis {rq['redis_version']}"))
    lines = ["## Machine and software", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def _durability(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        "## Stores and their durability",
        "",
        f"- **aegis** stores jobs in {machine['server']}, which speaks the "
        "MongoDB wire protocol and keeps its data in WiredTiger, as a one-node "
        "replica set. Every write requests write concern `w: majority, j: true` "
        "(on mongod: acknowledged once the journal is written), and reads that feed "
        "decisions use read concern `majority`.",
    ]
    rq = results["rq"]
    if "skipped" in rq:
        lines.append(f"- **RQ** was not measured: {rq['skipped']}.")
    else:
        persistence = rq["persistence"]
        lines.append(
            f"- **RQ** stores jobs in Redis {rq['redis_version']}, started with "
            "no configuration file, so persistence is Redis's default: RDB "
            f"snapshots (`save {persistence.get('save', '?')}`) and "
            f"`appendonly {persistence.get('appendonly', '?')}`. A job "
            "acknowledged after the last snapshot is lost if Redis crashes. "
            "Each aegis state change instead waits for a journal write."
        )
    return "\n".join(lines)


def _findings(results: dict[str, Any]) -> str:
    lines = ["## What the numbers show", ""]
    cycle = results["cycle"]
    if cycle["meets_target"]:
        lines.append(
            f"- The queue reaches {cycle['ratio']:.2f} of the raw driver rate "
            f"(target {cycle['target_ratio']:.2f}). The gap is the queue's "
            "Python code plus its `complete`, a find-and-modify that returns "
            "the whole job, where the raw loop sends `update_one`."
        )
    else:
        lines.append(
            f"- The queue reaches {cycle['ratio']:.2f} of the raw driver rate, "
            f"below the target of {cycle['target_ratio']:.2f}. The gap is the "
            "queue's Python code plus its `complete`, a find-and-modify that "
            "returns the whole job, where the raw loop sends `update_one`."
        )

    latency = results["latency"]
    if len(latency) >= 2:
        first, last = latency[0], latency[-1]
        lines.append(
            f"- On this server a claim's p50 grows from {first['p50_ms']} ms at "
            f"{first['depth']} queued jobs to {last['p50_ms']} ms at "
            f"{last['depth']}. On a real mongod the compound index `claim_order` "
            "serves the claim, so its cost is expected to depend little on "
            "depth (not measured here). The stand-in's find-and-modify cost grows with "
            "the number of matching documents, so every rate on this page is "
            "bounded by that server, not by the queue."
        )

    throughput = results["throughput"]
    if len(throughput) >= 2:
        one, many = throughput[0], throughput[-1]
        lines.append(
            f"- With {many['workers']} workers the rate is {many['jobs_per_s']} "
            f"jobs/s against {one['jobs_per_s']} with {one['workers']}: more "
            "clients slow this server down instead of adding throughput, and "
            f"the machine has {results['machine']['cores']} cores for the "
            "server, the workers and the benchmark together."
        )

    rq = results["rq"]
    if "skipped" not in rq and rq["rows"]:
        row = rq["rows"][0]
        lines.append(
            f"- With {row['workers']} worker RQ runs {row['jobs_per_s']} jobs/s "
            f"(aegis/RQ = {row.get('aegis_to_rq', '-')}). Redis keeps jobs in "
            "memory and acknowledges without a disk write, while each aegis "
            "job costs two journaled round trips to the stand-in server."
        )

    lines.append(_recovery_finding(results["recovery"]))
    lines.append(
        "- The machine was not idle during the run (see the load average "
        "above). Compare ratios taken within one run rather than rates from "
        "different runs."
    )
    return "\n".join(lines)


def _recovery_finding(rows: list[dict[str, Any]]) -> str:
    """State how the recovery trials compare with their expected bounds.

    A job comes back after the rest of its lease, which is between TTL minus
    one heartbeat interval and the full TTL, plus the wait for the next
    recovery sweep. Workers time a sweep to just after the earliest lease
    expiry, so that wait is short; 1.2 sweep intervals (the jitter) bound it.
    """
    over = [
        row
        for row in rows
        if row["max_s"]
        > row["lease_ttl_s"] + 1.2 * row["recovery_interval_s"] + RECOVERY_SLACK_S
    ]
    text = (
        "- Recovery takes the rest of the dead worker's lease (between TTL "
        "minus one heartbeat interval and the full TTL) plus the wait for the "
        "next recovery sweep plus one claim. Workers time a sweep to just after "
        "the earliest lease expiry, so a longer sweep interval need not add to "
        "the time (compare the rows with a 1 s and a 5 s sweep). At most the "
        "wait is 1.2 sweep intervals (the jitter). "
    )
    if not over:
        return text + (
            "Every trial stayed within TTL + 1.2 × sweep interval + "
            f"{RECOVERY_SLACK_S:g} s."
        )
    settings = ", ".join(
        f"TTL {row['lease_ttl_s']:g} s / heartbeat {row['heartbeat_interval_s']:g} s"
        f" / sweep {row['recovery_interval_s']:g} s (max {row['max_s']} s)"
        for row in over
    )
    return text + (
        f"These settings exceeded TTL + 1.2 × sweep interval + "
        f"{RECOVERY_SLACK_S:g} s: {settings}."
    )


def render_page(results: dict[str, Any]) -> str:
    parts = [INTRO, _machine(results), _durability(results), "## Results"]
    for section in all_sections(results):
        parts.append(f"### {section.title}")
        table = markdown_table(section)
        if table:
            parts.append(table)
        if section.notes:
            parts.append("\n".join(section.notes))
    parts += [_findings(results), METHOD]
    return "\n\n".join(part.rstrip("\n") for part in parts) + "\n"


def write_page(path: Path, results: dict[str, Any]) -> None:
    path.write_text(render_page(results))
