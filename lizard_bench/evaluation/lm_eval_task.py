"""The task plugin that runs one lm-eval task (see ``tasks/lm_eval_tasks.py`` for the registrations)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from lizard_bench.config import SuiteConfig
from lizard_bench.evaluation.catalog import TaskSpec
from lizard_bench.evaluation.data_sources import DataUnavailable, plan_data
from lizard_bench.tasks import MetricValue, ModelHandle, OptionError, Task, TaskContext, TaskUnavailable
from lizard_bench.typed_config import at_least, build


@dataclass(frozen=True)
class LmEvalOptions:
    """What a suite may set under task_options.<task> for every lm-eval task (and, for all of them, under lm_eval)."""

    num_fewshot: int = field(default=0, metadata=at_least(0))  # each task's default: its spec's (MMLU: 5)
    batch_size: int = field(default=4, metadata=at_least(1))  # sequences per forward pass (length-sorted, left-padded)
    # tokens per forward pass; None: the model's max_position_embeddings
    max_length: int | None = field(default=None, metadata=at_least(1))
    max_gen_toks: int = field(default=256, metadata=at_least(1))
    add_bos_token: bool | None = None  # None: as the tokenizer does by default; true/false to force
    # resamples for F1/MCC standard errors (lm-eval's CLI default: 100000)
    bootstrap_iters: int = field(default=1000, metadata=at_least(0))
    log_samples: bool = False  # keep lm-eval's per-sample outputs in results/<run-id>/samples/ (--log-samples)


def lm_eval_suite_options(task: Task, config: SuiteConfig) -> LmEvalOptions:
    """``task_options.<task>`` over the task's defaults, then the run's ``lm_eval`` settings (``--num-fewshot``
    and the like, which apply to every lm-eval task of the run), every value checked."""
    options = Task.suite_options(task, config)
    return build(task.Options, config.lm_eval, base=options, at=("lm_eval",), noun="option", error=OptionError)


class LmEvalTask(Task):
    """A benchmark task whose prompts, data and metrics are lm-eval's; subclassed once per :class:`TaskSpec`."""

    spec: ClassVar[TaskSpec]

    def data_status(self, config: SuiteConfig) -> str | None:
        try:
            plan_data(self.spec, config.data_dir, self.suite_options(config).num_fewshot)
        except DataUnavailable as exc:
            return str(exc)
        return None

    def suite_options(self, config: SuiteConfig) -> LmEvalOptions:
        return lm_eval_suite_options(self, config)

    def run(self, handle: ModelHandle, context: TaskContext) -> list[MetricValue]:
        from lizard_bench.evaluation.harness import evaluate_task, metric_rows, shared_details
        from lizard_bench.evaluation.lm import LizardLM

        options = context.options(self)
        try:
            plan = plan_data(self.spec, context.config.data_dir, options.num_fewshot)
            lm = LizardLM.from_handle(handle, batch_size=options.batch_size, max_length=options.max_length,
                                      max_gen_toks=options.max_gen_toks, add_bos_token=options.add_bos_token)
            evaluation = evaluate_task(lm, self.spec, plan, num_fewshot=options.num_fewshot, limit=context.limit,
                                       seed=context.seed, bootstrap_iters=options.bootstrap_iters,
                                       log_samples=options.log_samples)
        except DataUnavailable as exc:
            raise TaskUnavailable(str(exc)) from None
        details = shared_details(evaluation, self.spec, lm)
        if options.log_samples:
            details["samples_file"] = str(context.save_samples(handle, self.name,
                                                               evaluation.results.get("samples", {})))
        values = []
        for metric, value, stderr in metric_rows(evaluation, self.spec):
            values.append(MetricValue(metric, value, stderr,
                                      {**details, "paper_metric": metric == self.spec.paper_metric},
                                      n=details.get("examples") or None))
        return values


def task_class(spec: TaskSpec, module: str = __name__) -> type[LmEvalTask]:
    """A Task subclass for ``spec`` with the class attributes the registry reads, defined in ``module``."""
    paper = f"; the paper reports {spec.paper_metric}" if spec.paper_metric else ""
    shots = f"{spec.num_fewshot}-shot" if spec.num_fewshot else "zero-shot"
    attributes = {
        "spec": spec,
        "name": spec.name,
        "label": spec.label,
        "suite": spec.suite,
        "metrics": {metric: "higher" for metric in spec.metrics},
        "paper_metric": spec.paper_metric,
        "data_source": "--data-dir DIR/<task>/<split>.jsonl if present, else the Hugging Face hub (lm-eval's dataset)",
        "description": f"{spec.label}, {shots}, lm-eval's prompt and metrics{paper}",
        "Options": dataclasses.make_dataclass(f"{spec.name}_options", [("num_fewshot", int, field(
            default=spec.num_fewshot, metadata=at_least(0)))], bases=(LmEvalOptions,), frozen=True),
        "__module__": module,
        "__doc__": f"{spec.label} through lm-eval ({spec.definition}).",
    }
    return type(f"LmEval_{spec.name}", (LmEvalTask,), attributes)
