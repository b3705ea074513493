"""Run every benchmark, print the tables and write docs/benchmarks.{md,json}.

Usage: `python -m bench [--quick] [--no-write]` from the repository root.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as `python bench/run.py`: make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import steps  # noqa: E402
from bench.machine import machine_facts  # noqa: E402
from bench.page import write_page  # noqa: E402
from bench.plan import FULL, QUICK  # noqa: E402
from bench.sections import all_sections  # noqa: E402
from bench.tables import plain_table  # noqa: E402

DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"


def _timed(name: str, call: Callable[[], Any], durations_s: dict[str, float]) -> Any:
    print(f"-- {name} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    value = call()
    durations_s[name] = round(time.monotonic() - started, 1)
    return value


def run(quick: bool) -> dict[str, Any]:
    """Run the seven steps in order and return every number as one dict."""
    plan = QUICK if quick else FULL
    durations_s: dict[str, float] = {}
    results: dict[str, Any] = {"mode": "quick" if quick else "full"}
    results["machine"] = _timed("machine", machine_facts, durations_s)
    results["cycle"] = _timed("cycle", lambda: steps.step_cycle(plan), durations_s)
    results["throughput"] = _timed(
        "throughput", lambda: steps.step_throughput(plan), durations_s
    )
    results["rq"] = _timed(
        "rq", lambda: steps.step_rq(plan, results["throughput"]), durations_s
    )
    results["recovery"] = _timed(
        "recovery", lambda: steps.step_recovery(plan), durations_s
    )
    results["latency"] = _timed(
        "latency", lambda: steps.step_latency(plan), durations_s
    )
    results["checkers"] = _timed(
        "checkers", lambda: steps.step_checkers(plan), durations_s
    )
    results["memory"] = _timed("memory", lambda: steps.step_memory(plan), durations_s)
    results["step_durations_s"] = durations_s
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmarks of AegisQueue."
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes; about 2 minutes"
    )
    parser.add_argument(
        "--no-write",
        action="store_true",
        help="print the tables only; leave docs/benchmarks.* unchanged",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )

    started = time.monotonic()
    results = run(args.quick)
    results["total_s"] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)

    machine = results["machine"]
    print(
        f"{machine['date']}: {machine['cores']} cores, {machine['cpu_model']}, "
        f"Python {machine['python']}, {machine['server']}"
    )
    for section in all_sections(results):
        print()
        print(plain_table(section))
    print(f"\nTotal {results['total_s']} s ({results['mode']} run).")

    if not args.no_write:
        json_path = DOCS_DIR / "benchmarks.json"
        json_path.write_text(json.dumps(results, indent=2) + "\n")
        write_page(DOCS_DIR / "benchmarks.md", results)
        print(f"Wrote {json_path} and {DOCS_DIR / 'benchmarks.md'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
