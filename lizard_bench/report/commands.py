"""The ``report`` and ``compare`` subcommands, added to ``lizard-bench``'s parser by :func:`add_subcommands`.

Handlers return the exit status: ``compare`` exits 1 when anything regressed, so a CI step
fails on it. Bad input raises :class:`~lizard_bench.report.runs.ReportError` (a ValueError),
which the CLI prints as one line with exit status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_subcommands(commands: argparse._SubParsersAction) -> None:
    """Add ``report`` and ``compare`` to the subparsers of ``lizard_bench.cli.build_parser()``."""
    report = commands.add_parser(
        "report", help="tables (Markdown, CSV, LaTeX), figures (PNG, SVG) and an HTML leaderboard from run dirs")
    report.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="results/<run-id>/ (one or more)")
    report.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write the reports into")
    report.add_argument("--note", help="a line shown at the top of the leaderboard (e.g. what the runs are)")
    report.set_defaults(handler=_report)

    compare = commands.add_parser(
        "compare", help="compare a run against a baseline run; exit 1 if any metric regressed (past its tolerance and "
             "significant)")
    compare.add_argument("baseline", type=Path, metavar="BASELINE", help="the reference run directory")
    compare.add_argument("current", type=Path, metavar="CURRENT", help="the run directory to check")
    compare.add_argument("--tolerances", type=Path, metavar="YAML",
                         help="per-kind and per-metric tolerances (default: built-in, see README)")
    compare.add_argument("--summary", type=Path, metavar="PATH",
                         help="also write a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")
    compare.add_argument("--shared-only", action="store_true",
                         help="compare only the metrics both runs have (a rerun of some variants or tasks) instead "
                              "of failing on the ones the current run lacks")
    compare.set_defaults(handler=_compare)


def _report(args: argparse.Namespace) -> int:
    from lizard_bench.report.build import write_reports

    written = write_reports(args.run_dirs, args.out, note=args.note)
    tables = sorted({key.split(":")[1] for key in written if key.startswith("table:")})
    figures = sorted({key.split(":")[1] for key in written if key.startswith("figure:")})
    print(f"tables ({', '.join(tables) or 'none'}) in {args.out / 'tables'}")
    print(f"figures ({', '.join(figures) or 'none'}) in {args.out / 'figures'}")
    print(f"report: {written['report']}")
    print(f"leaderboard: {written['leaderboard']}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from lizard_bench.report.compare import compare_runs
    from lizard_bench.report.tolerances import load_tolerances

    tolerances = load_tolerances(args.tolerances)
    comparison = compare_runs(args.baseline, args.current, tolerances, shared_only=args.shared_only)
    print(comparison.text_table())
    print()
    print(comparison.headline())
    if args.summary is not None:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(comparison.markdown(), encoding="utf-8")
        print(f"summary: {args.summary}")
    return 1 if comparison.failed else 0
