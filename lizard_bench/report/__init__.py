"""Reports from result records: tables, figures, a static leaderboard, the paper comparison, regression checks.

``write_reports(run_dirs, out_dir)`` writes everything publishable for one or many run
directories; ``compare_runs`` checks a run against a baseline with per-metric tolerances.
The command line (``lizard-bench report`` / ``lizard-bench compare``) is in :mod:`.commands`.
"""

from lizard_bench.report.build import write_reports
from lizard_bench.report.compare import Comparison, compare_records, compare_runs
from lizard_bench.report.runs import ReportError, read_run
from lizard_bench.report.tolerances import Tolerances, load_tolerances

__all__ = [
    "Comparison", "ReportError", "Tolerances", "compare_records", "compare_runs", "load_tolerances", "read_run",
    "write_reports",
]
