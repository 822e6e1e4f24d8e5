"""Per-stage training logs: one JSON object per optimizer step (``stage1.jsonl``, ``stage2.jsonl``).

JSON Lines so that a crash loses at most the line being written and a half-finished run can
be plotted while it trains. A resumed run first cuts the file back to the step it resumes
from, so the log of an interrupted-and-resumed run reads like one uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lizard_bench.results.store import atomic_write_text

REQUIRED_FIELDS = ("step", "loss", "lr", "tokens", "time_s")


class TrainingLog:
    """Appends step records to ``path``; a ``None`` path makes every call a no-op (non-main processes)."""

    def __init__(self, path: Path | None, resume_step: int = 0) -> None:
        self.path = path
        if path is None:
            return
        kept = [row for row in read_log(path) if row["step"] <= resume_step] if resume_step and path.is_file() else []
        atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a log (a torn last line from a crash is skipped)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
