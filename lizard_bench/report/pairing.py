"""Paired comparisons: two records scored on the same items, compared item by item.

A run keeps every built-in task's per-item outcomes (and lm-eval's with ``--log-samples``)
under ``samples/``. Where both sides of a comparison have them, the difference of the two
scores gets a paired 95 % interval over the shared items (``results.intervals``), which is
narrower than the unpaired one when the items' difficulty is shared, and honest where it is
not. Items are used only when they reproduce their record's value; a samples file from
another version of a task (or edited by hand) is ignored rather than trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lizard_bench.report.uncertainty import difference_interval, standard_error
from lizard_bench.results import Record
from lizard_bench.results.intervals import SCALES, ItemScores, paired_difference
from lizard_bench.results.samples import item_scores, read_samples, samples_path

DEFAULT_SEED = 0  # the paired bootstrap's seed where a record does not say its run's


@dataclass(frozen=True)
class Difference:
    """``current − baseline`` with its 95 % interval and how the interval was found."""

    value: float
    interval: tuple[float, float] | None
    paired: bool
    method: str

    @property
    def significant(self) -> bool:
        return self.interval is not None and (self.interval[0] > 0 or self.interval[1] < 0)


def items_of(run_dir: Path | str, record: Record) -> ItemScores | None:
    """The record's per-item values from its run's samples, or None (no file, or one that does not reproduce it)."""
    if record.status != "ok":
        return None
    path = samples_path(Path(run_dir), record.model, record.variant, record.task)
    scale = record.details.get("item_scale", "mean")
    if scale not in SCALES:
        return None
    if not path.is_file():
        return None
    stat = path.stat()
    items = item_scores(_rows(str(path), stat.st_mtime_ns, stat.st_size), record.metric, scale)
    if items is None or not math.isclose(items.score, record.value, rel_tol=1e-6, abs_tol=1e-9):
        return None
    return items


@dataclass(frozen=True)
class Scored:
    """What a difference needs of one side: its value, stderr and interval (a record, or a report frame's row)."""

    value: float
    stderr: float | None
    interval: tuple[float, float] | None

    @classmethod
    def of(cls, record: Record) -> Scored:
        return cls(record.value, record.stderr, record.interval)


def difference(baseline: Scored, current: Scored, baseline_items: ItemScores | None = None,
               current_items: ItemScores | None = None, seed: int = DEFAULT_SEED) -> Difference:
    """Paired where both sides have items in common, else unpaired from the two sides' uncertainties."""
    if baseline_items is not None and current_items is not None:
        paired = paired_difference(baseline_items, current_items, seed)
        if paired is not None:
            return Difference(paired.difference, (paired.low, paired.high), True,
                              f"paired over {paired.n} items: {paired.method}")
    interval = difference_interval(baseline.value, standard_error(baseline.stderr, baseline.interval),
                                   current.value, standard_error(current.stderr, current.interval))
    method = "unpaired: combined stderr" if interval is not None else "no interval: a side has no uncertainty"
    return Difference(current.value - baseline.value, interval, False, method)


def run_seed(record: Record) -> int:
    """The seed the record's run used: the paired bootstrap's too, so a report is the same on every machine."""
    seed = record.provenance.get("seed", DEFAULT_SEED)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else DEFAULT_SEED


@cache
def _rows(path: str, mtime_ns: int, size: int) -> list[dict]:
    """A samples file's rows, read once per version of the file (a task's records share one file)."""
    return read_samples(Path(path))
