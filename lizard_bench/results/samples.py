"""Per-sample outputs (``--log-samples``): lm-eval's sample records, kept beside the run's records.

``results/<run-id>/samples/<model>/<variant>/<task>.jsonl`` holds one JSON object per
evaluated example (its prompt arguments, the model's responses, the filtered answer, the
per-sample metric values), so a surprising score can be traced to the examples behind it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

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
