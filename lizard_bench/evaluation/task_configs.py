"""Generated lm-eval task configs: the original definition, pointed at the chosen data.

For every run we write a small folder of YAML files that ``include`` lm-eval's own task file
(so prompts, choices and metrics stay exactly lm-eval's) and override only what concerns the
data: for local data ``dataset_path: json`` with absolute ``data_files``, and the split keys
whose files an export does not contain (a training split that a zero-shot run never reads).
The folder is registered with ``TaskManager(include_path=..., include_defaults=False)``:
indexing lm-eval's ~15,000 bundled configs would cost seconds per task for nothing.

MMLU is a group of one task per subject. Local MMLU data is one file per split with a
``subject`` column (the hub's ``cais/mmlu`` 'all' config); it is split here into per-subject
files, and the generated group lists the subjects present, weighted by size like lm-eval's.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lizard_bench.evaluation.catalog import TaskSpec
from lizard_bench.evaluation.data_sources import DataPlan, DataUnavailable
from lizard_bench.evaluation.definitions import SPLIT_KEYS, TaskDefinition, task_definitions

MMLU_SUBJECT_FIELD = "subject"


@dataclass
class GeneratedConfigs:
    """What was written: the name to load, and the per-task overrides (recorded in details)."""

    folder: Path
    load_name: str
    subtasks: list[str] = field(default_factory=list)  # group members, in order
    overrides: dict[str, Any] = field(default_factory=dict)  # of the first (or only) task, for records


def write_task_configs(spec: TaskSpec, plan: DataPlan, num_fewshot: int, folder: Path) -> GeneratedConfigs:
    """Write the configs for ``spec`` on ``plan`` into ``folder`` (a private directory, created if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    if spec.is_group:
        return _write_group(spec, plan, num_fewshot, folder)
    definition = task_definitions(spec)[0]
    overrides = _overrides(definition, plan.files if plan.kind == "local" else None, num_fewshot, folder)
    _write_yaml(folder / f"{definition.task}.yaml", {"include": str(definition.yaml_path), **overrides})
    return GeneratedConfigs(folder=folder, load_name=definition.task, overrides=overrides)


def _overrides(definition: TaskDefinition, files: dict[str, Path] | None, num_fewshot: int,
               folder: Path) -> dict[str, Any]:
    """The keys that differ from lm-eval's file: shots always, dataset and absent splits for local data."""
    overrides: dict[str, Any] = {"task": definition.task, "num_fewshot": num_fewshot}
    if files is None:
        return overrides
    required = definition.required_splits(num_fewshot)
    missing = [split for split in required if split not in files]
    if missing:
        raise DataUnavailable(f"local data for {definition.task} lacks {', '.join(missing)}")
    used = {split: str(path) for split, path in files.items() if split in definition.splits.values()}
    overrides.update({
        "dataset_path": "json",
        "dataset_name": None,
        # a private datasets cache: the generated paths change every run and must not pile up in ~/.cache
        "dataset_kwargs": {"data_files": used, "cache_dir": str(folder / "datasets-cache")},
    })
    for key in SPLIT_KEYS:
        split = definition.splits.get(key)
        if split and split not in used:
            overrides[key] = None  # e.g. a zero-shot run's training split, not exported
    return overrides


def _write_group(spec: TaskSpec, plan: DataPlan, num_fewshot: int, folder: Path) -> GeneratedConfigs:
    definitions = task_definitions(spec)
    by_subject = {d.dataset_name: d for d in definitions}
    if plan.kind == "local":
        subject_files = _split_by_subject(spec, plan.files, definitions[0], num_fewshot, folder)
        unknown = sorted(set(subject_files) - set(by_subject))
        if unknown:
            raise ValueError(f"{plan.location}: subjects unknown to lm-eval's {spec.name}: {', '.join(unknown)}")
        chosen = [by_subject[s] for s in sorted(subject_files)]
    else:
        subject_files, chosen = {}, list(definitions)
    if plan.kind == "local" and not chosen:
        raise DataUnavailable(f"{plan.location} has no rows for any {spec.name} subject")
    first_overrides: dict[str, Any] = {}
    for definition in chosen:
        files = subject_files.get(definition.dataset_name) if plan.kind == "local" else None
        overrides = _overrides(definition, files, num_fewshot, folder)
        _write_yaml(folder / f"{definition.task}.yaml", {"include": str(definition.yaml_path), **overrides})
        first_overrides = first_overrides or overrides
    group = {
        "group": spec.name,
        "task": [d.task for d in chosen],
        "aggregate_metric_list": [{"metric": m, "weight_by_size": True} for m in spec.metrics],
        "metadata": {"version": 2},
    }
    _write_yaml(folder / f"_{spec.name}_group.yaml", group)
    return GeneratedConfigs(folder=folder, load_name=spec.name, subtasks=group["task"], overrides=first_overrides)


def _split_by_subject(spec: TaskSpec, files: dict[str, Path], definition: TaskDefinition, num_fewshot: int,
                      folder: Path) -> dict[str, dict[str, Path]]:
    """``<split>.jsonl`` with a subject column -> ``folder/data/<subject>/<split>.jsonl``; subjects with eval rows.

    A subject with fewer few-shot rows than shots is an error: lm-eval would quietly use fewer.
    """
    required = definition.required_splits(num_fewshot)
    rows: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for split in required:
        with files[split].open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    subject = json.loads(line)[MMLU_SUBJECT_FIELD]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ValueError(f"{files[split]}:{number}: expected a JSON object with a "
                                     f"'{MMLU_SUBJECT_FIELD}' field") from None
                rows[subject][split].append(line.rstrip("\n"))
    eval_split = required[0]
    result: dict[str, dict[str, Path]] = {}
    for subject, splits in sorted(rows.items()):
        if not splits.get(eval_split):
            continue
        shots = len(splits.get(definition.fewshot_split, []))
        if num_fewshot > 0 and definition.fewshot_split != eval_split and shots < num_fewshot:
            raise ValueError(f"{spec.name} subject {subject!r} has {shots} rows in {definition.fewshot_split}.jsonl; "
                             f"{num_fewshot}-shot prompts need {num_fewshot}")
        result[subject] = {}
        for split, lines in splits.items():
            path = folder / "data" / subject / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            result[subject][split] = path
    return result


def _write_yaml(path: Path, content: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(content, sort_keys=False, allow_unicode=True), encoding="utf-8")
