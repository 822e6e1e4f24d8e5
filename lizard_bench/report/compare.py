"""Regression check: a run against a baseline, metric by metric, with tolerances.

Records are matched by (model, variant, task, metric). Each record's ``direction`` says which
way is better, so only a move in the bad direction past the tolerance fails; a move the other
way is reported as an improvement. Nothing is dropped quietly: a metric the baseline has and
the current run lacks fails (a task that stopped running is a regression), a new metric is
listed, and a measurement that used to succeed and now fails (oom, error) fails.

Past the tolerance is not enough: a move counts (regression or improvement) only when it is
also significant, its 95 % interval excluding 0: paired over the items both runs scored where
both kept their per-item outcomes (``report/pairing.py``), else unpaired from the two records'
stderr or intervals. A 2-prompt passkey cell that drops from 1/2 to 0/2 moves 50 points, yet
is well within what two prompts can tell apart, so it is listed as "within noise" and does not
fail; perplexity windows that all got 20 % worse are a change however few they are. Where either
record carries no uncertainty, or the tolerance turns significance off, the tolerance alone
decides, and the note says so. An efficiency point measured on a busy machine
(``details.noisy``) is no evidence of a slowdown, so it cannot fail the check by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lizard_bench.report.pairing import Difference, Scored, difference, items_of, run_seed
from lizard_bench.report.runs import ReportError, Run, read_run
from lizard_bench.report.tolerances import Tolerance, Tolerances
from lizard_bench.results import Record
from lizard_bench.results.intervals import ItemScores

ItemsOf = Callable[[Record], ItemScores | None]  # a record's per-item values, where its run kept them

# Outcomes, in the order they are listed; the first two fail the check.
OUTCOMES = ("regression", "missing", "improved", "within noise", "noisy point", "new", "ok")
FAILING = frozenset({"regression", "missing"})


@dataclass(frozen=True)
class Change:
    """The comparison of one metric."""

    key: tuple[str, str, str, str]
    outcome: str
    baseline: Record | None
    current: Record | None
    tolerance: Tolerance | None
    change: str  # the move, in the tolerance's terms
    note: str = ""
    interval: tuple[float, float] | None = None  # 95 % interval of current − baseline, where known

    @property
    def direction(self) -> str:
        record = self.current or self.baseline
        return record.direction if record else "higher"


@dataclass
class Comparison:
    baseline_label: str
    current_label: str
    changes: list[Change]
    tolerances_source: str = "built-in defaults"
    left_out: int = 0  # metrics in one run only, left out by shared_only (a partial rerun)

    def by_outcome(self, outcome: str) -> list[Change]:
        return [change for change in self.changes if change.outcome == outcome]

    @property
    def failed(self) -> bool:
        return any(change.outcome in FAILING for change in self.changes)

    def counts(self) -> dict[str, int]:
        return {outcome: len(self.by_outcome(outcome)) for outcome in OUTCOMES}

    def headline(self) -> str:
        counts = self.counts()
        failing = counts["regression"] + counts["missing"]
        verdict = f"FAIL: {failing} failing metric(s)" if failing else "PASS: no regressions"
        detail = ", ".join(f"{count} {outcome}" for outcome, count in counts.items() if count)
        left_out = f"; {self.left_out} in one run only, left out (--shared-only)" if self.left_out else ""
        return f"{verdict} ({detail}; {len(self.changes)} metrics compared{left_out})"

    def text_table(self) -> str:
        """A plain-text difference table, failing rows first."""
        header = ("outcome", "model", "variant", "task", "metric", "baseline", "current", "change", "tolerance",
                  "note")
        rows = [_row(change) for change in self.changes]
        widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                 for row in (header, *rows)]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def markdown(self) -> str:
        """A summary for a CI job page: verdict, counts, failing and notable rows, the full table folded."""
        counts = self.counts()
        failing = counts["regression"] + counts["missing"]
        mark = "❌" if failing else "✅"
        lines = [f"## {mark} lizard-bench compare: {self.headline()}", "",
                 f"Baseline: `{self.baseline_label}`  ", f"Current: `{self.current_label}`  ",
                 f"Tolerances: {self.tolerances_source}", "",
                 "| outcome | metrics |", "| --- | ---: |"]
        lines += [f"| {outcome} | {count} |" for outcome, count in counts.items()]
        titles = {"regression": "Regressions", "missing": "Missing in the current run (fails)",
                  "improved": "Improvements", "within noise": "Within noise (past the tolerance, not significant)",
                  "noisy point": "Noisy efficiency points (busy machine, do not fail)",
                  "new": "New metrics (not in the baseline)"}
        for outcome, title in titles.items():
            selected = self.by_outcome(outcome)
            if selected:
                lines += ["", f"### {title} ({len(selected)})", "", *_markdown_rows(selected)]
        lines += ["", f"<details><summary>All {len(self.changes)} compared metrics</summary>", "",
                  *_markdown_rows(self.changes), "", "</details>", ""]
        return "\n".join(lines)


def compare_records(baseline: list[Record], current: list[Record], tolerances: Tolerances | None = None,
                    baseline_label: str = "baseline", current_label: str = "current",
                    items: tuple[ItemsOf, ItemsOf] | None = None, shared_only: bool = False) -> Comparison:
    """Compare metric by metric; ``items`` reads each side's per-item values, for paired intervals.

    ``shared_only`` compares only the metrics both runs have (a rerun of some variants or tasks):
    the rest is counted in the headline instead of failing as missing.
    """
    tolerances = tolerances or Tolerances()
    base = _index(baseline, baseline_label)
    now = _index(current, current_label)
    items = items or (_no_items, _no_items)
    keys = set(base) & set(now) if shared_only else set(base) | set(now)
    changes = [_compare_one(key, base.get(key), now.get(key), tolerances, items) for key in sorted(keys)]
    changes.sort(key=lambda change: OUTCOMES.index(change.outcome))  # stable: keys stay sorted within an outcome
    left_out = len(set(base) ^ set(now)) if shared_only else 0
    return Comparison(baseline_label, current_label, changes, tolerances.source, left_out)


def compare_runs(baseline_dir: str | Path, current_dir: str | Path, tolerances: Tolerances | None = None,
                 shared_only: bool = False) -> Comparison:
    baseline, current = read_run(baseline_dir), read_run(current_dir)
    items = (lambda record: items_of(baseline.path, record), lambda record: items_of(current.path, record))
    return compare_records(baseline.records, current.records, tolerances, _label(baseline), _label(current), items,
                           shared_only)


def _no_items(record: Record) -> None:
    return None


def _compare_one(key, baseline: Record | None, current: Record | None, tolerances: Tolerances,
                 items: tuple[ItemsOf, ItemsOf]) -> Change:
    tolerance = tolerances.for_metric(key[2], key[3])
    if current is None:
        return Change(key, "missing", baseline, None, tolerance, "", "in the baseline, not in the current run")
    if baseline is None:
        return Change(key, "new", None, current, tolerance, "", "not in the baseline")
    if baseline.status != "ok" or current.status != "ok":
        return _compare_statuses(key, baseline, current, tolerance)
    worse, better = tolerance.worse_and_better(baseline.value, current.value, current.direction)
    moved = worse or better
    found = difference(Scored.of(baseline), Scored.of(current), items[0](baseline), items[1](current),
                       run_seed(baseline)) if moved else None
    interval = found.interval if found else None
    outcome, note = _judge_move(worse, better, baseline, current, tolerance, found)
    if baseline.direction != current.direction:
        note = "; ".join(filter(None, [f"direction changed from {baseline.direction}", note]))
    return Change(key, outcome, baseline, current, tolerance, tolerance.change(baseline.value, current.value), note,
                  interval)


def _judge_move(worse: bool, better: bool, baseline: Record, current: Record, tolerance: Tolerance,
                found: Difference | None) -> tuple[str, str]:
    """The outcome of an ok → ok move and why: tolerance first, then significance, then noisy points."""
    if found is None:
        return "ok", ""
    interval = found.interval
    if not tolerance.significance:
        outcome, note = ("regression" if worse else "improved"), "significance off: tolerance only"
    elif interval is None:
        outcome, note = ("regression" if worse else "improved"), "no interval: tolerance only"
    elif not found.significant:
        return "within noise", (f"95% CI {_interval_text(tolerance, baseline.value, interval)} includes 0"
                                f"{_paired_note(found)}")
    else:
        outcome = "regression" if worse else "improved"
        note = f"95% CI {_interval_text(tolerance, baseline.value, interval)} excludes 0{_paired_note(found)}"
    if outcome == "regression" and _is_noisy(baseline, current):
        return "noisy point", note + "; measured on a busy machine (details.noisy): cannot fail the check by itself"
    return outcome, note


def _paired_note(found: Difference) -> str:
    """Only paired intervals say so: the unpaired interval is the default and its notes stay short."""
    return f" ({found.method})" if found.paired else ""


def _interval_text(tolerance: Tolerance, baseline: float, interval: tuple[float, float]) -> str:
    """The difference's interval in the tolerance's terms (points, %, ×, absolute), like the change column."""
    low, high = (tolerance.change(baseline, baseline + bound) for bound in interval)
    return f"[{low}, {high}]"


def _is_noisy(*records: Record) -> bool:
    """Whether either side is an efficiency point measured while other processes kept the machine busy."""
    return any(bool(record.details.get("noisy")) for record in records)


def _compare_statuses(key, baseline: Record, current: Record, tolerance: Tolerance) -> Change:
    move = f"{baseline.status} → {current.status}"
    if baseline.status == "ok":
        outcome = "regression"  # it used to produce a number and now fails (oom, error, timeout, unavailable)
    elif current.status == "ok":
        outcome = "improved"
    elif current.status == "error" and baseline.status != "error":
        outcome = "regression"
    else:
        outcome = "ok"
    reason = current.reason if current.status != "ok" else baseline.reason
    return Change(key, outcome, baseline, current, tolerance, move, reason or "")


def _index(records: list[Record], label: str) -> dict[tuple[str, str, str, str], Record]:
    index: dict[tuple[str, str, str, str], Record] = {}
    for record in records:
        if record.key in index:
            raise ReportError(f"{label}: two records for {'/'.join(record.key)}; compare one run directory each")
        index[record.key] = record
    return index


def _label(run: Run) -> str:
    commit = run.manifest.get("provenance", {}).get("git_commit")
    return f"{run.path} (run {run.run_id}" + (f", commit {commit})" if commit else ")")


def _value(record: Record | None) -> str:
    if record is None:
        return "—"
    return f"{record.value:.6g}" if record.status == "ok" else record.status


def _row(change: Change) -> tuple[str, ...]:
    tolerance = change.tolerance.describe(change.direction) if change.tolerance else ""
    arrow = " ↓" if change.direction == "lower" else " ↑"
    return (change.outcome.upper() if change.outcome in FAILING else change.outcome, *change.key[:3],
            change.key[3] + arrow, _value(change.baseline), _value(change.current), change.change or "—", tolerance,
            change.note)


def _markdown_rows(changes: list[Change]) -> list[str]:
    header = "| outcome | model | variant | task | metric | baseline | current | change | tolerance | note |"
    rows = [header, "| --- | --- | --- | --- | --- | ---: | ---: | ---: | --- | --- |"]
    for change in changes:
        cells = [cell.replace("|", "\\|").replace("\n", " ") for cell in _row(change)]
        if change.outcome in FAILING:
            cells[0] = f"**{cells[0]}**"
        rows.append("| " + " | ".join(cells) + " |")
    return rows
