"""The end-of-run summary on the console: one compact side-by-side table per model, in the report's units.

A run of the default suite writes about 80 records; listing them flat buries the answer to
the question a user ran it for (what did linearization gain and lose?). So the console shows
the headline metrics as rows and the variants as columns, each linearized value followed by
its ratio to the teacher (and any value by its 95 % interval where the record has one), with
fractions in percentage points and bytes in MiB as in the report. Every record stays in the
report (``records.csv``, ``all_metrics``).
"""

from __future__ import annotations

import pandas as pd

from lizard_bench.efficiency.load import NOISY_CORES
from lizard_bench.report.metrics import TEACHER_VARIANT, display_scale, format_number, interval_text, split_metric
from lizard_bench.results import Record


def headline_records(records: list[Record]) -> list[Record]:
    """Per (model, variant, task, metric): the value without a point, or else one length of the sweep.

    The length is the largest at which the teacher's point is measured (ok), so that every
    linearized value there has a ratio; the largest overall when no teacher point is ok.
    """
    plain: dict[tuple[str, str, str, str], Record] = {}
    points: dict[tuple[str, str, str], dict[tuple[str, int], Record]] = {}
    for record in records:
        name = split_metric(record.metric)
        if name.context_length is None and name.depth is None:
            plain[(record.model, record.variant, record.task, name.base)] = record
        elif name.depth is None:
            sweep = points.setdefault((record.model, record.task, name.base), {})
            sweep[(record.variant, name.context_length)] = record
    chosen: list[Record] = []
    for sweep in points.values():
        teacher_ok = [n for (variant, n), r in sweep.items() if variant == TEACHER_VARIANT and r.status == "ok"]
        length = max(teacher_ok) if teacher_ok else max(n for _, n in sweep)
        chosen += [record for (_, n), record in sweep.items() if n == length]
    swept = [r for r in chosen if (r.model, r.variant, r.task, split_metric(r.metric).base) not in plain]
    return swept + list(plain.values())


def noisy_warning(records: list[Record]) -> str | None:
    """One line when any efficiency point was measured on a busy machine (``details.noisy``), else None."""
    noisy = [r for r in records if r.status == "ok" and r.details.get("noisy")]
    if not noisy:
        return None
    points = sorted({(r.variant, r.task, r.details.get("context_length")) for r in noisy}, key=str)
    return (f"warning: {len(points)} efficiency point(s) were measured while other processes kept more than "
            f"{NOISY_CORES:g} of a core busy (marked * in the report's efficiency table and hollow in its plots); "
            "their speeds are lower bounds: rerun on an idle machine for numbers to quote")


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
    interval = interval_text(record.interval, base)
    if interval is not None:  # a 95 % interval (exact match, context gain): what the value can be trusted to
        text += f" {interval}"
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
