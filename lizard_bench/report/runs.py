"""Reading run directories for reports, with one-line errors for input that is not one.

Reports and regression checks are often pointed at the wrong folder (``results/`` instead of
``results/<run-id>/``, a run that crashed before its first unit). Those cases are caught here
and phrased so the user knows what to pass instead, rather than producing an empty table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lizard_bench.errors import InputError
from lizard_bench.results import Record, RunStore


class ReportError(InputError, ValueError):
    """Bad input to a report or compare command; the message is one line saying what and where."""


@dataclass(frozen=True)
class Run:
    """One run directory as read from disk."""

    run_id: str
    path: Path
    records: list[Record]
    manifest: dict[str, Any] = field(default_factory=dict)


def read_run(path: str | Path) -> Run:
    """Read and validate ``results/<run-id>/``; raise :class:`ReportError` if it is not a run with records."""
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"{path}: no such run directory (expected results/<run-id>/)")
    store = RunStore(path)
    if not store.manifest_path.is_file() and not (path / "records").is_dir():
        raise ReportError(f"{path}: not a run directory (no manifest.json or records/ inside){_hint(path)}")
    manifest = store.read_manifest() or {}
    records = store.read_records()
    if not records:
        raise ReportError(f"{path}: the run directory holds no records (records/<model>/<variant>/<task>.json)")
    run_id = path.name  # the folder's name, which a renamed run keeps (its manifest holds the original id)
    return Run(run_id=run_id, path=path, records=records, manifest=manifest)


def read_runs(paths: list[str | Path]) -> list[Run]:
    """Read several runs; two runs with the same id are told apart by a numeric suffix."""
    if not paths:
        raise ReportError("no run directory given")
    runs: list[Run] = []
    seen: dict[str, int] = {}
    for path in paths:
        run = read_run(path)
        count = seen.get(run.run_id, 0) + 1
        seen[run.run_id] = count
        if count > 1:
            run = Run(run_id=f"{run.run_id}#{count}", path=run.path, records=run.records, manifest=run.manifest)
        runs.append(run)
    return runs


def smoke_runs_note(runs: list[Run]) -> str | None:
    """One sentence naming the runs made with ``--limit`` (or ``limit:``), or None when there are none.

    A limited run scores the first few items of each task or cell: a smoke test of the wiring,
    whose numbers rest on too few items to stand beside a full run's in a table or ranking.
    """
    limited = [(run.run_id, run.manifest.get("config", {}).get("limit")) for run in runs]
    limited = [(run_id, limit) for run_id, limit in limited if limit is not None]
    if not limited:
        return None
    names = ", ".join(f"{run_id} (limit {limit})" for run_id, limit in limited)
    return (f"Smoke run: {names} scored at most the limit's items per task or cell; its numbers rest on too "
            "few items to compare with a full run's.")


def _hint(path: Path) -> str:
    children = sorted(child.name for child in path.iterdir() if (child / "manifest.json").is_file())
    if not children:
        return ""
    return f"; did you mean one of its runs, e.g. {path / children[0]}?"
