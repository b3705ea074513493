"""Turn the results of a run into the tables the terminal and the page show."""

from __future__ import annotations

from typing import Any

from bench.tables import Section


def cycle_section(cycle: dict[str, Any]) -> Section:
    verdict = "meets" if cycle["meets_target"] else "misses"
    notes = [
        f"Ratio {cycle['ratio']:.2f} {verdict} the target of "
        f"{cycle['target_ratio']:.2f} (queue rate / raw driver rate)."
    ]
    explain = cycle.get("explain")
    if explain is None:
        notes.append("Query plan: not shown, because the server is not mongod.")
    else:
        notes.append(
            f"Query plan on mongod: stages {' > '.join(explain['stages'])}; "
            f"claim index used: {explain['uses_claim_index']}; "
            f"in-memory sort: {explain['in_memory_sort']}."
        )
    return Section(
        "1. Claim + complete cycle, queue code vs raw driver calls",
        ["jobs queued", "rounds each", "queue cycles/s", "raw cycles/s", "ratio"],
        [
            [
                cycle["jobs"],
                cycle["rounds"],
                round(cycle["queue_cycles_per_s"], 1),
                round(cycle["raw_cycles_per_s"], 1),
                cycle["ratio"],
            ]
        ],
        notes,
    )


def throughput_section(rows: list[dict[str, Any]]) -> Section:
    return Section(
        "2. aegis end-to-end no-op throughput",
        ["workers", "jobs", "wall s", "jobs/s (wall)", "jobs/s (first claim to last)"],
        [
            [
                r["workers"],
                r["jobs"],
                r["wall_s"],
                r["jobs_per_s"],
                r["steady_jobs_per_s"],
            ]
            for r in rows
        ],
    )


def rq_section(rq: dict[str, Any]) -> Section:
    if "skipped" in rq:
        return Section(
            "3. RQ on Redis, same workload", [], [], [f"Skipped: {rq['skipped']}"]
        )
    rows = [
        [
            r["workers"],
            r["jobs"],
            r["wall_s"],
            r["jobs_per_s"],
            r["steady_jobs_per_s"],
            r.get("aegis_to_rq", "-"),
            r.get("aegis_to_rq_steady", "-"),
        ]
        for r in rq["rows"]
    ]
    persistence = ", ".join(f"{k} '{v}'" for k, v in rq["persistence"].items())
    return Section(
        f"3. RQ {rq['rq_version']} ({rq['worker_class']}) on Redis "
        f"{rq['redis_version']}, same workload",
        [
            "workers",
            "jobs",
            "wall s",
            "jobs/s (wall)",
            "jobs/s (first start to last end)",
            "aegis/RQ (wall)",
            "aegis/RQ (steady)",
        ],
        rows,
        [f"Redis persistence as started: {persistence}."],
    )


def recovery_section(rows: list[dict[str, Any]]) -> Section:
    return Section(
        "4. Recovery after SIGKILL mid-job (kill to next claim)",
        [
            "lease TTL s",
            "heartbeat s",
            "recovery sweep s",
            "trials s",
            "median s",
            "max s",
        ],
        [
            [
                r["lease_ttl_s"],
                r["heartbeat_interval_s"],
                r["recovery_interval_s"],
                ", ".join(f"{t:.2f}" for t in r["trials_s"]),
                r["median_s"],
                r["max_s"],
            ]
            for r in rows
        ],
    )


def latency_section(rows: list[dict[str, Any]]) -> Section:
    return Section(
        "5. Claim latency vs queue depth",
        ["jobs queued", "claims timed", "p50 ms", "p95 ms"],
        [[r["depth"], r["samples"], r["p50_ms"], r["p95_ms"]] for r in rows],
    )


def checkers_section(checkers: dict[str, Any]) -> Section:
    title = "6. Checker time vs history size"
    if "skipped" in checkers:
        return Section(title, [], [], [f"Skipped: {checkers['skipped']}"])
    notes = [f"Entry point: {checkers['entry_point']}."]
    for r in checkers["rows"]:
        if r["failed_checkers"]:
            notes.append(
                f"{r['events']} events: checkers that rejected the legal synthetic "
                f"history: {', '.join(r['failed_checkers'])}."
            )
    return Section(
        title,
        ["events", "jobs", "seconds", "checkers failed"],
        [
            [r["events"], r["jobs"], r["seconds"], len(r["failed_checkers"])]
            for r in checkers["rows"]
        ],
        notes,
    )


def memory_section(rows: list[dict[str, Any]]) -> Section:
    return Section(
        "7. Worker peak RSS (VmHWM)",
        ["workload", "concurrency", "peak RSS MiB"],
        [[r["workload"], r["concurrency"], r["peak_rss_mib"]] for r in rows],
    )


def all_sections(results: dict[str, Any]) -> list[Section]:
    return [
        cycle_section(results["cycle"]),
        throughput_section(results["throughput"]),
        rq_section(results["rq"]),
        recovery_section(results["recovery"]),
        latency_section(results["latency"]),
        checkers_section(results["checkers"]),
        memory_section(results["memory"]),
    ]
