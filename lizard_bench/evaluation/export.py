"""Writing a ``--data-dir`` folder from the hub, for users preparing an offline machine.

For each task this loads the splits its lm-eval definition evaluates (plus the few-shot
source when the task is few-shot by default, e.g. MMLU's dev split) with ``datasets`` and
writes them unchanged, one JSON object per line, as ``OUT/<task>/<split>.jsonl``, with an
``export.json`` saying where the rows came from. Files appear atomically (written beside the
target, then renamed), so an interrupted export never leaves a truncated split behind.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lizard_bench.errors import InputError, first_line
from lizard_bench.evaluation.catalog import TaskSpec
from lizard_bench.evaluation.data_sources import EXPORT_MANIFEST
from lizard_bench.evaluation.definitions import primary_definition

SplitLoader = Callable[[str, "str | None", str], Iterable[dict[str, Any]]]


class ExportError(InputError, ValueError):
    """An export that cannot be done; the message says which task and split, in one line."""


@dataclass
class ExportedTask:
    task: str
    folder: Path
    rows: dict[str, int] = field(default_factory=dict)  # split -> rows written


def load_split(path: str, name: str | None, split: str) -> Iterable[dict[str, Any]]:
    """The hub split through ``datasets`` (the real loader; tests substitute their own)."""
    import datasets

    return datasets.load_dataset(path, name, split=split)


def export_splits(spec: TaskSpec, with_fewshot: bool) -> tuple[str, str | None, list[str]]:
    """(dataset path, config name, splits) that an offline run of ``spec`` needs."""
    definition = primary_definition(spec)
    splits = definition.required_splits(spec.num_fewshot)
    if with_fewshot and definition.fewshot_split not in splits:
        splits.append(definition.fewshot_split)
    name = spec.export_config if spec.export_config else definition.dataset_name
    return definition.dataset_path, name, splits


def export_task(spec: TaskSpec, out_dir: Path, *, with_fewshot: bool = False,
                loader: SplitLoader | None = None) -> ExportedTask:
    """Write ``out_dir/<task>/<split>.jsonl`` for every split ``spec`` needs, and its ``export.json``."""
    loader = loader or load_split
    dataset_path, dataset_name, splits = export_splits(spec, with_fewshot)
    folder = Path(out_dir).expanduser().resolve() / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    exported = ExportedTask(task=spec.name, folder=folder)
    for split in splits:
        source = f"{dataset_path}{f':{dataset_name}' if dataset_name else ''} split {split}"
        try:
            rows = loader(dataset_path, dataset_name, split)
            exported.rows[split] = _write_jsonl(folder / f"{split}.jsonl", rows)
        except ExportError:
            raise
        except Exception as exc:  # datasets raises many types; the user needs the task, split and first line
            raise ExportError(f"{spec.name}: could not export {source}: {first_line(exc)}{_offline_hint()}") from None
    manifest = {
        "task": spec.name,
        "dataset_path": dataset_path,
        "dataset_name": dataset_name,
        "splits": exported.rows,
        "datasets_version": _version("datasets"),
        "lm_eval_version": _version("lm_eval"),
        "exported": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    _write_atomically(folder / EXPORT_MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return exported


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    partial = path.with_name(path.name + ".partial")
    count = 0
    try:
        with partial.open("w", encoding="utf-8") as handle:
            for row in rows:
                try:
                    line = json.dumps(dict(row), ensure_ascii=False)
                except TypeError as exc:
                    raise ExportError(f"{path}: row {count} is not JSON-serialisable ({exc})") from None
                handle.write(line + "\n")
                count += 1
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return count


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _offline_hint() -> str:
    flags = [name for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE") if os.environ.get(name, "0") not in ("", "0")]
    return f" ({' and '.join(flags)} set: export needs the hub)" if flags else ""


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
