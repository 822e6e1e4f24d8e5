"""One call from run directories to everything publishable: tables, figures, a Markdown report, the leaderboard.

Output layout under ``out_dir``::

    report.md              every table and figure in one Markdown page
    leaderboard.html       the self-contained HTML page
    records.csv            every record, one row each, with provenance (for your own analysis)
    tables/<name>.{md,csv,tex}   main, linearization, all_metrics, efficiency, long_context, paper_vs_run
    figures/<name>.{png,svg}     task_scores, throughput, memory, heatmap_<task>, training_loss

Tables and figures without data in the runs are skipped, not written empty. Everything is
written into a hidden staging folder first and then moved into place file by file, so a
report killed half-way leaves the previous files whole, never a truncated one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from lizard_bench.report.leaderboard import FIGURE_CAPTIONS, write_leaderboard
from lizard_bench.report.loading import records_frame, training_frame, training_summaries
from lizard_bench.report.paper import paper_vs_run_table
from lizard_bench.report.plots import write_plots
from lizard_bench.report.runs import read_runs, smoke_runs_note
from lizard_bench.report.tables import (
    Table,
    all_metrics_table,
    efficiency_table,
    linearization_table,
    long_context_table,
    main_table,
    to_markdown,
    write_table,
)
from lizard_bench.results.store import check_writable_folder


def build_tables(frame: pd.DataFrame, summaries: pd.DataFrame | None = None) -> list[Table]:
    summaries = summaries if summaries is not None else pd.DataFrame(columns=["model", "variant"])
    built = [main_table(frame), linearization_table(frame, summaries), paper_vs_run_table(frame),
             efficiency_table(frame), long_context_table(frame), all_metrics_table(frame)]
    return [table for table in built if table is not None]


def write_reports(run_dirs: list[Path], out_dir: Path, note: str | None = None) -> dict[str, Path]:
    """Write every report for ``run_dirs`` under ``out_dir``; returns a name -> path map of what was written.

    Names: ``report``, ``leaderboard``, ``records``, ``table:<name>:<md|csv|tex>``, ``figure:<name>:<png|svg>``.
    ``note`` is shown at the top of the leaderboard (e.g. to label example data).
    Raises :class:`~lizard_bench.report.runs.ReportError` for a path that is not a run with records.
    """
    out_dir = Path(out_dir)
    check_writable_folder(out_dir, "report folder")
    runs = read_runs(list(run_dirs))
    frame = records_frame(runs)
    training = training_frame(runs, frame)
    out_dir.mkdir(parents=True, exist_ok=True)
    for leftover in out_dir.glob(f"{STAGING_PREFIX}*"):  # from a report that was killed while writing
        shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
    try:
        written = _write_all(runs, frame, training, staging, note)
        for key, path in written.items():  # each file replaced whole: a reader never sees half of one
            target = out_dir / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            written[key] = target
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


STAGING_PREFIX = ".report-staging-"


def _write_all(runs, frame: pd.DataFrame, training: pd.DataFrame, out_dir: Path, note: str | None
               ) -> dict[str, Path]:
    written: dict[str, Path] = {}
    tables = build_tables(frame, training_summaries(runs, frame))
    for table in tables:
        for fmt, path in write_table(table, out_dir / "tables").items():
            written[f"table:{table.name}:{fmt}"] = path
    figures = write_plots(frame, training, out_dir / "figures")
    for name, paths in figures.items():
        for fmt, path in paths.items():
            written[f"figure:{name}:{fmt}"] = path

    written["records"] = out_dir / "records.csv"
    flat = frame.drop(columns=["details", "interval", "items"]).assign(
        versions=frame["versions"].map(_versions_text),
        ci_low=frame["interval"].map(lambda interval: interval[0] if interval else None),
        ci_high=frame["interval"].map(lambda interval: interval[1] if interval else None))
    flat.to_csv(written["records"], index=False)
    written["report"] = out_dir / "report.md"
    written["report"].write_text(_markdown_report(runs, tables, figures, out_dir), encoding="utf-8")
    written["leaderboard"] = write_leaderboard(out_dir / "leaderboard.html", runs, frame, tables, figures, note)
    return written


def _markdown_report(runs, tables: list[Table], figures: dict[str, dict[str, Path]], out_dir: Path) -> str:
    smoke = smoke_runs_note(runs)
    lines = ["# lizard-bench report" + (" (smoke run)" if smoke else ""), "",
             "Runs: " + ", ".join(f"`{run.run_id}` ({run.path})" for run in runs), "",
             *([f"**{smoke}**", ""] if smoke else [])]
    for table in tables:
        lines += [f"## {table.title}", "", to_markdown(table), ""]
    if figures:
        lines += ["## Figures", ""]
        for name, paths in figures.items():
            caption = FIGURE_CAPTIONS.get(name, name)
            lines += [f"![{caption}]({paths['png'].relative_to(out_dir).as_posix()})", "", f"*{caption}*", ""]
    return "\n".join(lines)


def _versions_text(versions) -> str:
    if isinstance(versions, dict):
        return "; ".join(f"{name}={version}" for name, version in versions.items())
    return str(versions or "")
