"""The harness command line: `python -m harness run SCENARIO`, `list` and `compare`.

Exit codes of `run`: 0 when every invariant holds, 1 when any is violated,
2 on invalid input (a scenario error, an unknown flag or break), 3 when the
run itself failed (the database did not start, a worker could not run).
`compare` exits 0 after printing, or 2 when a folder is not a run folder.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from harness.breaks import BREAKS, CATALOGUE
from harness.compare import COMPARE_PLOT, draw_throughput_comparison, render_comparison
from harness.report import RunFolderError, read_run_folder, render_stats, render_table
from harness.runner import RunOptions, run
from harness.scenario import ScenarioError, load_scenario

log = logging.getLogger("harness.cli")

EXIT_OK = 0
EXIT_VIOLATED = 1
EXIT_INVALID = 2
EXIT_RUN_FAILED = 3
DEFAULT_SCENARIOS_DIR = Path("scenarios")


class _Parser(argparse.ArgumentParser):
    """An argument parser that exits with code 2 and a one-line hint."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_INVALID)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m harness",
        description="Run chaos scenarios against AegisQueue and check its invariants.",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="DEBUG, INFO, WARNING or ERROR (default WARNING)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run_parser = commands.add_parser(
        "run",
        help="run one scenario and check it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="breaks (--break NAME), each with the short scenario that shows it:\n"
        + "\n".join(
            f"  {entry.name:<14} {entry.summary}\n  {'':<14} ({entry.scenario})"
            for entry in CATALOGUE
        ),
    )
    run_parser.add_argument("scenario", type=Path, help="scenario YAML file")
    run_parser.add_argument(
        "--seed",
        type=int,
        help="seed for the workload and faults (default: the scenario's)",
    )
    run_parser.add_argument(
        "--mongodb-uri",
        help="use this MongoDB server as is (default: $MONGODB_URI, else a fresh embedded server); "
        "database restart faults need the embedded server",
    )
    run_parser.add_argument(
        "--report-dir",
        type=Path,
        help="report folder (default: reports/<scenario>-<UTC time>)",
    )
    run_parser.add_argument(
        "--break", dest="break_name", choices=sorted(BREAKS), metavar="NAME",
        help="put a deliberate defect into the workers (see the list below)",
    )  # fmt: skip
    run_parser.add_argument(
        "--quiet", action="store_true", help="print no progress lines while running"
    )

    list_parser = commands.add_parser(
        "list", help="list scenarios with their description"
    )
    list_parser.add_argument(
        "directory", nargs="?", type=Path, default=DEFAULT_SCENARIOS_DIR,
        help="folder of scenario files (default: scenarios)",
    )  # fmt: skip

    compare_parser = commands.add_parser(
        "compare", help="compare two run report folders"
    )
    compare_parser.add_argument(
        "run_a", type=Path, help="first run's report folder (A)"
    )
    compare_parser.add_argument(
        "run_b", type=Path, help="second run's report folder (B)"
    )
    compare_parser.add_argument(
        "--out", type=Path, default=Path("."),
        help=f"folder for {COMPARE_PLOT} (default: the current folder)",
    )  # fmt: skip
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    report_dir: Path | None = args.report_dir
    if report_dir is not None and report_dir.exists() and any(report_dir.iterdir()):
        # Old history files in the folder would be merged into this run's.
        print(
            f"invalid --report-dir {report_dir}: the folder is not empty; "
            "choose a new or empty folder",
            file=sys.stderr,
        )
        return EXIT_INVALID
    uri = args.mongodb_uri or os.environ.get("MONGODB_URI") or None
    options = RunOptions(
        scenario_path=args.scenario,
        seed=args.seed,
        mongodb_uri=uri,
        report_dir=args.report_dir,
        break_name=args.break_name,
        progress=None if args.quiet else sys.stderr,
    )
    result = run(options)
    print(render_table(result.verdicts))
    print()
    print(render_stats(result.summary["stats"]))
    for message in result.summary["coverage"]["missing"]:
        print(f"coverage: {message}")
    print(f"\nreport: {result.report_dir}")
    if not result.invariants_hold:
        print("invariants VIOLATED")
        return EXIT_VIOLATED
    if not result.ok:
        print("all invariants hold, but the run missed events the scenario expects")
        return EXIT_VIOLATED
    print("all invariants hold")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    paths = sorted(Path(args.directory).glob("*.yaml"))
    if not paths:
        print(f"no scenario files (*.yaml) in {args.directory}", file=sys.stderr)
        return EXIT_INVALID
    status = EXIT_OK
    width = max(len(path.name) for path in paths)
    for path in paths:
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            print(f"{path.name:<{width}}  INVALID: {exc.problems[0]}")
            status = EXIT_INVALID
            continue
        print(f"{path.name:<{width}}  {scenario.description}")
    return status


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        run_a = read_run_folder(args.run_a)
        run_b = read_run_folder(args.run_b)
    except RunFolderError as exc:
        print(f"invalid run folder: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(render_comparison(run_a, run_b))
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_path = out_dir / COMPARE_PLOT
    try:
        draw_throughput_comparison(run_a, run_b, plot_path)
    except Exception:
        # The printed tables are the result, so a failed plot does not fail the command.
        log.exception("drawing %s failed", plot_path)
        print("\nthroughput plot failed; see the log above")
        return EXIT_OK
    print(f"\nthroughput plot: {plot_path}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "list":
            return cmd_list(args)
        if args.command == "compare":
            return cmd_compare(args)
        return cmd_run(args)
    except ScenarioError as exc:
        print(f"invalid scenario:\n{exc}", file=sys.stderr)
        return EXIT_INVALID
    except ValidationError as exc:
        print(f"invalid settings: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("interrupted; every child process was stopped", file=sys.stderr)
        return 130
    except Exception as exc:
        log.exception("the run failed")
        print(f"run failed: {exc}", file=sys.stderr)
        return EXIT_RUN_FAILED
