"""Records recomputed from their per-item values, by the rules the tasks use; and changed copies of a run.

What a regression check is tested with: change items of a real run (flip one prompt's answer,
make every window's NLL worse), and the records those items count in move exactly as a rerun's
would, interval included, so the check sees a consistent run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lizard_bench.results.intervals import ItemScores, bootstrap_interval, mean_stderr, wilson_interval
from lizard_bench.results.samples import item_scores, read_samples, samples_path
from lizard_bench.results.schema import Record
from lizard_bench.results.store import RunStore, atomic_write_text


def rescored(record: Record, items: ItemScores, seed: int) -> Record:
    """``record`` with value, n, stderr and interval recomputed from ``items``: Wilson for exact-match
    outcomes, else the seeded bootstrap over items (as ``long_context.summary`` computes them)."""
    value = items.score
    interval = wilson_interval(round(sum(items.values)), items.n) if items.binary else bootstrap_interval(items, seed)
    stderr = mean_stderr(items.values)
    if stderr is not None and items.scale == "exp_mean":
        stderr *= value
    low, high = interval if interval is not None else (None, None)
    return dataclasses.replace(record, value=value, n=items.n, stderr=stderr, ci_low=low, ci_high=high)


def changed_copy(run_dir: Path, destination: Path, unit: tuple[str, str, str],
                 change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> Path:
    """A copy of ``run_dir`` at ``destination`` whose ``unit`` (model, variant, task) items went through
    ``change``, with that unit's records recomputed from the changed items."""
    shutil.copytree(run_dir, destination)
    model, variant, task = unit
    path = samples_path(destination, model, variant, task)
    rows = change(read_samples(path))
    atomic_write_text(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
    store = RunStore(destination)
    records = [record for record in store.read_records() if (record.model, record.variant, record.task) == unit]
    updated = []
    for record in records:
        items = item_scores(rows, record.metric, record.details.get("item_scale", "mean"))
        seed = record.provenance.get("seed", 0)
        updated.append(rescored(record, items, seed) if items is not None and record.status == "ok" else record)
    store.write_unit(model, variant, task, updated)
    return destination


def flip_first_prompt(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A change for :func:`changed_copy`: the first prompt answered the other way, in every metric it counts in."""
    first = dict(rows[0], correct=not rows[0]["correct"])
    first["scores"] = {metric: 1.0 - value for metric, value in rows[0]["scores"].items()}
    return [first, *rows[1:]]


def perplexity_scaled(factor: float) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """A change for :func:`changed_copy`: every window's mean NLL up by ln ``factor``, its perplexity × factor."""

    def change(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [dict(row, scores={metric: value + math.log(factor) for metric, value in row["scores"].items()})
                for row in rows]

    return change
