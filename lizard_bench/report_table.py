"""A plain-text results table for the console (the reports package builds the published ones)."""

from __future__ import annotations

from lizard_bench.results import Record


def format_value(record: Record) -> str:
    if record.status != "ok":
        return record.status
    text = f"{record.value:.4g}" if abs(record.value) < 1e4 else f"{record.value:.4e}"
    return text + (f" ± {record.stderr:.2g}" if record.stderr is not None else "")


def records_table(records: list[Record]) -> str:
    """One row per record: model, variant, task, metric, value ± stderr (or the status), backend."""
    header = ("model", "variant", "task", "metric", "value", "backend")
    rows = [
        (r.model, r.variant, r.task, r.metric + (" ↓" if r.direction == "lower" else " ↑"), format_value(r),
         str(r.provenance.get("kernel_backend", "?")))
        for r in sorted(records, key=lambda r: r.key)
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
