"""Leaderboard ranks that admit ties: variants whose 95 % intervals overlap share a rank ("=2").

A rank read off a sorted column claims an order the measurement may not support: two variants
0.3 points apart on a 500-item task are not first and second. So variants are ranked per model
and task on the task's headline metric, best first, and tie groups are formed by chaining: a
variant joins the group of the one ranked just above it when their intervals overlap (value ±
1.96·se, or the recorded interval, ``uncertainty.value_interval``). A variant with no known
uncertainty has a point interval, so it ties only with intervals that cover its value.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from lizard_bench.report.loading import row_keys, task_labels
from lizard_bench.report.metrics import EFFICIENCY_TASKS, display_scale, format_number, metric_label
from lizard_bench.report.tables import Table, primary_columns
from lizard_bench.report.uncertainty import value_interval


@dataclass(frozen=True)
class Entry:
    """One ranked row: who (the row keys), its value and its 95 % interval (None when unknown)."""

    row: tuple
    value: float
    interval: tuple[float, float] | None

    @property
    def bounds(self) -> tuple[float, float]:
        return self.interval if self.interval is not None else (self.value, self.value)


def tie_ranks(entries: list[Entry], direction: str) -> list[tuple[str, Entry]]:
    """``entries`` best first with their rank labels: "1", "2", or "=2" for each member of a tie group."""
    ordered = sorted(entries, key=lambda e: -e.value if direction == "higher" else e.value)
    groups: list[list[Entry]] = []
    for entry in ordered:
        if groups and _overlap(groups[-1][-1].bounds, entry.bounds):
            groups[-1].append(entry)
        else:
            groups.append([entry])
    ranked, position = [], 1
    for group in groups:
        label = f"={position}" if len(group) > 1 else str(position)
        ranked += [(label, entry) for entry in group]
        position += len(group)
    return ranked


def ranking_table(frame: pd.DataFrame) -> Table | None:
    """Rows (task, model, rank, variant): each task's headline metric, variants ranked with ties.

    Efficiency tasks are left out: they are measured per context length, with no single number to rank.
    """
    scalar = frame[(frame["metric"] == frame["base_metric"]) & ~frame["task"].isin(EFFICIENCY_TASKS)
                   & (frame["status"] == "ok")]
    if scalar.empty:
        return None
    keys = row_keys(frame)
    labels = task_labels(scalar)
    raw_rows, text_rows = [], []
    for task, metric, direction in primary_columns(scalar):
        chosen = scalar[(scalar["task"] == task) & (scalar["metric"] == metric)]
        for model, group in chosen.groupby("model", sort=False):
            for rank, entry in tie_ranks(_entries(group, keys), direction):
                raw, text = _rank_row(labels[task], metric, direction, model, rank, entry, keys)
                raw_rows.append(raw)
                text_rows.append(text)
    notes = ["Per model and task, variants ranked on the task's headline metric; =k marks variants whose 95 % "
             "intervals overlap (chained in rank order), which share rank k. Interval: the recorded one (Wilson "
             "for exact match), else value ± 1.96 × stderr; none shown where the record has no uncertainty."]
    return Table("ranking", "Ranking (ties where intervals overlap)", pd.DataFrame(raw_rows),
                 pd.DataFrame(text_rows), ["task", *keys[:1], "rank", *keys[1:]], notes)


def _entries(group: pd.DataFrame, keys: list[str]) -> list[Entry]:
    entries = []
    for record in group.to_dict("records"):
        stderr = None if pd.isna(record["stderr"]) else float(record["stderr"])
        interval = value_interval(record["value"], stderr, record["interval"])
        entries.append(Entry(tuple(record[k] for k in keys), float(record["value"]), interval))
    return entries


def _rank_row(task_label: str, metric: str, direction: str, model: str, rank: str, entry: Entry,
              keys: list[str]) -> tuple[dict, dict]:
    """The raw (numbers, for CSV and sorting) and display (value with its interval) cells of one ranked row."""
    scale = display_scale(metric)
    names = dict(zip(keys, entry.row, strict=True))
    raw = {"task": metric_label(task_label, metric, direction), "model": model, "rank": rank,
           **{k: v for k, v in names.items() if k != "model"}, "value": entry.value * scale}
    text = dict(raw)
    text["value"] = format_number(entry.value * scale, metric)
    if entry.interval is not None:
        low, high = (format_number(bound * scale, metric) for bound in entry.interval)
        text["value"] += f" [{low}, {high}]"
    return raw, text


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]
