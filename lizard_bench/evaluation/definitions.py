"""Reading lm-eval task YAML for what lizard-bench needs to know about the data.

Which dataset a task loads, and which split it evaluates or draws few-shot examples from,
decide what an offline user must export and what a local data folder must contain. The YAML
is read here without importing lm-eval (cheap enough for ``lizard-bench list tasks``), with
lm-eval's two extensions: ``include`` (a base file, later keys win) and ``!function``
(kept as a string: we never call the task's functions here).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lizard_bench.evaluation.catalog import TaskSpec

SPLIT_KEYS = ("training_split", "validation_split", "test_split", "fewshot_split")


@dataclass(frozen=True)
class TaskDefinition:
    """The data side of one lm-eval task: dataset and splits, as its YAML states them."""

    task: str
    yaml_path: Path
    dataset_path: str
    dataset_name: str | None
    splits: dict[str, str | None]  # SPLIT_KEYS -> split name or None
    version: Any = None

    @property
    def eval_split(self) -> str:
        """lm-eval evaluates the test split when the task names one, else the validation split."""
        split = self.splits.get("test_split") or self.splits.get("validation_split")
        if not split:
            raise ValueError(f"lm-eval task {self.task!r} names neither a test nor a validation split")
        return split

    @property
    def fewshot_split(self) -> str:
        """lm-eval's rule: fewshot_split if set, else training, else validation, else test."""
        for key in ("fewshot_split", "training_split", "validation_split", "test_split"):
            if self.splits.get(key):
                return self.splits[key]  # type: ignore[return-value]
        raise ValueError(f"lm-eval task {self.task!r} names no split at all")

    def required_splits(self, num_fewshot: int) -> list[str]:
        """Splits a run cannot do without: the evaluated one, plus the few-shot source when shots > 0."""
        needed = [self.eval_split]
        if num_fewshot > 0 and self.fewshot_split not in needed:
            needed.append(self.fewshot_split)
        return needed


class _Loader(yaml.SafeLoader):
    """A safe loader that reads lm-eval's ``!function`` tag as a plain string."""


_Loader.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")


def read_task_yaml(path: Path) -> dict[str, Any]:
    """The YAML at ``path`` with its ``include`` chain merged (included first, local keys win)."""
    with path.open() as handle:
        config = yaml.load(handle, Loader=_Loader) or {}  # noqa: S506 - SafeLoader subclass
    includes = config.pop("include", None)
    if includes is None:
        return config
    merged: dict[str, Any] = {}
    for include in includes if isinstance(includes, list) else [includes]:
        include_path = Path(include) if Path(include).is_absolute() else path.parent / include
        merged.update(read_task_yaml(include_path))
    merged.update(config)
    return merged


def definition_from_yaml(path: Path) -> TaskDefinition:
    config = read_task_yaml(path)
    return TaskDefinition(
        task=config["task"],
        yaml_path=path,
        dataset_path=config["dataset_path"],
        dataset_name=config.get("dataset_name"),
        splits={key: config.get(key) for key in SPLIT_KEYS},
        version=(config.get("metadata") or {}).get("version"),
    )


@functools.cache
def task_definitions(spec: TaskSpec) -> tuple[TaskDefinition, ...]:
    """One definition per lm-eval task behind ``spec`` (MMLU: one per subject, sorted by name)."""
    path = spec.definition_path()
    if spec.is_group:
        return tuple(definition_from_yaml(p) for p in sorted(path.glob(f"{spec.name}_*.yaml")))
    return (definition_from_yaml(path),)


def primary_definition(spec: TaskSpec) -> TaskDefinition:
    """The definition whose splits stand for the whole task (MMLU's subjects all share theirs)."""
    return task_definitions(spec)[0]
