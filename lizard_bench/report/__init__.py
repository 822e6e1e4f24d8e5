"""Reports from result records: tables, figures, a static leaderboard, the paper comparison, regression checks.

``write_reports(run_dirs, out_dir)`` writes everything publishable for one or many run
directories; ``compare_runs`` checks a run against a baseline with per-metric tolerances.
The command line (``lizard-bench report`` / ``lizard-bench compare``) is in :mod:`.commands`.
Names are imported on first use (pandas and matplotlib are slow to import).
"""

from lizard_bench.lazy import lazy_attributes

_EXPORTS = {
    "write_reports": "build", "Comparison": "compare", "compare_records": "compare", "compare_runs": "compare",
    "ReportError": "runs", "read_run": "runs", "Tolerances": "tolerances", "load_tolerances": "tolerances",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_attributes(__name__, _EXPORTS)
