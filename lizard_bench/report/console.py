"""The end-of-run summary on the console: one compact side-by-side table per model, in the report's units.

A run of the default suite writes about 80 records; listing them flat buries the answer to
the question a user ran it for (what did linearization gain and lose?). So the console shows
the headline metrics as rows and the variants as columns, each linearized value followed by
its ratio to the teacher, with fractions in percentage points and bytes in MiB as in the
report. Every record stays in the report (``records.csv``, ``all_metrics``).
"""

from __future__ import annotations

import pandas as pd

from lizard_bench.report.metrics import TEACHER_VARIANT, display_scale, format_number, split_metric
from lizard_bench.results import Record


def headline_records(records: list[Record]) -> list[Record]:
    """Per (model, variant, task, metric): the value without a point, or else the sweep's largest length."""
    plain: dict[tuple[str, str, str, str], Record] = {}
    longest: dict[tuple[str, str, str, str], Record] = {}
    for record in records:
        name = split_metric(record.metric)
        key = (record.model, record.variant, record.task, name.base)
        if name.context_length is None and name.depth is None:
            plain[key] = record
        elif name.depth is None and (key not in longest or name.context_length > _length(longest[key])):
            longest[key] = record
    return list({**longest, **plain}.values())


def summary_table(records: list[Record]) -> str:
    """Rows = (task, metric), columns = variants (teacher first); ``value (ratio×)`` against the teacher."""
    blocks = []
    for model in sorted({r.model for r in records}):
        mine = [r for r in headline_records(records) if r.model == model]
        variants = sorted({r.variant for r in mine}, key=lambda v: (v != TEACHER_VARIANT, v))
        values = {(r.task, r.metric, r.variant): r for r in mine}
        rows = sorted({(r.task, r.metric) for r in mine})
        table = pd.DataFrame(
            [[_cell(values.get((task, metric, variant)), values.get((task, metric, TEACHER_VARIANT)))
              for variant in variants] for task, metric in rows],
            index=[f"{task} {metric}{_unit(metric)}{_arrow(values, task, metric)}" for task, metric in rows],
            columns=variants,
        )
        blocks.append(f"{model}\n{table.to_string()}")
    return "\n\n".join(blocks)


def _cell(record: Record | None, teacher: Record | None) -> str:
    if record is None:
        return "-"
    if record.status != "ok" or record.value is None:
        return record.status
    base = split_metric(record.metric).base
    text = format_number(record.value * display_scale(base), base)
    if record.variant != TEACHER_VARIANT and teacher is not None and teacher.status == "ok" and teacher.value:
        text += f" ({record.value / teacher.value:.2f}×)"
    return text


def _unit(metric: str) -> str:
    base = split_metric(metric).base
    scale = display_scale(base)
    return " %" if scale == 100.0 else (" MiB" if scale != 1.0 else "")


def _arrow(values: dict, task: str, metric: str) -> str:
    record = next((r for (t, m, _), r in values.items() if t == task and m == metric), None)
    return " ↓" if record is not None and record.direction == "lower" else ""


def _length(record: Record) -> int | None:
    return split_metric(record.metric).context_length
