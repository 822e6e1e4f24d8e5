"""Where a task's data comes from: a local export (``--data-dir``) or the Hugging Face hub.

Local data is ``DATA_DIR/<task>/<split>.jsonl`` with the dataset's original field names and
lm-eval's split names (``lizard-bench export-data`` writes exactly this). A complete local
folder always wins, so an offline machine and a connected one run on identical rows. Without
one, the hub is the normal path; when the hub cannot be reached, the task is *unavailable*
with a one-line reason, which the runner records instead of failing or leaving a silent gap.
"""

from __future__ import annotations

import functools
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from lizard_bench.evaluation.catalog import TaskSpec
from lizard_bench.evaluation.definitions import primary_definition

EXPORT_MANIFEST = "export.json"  # written beside the split files by export-data
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class DataPlan:
    """The data a run will use: 'local' (files by split) or 'hub' (lm-eval's own dataset path)."""

    kind: str
    location: str  # the local task folder, or 'dataset_path[:dataset_name]' on the hub
    files: dict[str, Path] = field(default_factory=dict)  # split -> JSONL file (local only)
    note: str | None = None  # why a local folder was not used, when it exists but is incomplete

    def details(self) -> dict[str, object]:
        info: dict[str, object] = {"data_source": self.kind, "data_location": self.location}
        if self.files:
            info["data_files"] = {split: str(path) for split, path in sorted(self.files.items())}
            manifest = Path(self.location) / EXPORT_MANIFEST
            if manifest.is_file():
                try:
                    info["data_export"] = json.loads(manifest.read_text())
                except (OSError, json.JSONDecodeError):
                    info["data_export"] = "unreadable export.json"
        if self.note:
            info["data_note"] = self.note
        return info


class DataUnavailable(Exception):
    """No usable data for a task; the message is the one-line reason for the record."""


def local_task_dir(data_dir: str | os.PathLike[str], spec: TaskSpec) -> Path:
    return Path(data_dir).expanduser().resolve() / spec.name


def local_split_files(data_dir: str | os.PathLike[str] | None, spec: TaskSpec) -> dict[str, Path]:
    """Every ``<split>.jsonl`` present in the task's local folder (empty when there is none)."""
    if not data_dir:
        return {}
    folder = local_task_dir(data_dir, spec)
    if not folder.is_dir():
        return {}
    return {path.stem: path for path in sorted(folder.glob("*.jsonl")) if path.is_file()}


def plan_data(spec: TaskSpec, data_dir: str | None, num_fewshot: int) -> DataPlan:
    """Pick the data source for ``spec``, or raise :class:`DataUnavailable` saying why there is none."""
    required = primary_definition(spec).required_splits(num_fewshot)
    files = local_split_files(data_dir, spec)
    missing = [split for split in required if split not in files]
    if data_dir and not missing:
        return DataPlan("local", str(local_task_dir(data_dir, spec)), files)
    note = None
    if data_dir:
        note = f"{local_task_dir(data_dir, spec)} lacks {', '.join(f'{s}.jsonl' for s in missing)}"
    offline = hub_offline_reason()
    if offline is None:
        return DataPlan("hub", _hub_location(spec), note=note)
    where = note or f"no --data-dir/{spec.name}/ files (needs {', '.join(f'{s}.jsonl' for s in required)})"
    raise DataUnavailable(
        f"offline ({offline}) and {where}; run `lizard-bench export-data --out DIR --tasks {spec.name}` "
        "on a connected machine and pass --data-dir DIR"
    )


def hub_offline_reason() -> str | None:
    """None when datasets may reach the hub; otherwise why not (an offline variable, or no connection)."""
    for variable in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in _TRUE:
            return f"{variable}={os.environ[variable]}"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if not _reachable(endpoint):
        return f"{urlparse(endpoint).hostname} unreachable"
    return None


@functools.cache
def _reachable(endpoint: str, timeout_s: float = 3.0) -> bool:
    """One TCP connection attempt per process: enough to tell a machine without network from one with."""
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _hub_location(spec: TaskSpec) -> str:
    definition = primary_definition(spec)
    if spec.is_group:
        return f"{definition.dataset_path} (one config per subject)"
    name = f":{definition.dataset_name}" if definition.dataset_name else ""
    return f"{definition.dataset_path}{name}"
