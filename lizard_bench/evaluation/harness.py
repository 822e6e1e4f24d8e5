"""Running one task through lm-eval's own machinery and turning its results into metric values.

We call ``lm_eval.evaluator.evaluate`` on tasks loaded by a ``TaskManager`` over generated
configs (see :mod:`task_configs`), rather than ``simple_evaluate``: that wrapper's extra work
(environment probing, a ``git`` subprocess, batch-size arguments it ignores for model objects)
adds nothing here, since the runner records provenance and the wrapper holds the batch size.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import os
import random
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lizard_bench.errors import first_line
from lizard_bench.evaluation.catalog import TaskSpec
from lizard_bench.evaluation.data_sources import DataPlan, DataUnavailable
from lizard_bench.evaluation.definitions import primary_definition, task_definitions
from lizard_bench.evaluation.lm import LizardLM
from lizard_bench.evaluation.task_configs import GeneratedConfigs, write_task_configs


@dataclass
class Evaluation:
    """lm-eval's results dict for one task, with what was run to get it."""

    results: dict[str, Any]
    generated: GeneratedConfigs
    plan: DataPlan
    num_fewshot: int
    limit: int | None
    bootstrap_iters: int
    seed: int


def evaluate_task(lm: LizardLM, spec: TaskSpec, plan: DataPlan, *, num_fewshot: int, limit: int | None,
                  seed: int, bootstrap_iters: int, log_samples: bool = False) -> Evaluation:
    """Evaluate ``spec`` with lm-eval on ``plan``'s data; raises :class:`DataUnavailable` if the hub fails."""
    from lm_eval.evaluator import evaluate
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory(prefix=f"lizard-bench-{spec.name}-") as folder:
        generated = write_task_configs(spec, plan, num_fewshot, Path(folder))
        manager = TaskManager(include_path=folder, include_defaults=False)
        if generated.load_name not in manager.all_tasks:
            raise RuntimeError(f"lm-eval did not index the generated config for {spec.name!r} in {folder}")
        lm_eval_seed(seed)
        try:
            loaded = manager.load([generated.load_name])
        except ConnectionError as exc:  # the hub answered the probe but not the download
            raise DataUnavailable(f"could not download {plan.location}: {first_line(exc)}") from None
        for task in loaded["tasks"].values():
            task.set_fewshot_seed(seed=seed)
        with bootstrap_in_process():
            results = evaluate(lm=lm, task_dict=loaded, limit=limit, bootstrap_iters=bootstrap_iters,
                               log_samples=log_samples)
    return Evaluation(results=results, generated=generated, plan=plan, num_fewshot=num_fewshot, limit=limit,
                      bootstrap_iters=bootstrap_iters, seed=seed)


def metric_rows(evaluation: Evaluation, spec: TaskSpec) -> list[tuple[str, float, float | None]]:
    """(metric, value, stderr) for every metric lm-eval reported for the task (or group)."""
    return metric_rows_of(evaluation.results, spec.name)


def metric_rows_of(results: dict[str, Any], name: str) -> list[tuple[str, float, float | None]]:
    """(metric, value, stderr) for every metric of ``name`` in lm-eval's results dict."""
    entry = results["results"].get(name)
    if entry is None:
        raise RuntimeError(f"lm-eval returned no results for {name!r}")
    rows = []
    for key, value in entry.items():
        metric, _, filter_name = key.partition(",")
        if not filter_name or metric.endswith("_stderr") or not isinstance(value, (int, float)):
            continue
        name = metric if filter_name == "none" else f"{metric},{filter_name}"
        if not math.isfinite(value):
            raise ValueError(f"lm-eval reported {metric}={value} for {name}")
        rows.append((name, float(value), _stderr(entry.get(f"{metric}_stderr,{filter_name}"))))
    return rows


def shared_details(evaluation: Evaluation, spec: TaskSpec, lm: LizardLM) -> dict[str, Any]:
    """What every record of the task carries: versions, shots, examples, data source, scoring settings."""
    results = evaluation.results
    leaves = evaluation.generated.subtasks or [spec.name]
    samples = [results.get("n-samples", {}).get(name, {}) for name in leaves]
    definition = primary_definition(spec)
    details: dict[str, Any] = {
        "lm_eval_version": importlib.metadata.version("lm_eval"),
        "lm_eval_task": spec.name,
        "task_definition": _definition_label(spec),
        "task_version": results.get("versions", {}).get(spec.name, definition.version),
        "num_fewshot": evaluation.num_fewshot,
        "examples": sum(int(s.get("effective", 0)) for s in samples),
        "examples_available": sum(int(s.get("original", 0)) for s in samples),
        "limit": evaluation.limit,
        "split": definition.eval_split,
        "seed": evaluation.seed,
        "bootstrap_iters": evaluation.bootstrap_iters,
        **evaluation.plan.details(),
        "scoring": lm.settings(),
        **lm.truncation_summary(),
    }
    if spec.is_group:
        details.update(_group_details(evaluation, spec, leaves))
    return details


def _group_details(evaluation: Evaluation, spec: TaskSpec, leaves: list[str]) -> dict[str, Any]:
    results = evaluation.results
    per_subtask = {}
    for name in leaves:
        entry = results["results"].get(name, {})
        per_subtask[name.removeprefix(f"{spec.name}_")] = {
            "examples": int(results.get("n-samples", {}).get(name, {}).get("effective", 0)),
            **{key.partition(",")[0]: float(value) for key, value in entry.items()
               if "," in key and isinstance(value, (int, float)) and math.isfinite(value)},
        }
    return {
        "subtasks": len(leaves),
        "subtasks_defined": len(task_definitions(spec)),
        "complete": len(leaves) == len(task_definitions(spec)),
        "aggregation": "mean over subtasks weighted by examples",
        "limit_applies_to": "each subtask",
        "per_subtask": per_subtask,
    }


def _definition_label(spec: TaskSpec) -> str:
    if spec.shipped:
        return f"lizard_bench/evaluation/shipped_yaml/{spec.definition.removeprefix('shipped:')}"
    return f"lm_eval/tasks/{spec.definition}"


def _stderr(value: Any) -> float | None:
    """lm-eval writes 'N/A' (or nothing) where it has no standard error."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def lm_eval_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def bootstrap_in_process() -> Iterator[None]:
    """lm-eval bootstraps F1/MCC stderr in a process pool unless DISABLE_MULTIPROC is set.

    Forking a process that holds a model (possibly on a GPU) is fragile and buys little, so
    the bootstrap runs in this process; the previous setting is restored afterwards.
    """
    previous = os.environ.get("DISABLE_MULTIPROC")
    os.environ["DISABLE_MULTIPROC"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DISABLE_MULTIPROC", None)
        else:
            os.environ["DISABLE_MULTIPROC"] = previous
