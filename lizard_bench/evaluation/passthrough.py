"""Any task lm-eval knows, beyond the curated catalog: ``ruler``, ``swde``, ``lambada_openai``, users' own YAML.

The curated tasks (``tasks/lm_eval_tasks.py``) carry what the catalog adds: offline
``--data-dir`` exports and the paper's metric. Every other name lm-eval's ``TaskManager``
indexes (its bundled tasks, groups and tags, plus ``lm_eval_include_path`` folders of the
user's YAML) runs as an :class:`LmEvalPassthrough`: lm-eval's own definition and data
loading, scored through the same :class:`~lizard_bench.evaluation.lm.LizardLM` bridge, so a
record means what lm-eval's CLI would print. Indexing all of lm-eval's tasks takes 10-30 s,
so it happens only when a run names a task the registry does not know.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from lizard_bench.config import SuiteConfig
from lizard_bench.errors import first_line
from lizard_bench.evaluation.lm_eval_task import LmEvalOptions, lm_eval_suite_options
from lizard_bench.tasks import MetricValue, ModelHandle, Task, TaskContext, TaskUnavailable
from lizard_bench.typed_config import at_least

# lm-eval's defaults when a task's YAML lists no metrics (lm_eval.api.task: by output type)
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "loglikelihood": ("perplexity", "acc"),
    "loglikelihood_rolling": ("word_perplexity", "byte_perplexity", "bits_per_byte"),
    "multiple_choice": ("acc", "acc_norm"),
    "generate_until": ("exact_match",),
}
LOWER_IS_BETTER = ("perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte")


@functools.cache
def task_manager(include_path: str | None) -> Any:
    """lm-eval's index of its bundled tasks plus ``include_path`` (built once per process: it is slow)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path)


def included_task_names(include_path: str) -> list[str]:
    """The names the YAMLs under ``include_path`` define (and lm-eval's bundled tasks do not)."""
    from lm_eval.tasks import TaskManager

    return sorted(TaskManager(include_path=include_path, include_defaults=False).all_tasks)


def find_lm_eval_task(name: str, include_path: str | None) -> LmEvalPassthrough | None:
    """The pass-through task for ``name`` when lm-eval indexes it (with ``include_path``), else None."""
    entry = task_manager(include_path).task_index.get(name)
    return None if entry is None else LmEvalPassthrough(name, include_path, entry.cfg or {})


@dataclass(frozen=True)
class PassthroughOptions(LmEvalOptions):
    num_fewshot: int | None = field(default=None, metadata=at_least(0))  # None: the task's own, as lm-eval's CLI


class LmEvalPassthrough(Task):
    """One lm-eval task, group or tag by its lm-eval name, evaluated as lm-eval defines it."""

    suite = "lm_eval"
    data_source = "lm-eval's own loading (the hub, its local cache, or the files a local YAML names)"
    Options = PassthroughOptions

    def __init__(self, name: str, include_path: str | None, task_config: dict[str, Any]) -> None:
        self.name = name
        self.label = name
        self.include_path = include_path
        self.description = f"lm-eval's {name!r} ({task_config.get('task', name)}), its own definition and data"
        # declared up front from the YAML (for records of a run that could not start); the run's own
        # metric names and directions replace them, since filters add names like 'exact_match,strict-match'
        self.metrics = _declared_metrics(task_config)

    def suite_options(self, config: SuiteConfig) -> PassthroughOptions:
        return lm_eval_suite_options(self, config)

    def run(self, handle: ModelHandle, context: TaskContext) -> list[MetricValue]:
        from lm_eval.evaluator import evaluate

        from lizard_bench.evaluation.harness import bootstrap_in_process, lm_eval_seed, metric_rows_of
        from lizard_bench.evaluation.lm import LizardLM

        options = context.options(self)
        lm = LizardLM.from_handle(handle, batch_size=options.batch_size, max_length=options.max_length,
                                  max_gen_toks=options.max_gen_toks, add_bos_token=options.add_bos_token)
        lm_eval_seed(context.seed)
        try:
            loaded = task_manager(self.include_path).load([self.name])
        except (ConnectionError, OSError) as exc:  # offline without a cached copy, or a missing local file
            raise TaskUnavailable(f"lm-eval could not load {self.name!r}: {first_line(exc)}") from None
        for task in loaded["tasks"].values():
            if options.num_fewshot is not None:
                task.set_config(key="num_fewshot", value=options.num_fewshot)
            elif task.get_config("num_fewshot") is None:
                task.set_config(key="num_fewshot", value=0)
            task.set_fewshot_seed(seed=context.seed)
        with bootstrap_in_process():
            results = evaluate(lm=lm, task_dict=loaded, limit=context.limit, bootstrap_iters=options.bootstrap_iters,
                               log_samples=options.log_samples)
        directions = results.get("higher_is_better", {}).get(self.name, {})
        rows = metric_rows_of(results, self.name)
        self.metrics = {metric: _direction(metric, directions) for metric, _, _ in rows}
        details = {"lm_eval_task": self.name, "include_path": self.include_path, "limit": context.limit,
                   "num_fewshot": options.num_fewshot, "scoring": lm.settings(), **lm.truncation_summary(),
                   "examples": sum(int(n.get("effective", 0)) for n in results.get("n-samples", {}).values())}
        if options.log_samples:
            details["samples_file"] = str(context.save_samples(handle, self.name, results.get("samples", {})))
        return [MetricValue(metric, value, stderr, details, n=details["examples"] or None)
                for metric, value, stderr in rows]


def _declared_metrics(task_config: dict[str, Any]) -> dict[str, str]:
    listed = task_config.get("metric_list") or task_config.get("aggregate_metric_list") or []
    metrics = {}
    for item in listed:
        if isinstance(item, dict) and isinstance(item.get("metric"), str):
            higher = item.get("higher_is_better", item["metric"] not in LOWER_IS_BETTER)
            metrics[item["metric"]] = "higher" if higher else "lower"
    if not metrics:
        for metric in DEFAULT_METRICS.get(task_config.get("output_type", ""), ("acc",)):
            metrics[metric] = "lower" if metric in LOWER_IS_BETTER else "higher"
    return metrics


def _direction(metric: str, directions: dict[str, Any]) -> str:
    base = metric.partition(",")[0]
    higher = directions.get(base)
    if higher is None:
        higher = base not in LOWER_IS_BETTER
    return "higher" if higher else "lower"
