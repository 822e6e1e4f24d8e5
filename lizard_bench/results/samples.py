"""Per-item outcomes: every built-in task's, and lm-eval's with ``--log-samples``, beside the run's records.

``results/<run-id>/samples/<model>/<variant>/<task>.jsonl`` holds one JSON object per
evaluated item, so a surprising score can be traced to the items behind it and two variants
(or two runs) scored on the same items can be compared item by item:

- a built-in task's row: ``item`` (a name that is the same for the same prompt or window in
  every run with the same settings), ``scores`` (metric -> this item's value: 1/0 for an exact
  match, the window's mean NLL for a perplexity), ``weight``, and what was asked and answered;
- an lm-eval row: its own sample record (``doc_id``, ``filter``, arguments, responses, and each
  metric's per-sample value under the metric's name).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lizard_bench.errors import InputError
from lizard_bench.results.intervals import ItemScores, Scale
from lizard_bench.results.store import atomic_write_text, safe_name


def samples_path(run_dir: Path, model: str, variant: str, task: str) -> Path:
    return Path(run_dir) / "samples" / safe_name(model) / safe_name(variant) / f"{safe_name(task)}.jsonl"


def write_samples(path: Path, samples: dict[str, list[dict[str, Any]]]) -> Path:
    """Write lm-eval's ``results["samples"]`` (task name -> sample dicts) to ``path`` as JSON Lines, atomically."""
    lines = [json.dumps({"task": task_name, **row}, default=_jsonable, sort_keys=True)
             for task_name, rows in sorted(samples.items()) for row in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path


def _jsonable(value: Any) -> Any:
    """lm-eval's samples hold tuples, numpy scalars and the odd object: keep what JSON can say, name the rest."""
    if hasattr(value, "item"):
        value = value.item()
        return value if not isinstance(value, float) or math.isfinite(value) else str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def read_samples(path: Path) -> list[dict[str, Any]]:
    """The rows of a samples file; a line that is not a JSON object is an error naming the file and line."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not valid JSON ({exc.msg}); rerun the task to rewrite it") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{number}: each line must be a JSON object")
        rows.append(row)
    return rows


def item_scores(rows: list[dict[str, Any]], metric: str, scale: Scale = "mean") -> ItemScores | None:
    """The per-item values of ``metric`` (a record's metric name) in ``rows``, or None when no row scores it."""
    ids, values, weights = [], [], []
    base, _, filter_name = metric.partition(",")
    for row in rows:
        if isinstance(row.get("scores"), dict):  # a built-in task's row
            value, item, weight = row["scores"].get(metric), row.get("item"), row.get("weight", 1.0)
        else:  # lm-eval's: the metric's per-sample value under its name, for the record's filter
            value = row.get(base) if row.get("filter", "none") == (filter_name or "none") else None
            item, weight = f"{row.get('task')}:{row.get('doc_id')}", 1.0
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, int | float) and math.isfinite(value) and item is not None:
            ids.append(str(item))
            values.append(float(value))
            weights.append(float(weight))
    if not ids or len(set(ids)) != len(ids):
        return None
    return ItemScores(tuple(ids), tuple(values), tuple(weights), scale)
