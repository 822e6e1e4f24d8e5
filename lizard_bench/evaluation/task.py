"""The task plugin that runs one lm-eval task (see ``tasks/lm_eval_tasks.py`` for the registrations)."""

from __future__ import annotations

from typing import Any, ClassVar

from lizard_bench.config import SuiteConfig
from lizard_bench.evaluation.catalog import TaskSpec
from lizard_bench.evaluation.data_sources import DataUnavailable, plan_data
from lizard_bench.tasks import MetricValue, ModelHandle, Task, TaskContext, TaskUnavailable

# Suite YAML may set these under task_options.<task>; every lm-eval task accepts the same ones.
LM_EVAL_OPTIONS: dict[str, Any] = {
    "num_fewshot": 0,  # MMLU: 5, as in the paper
    "batch_size": 4,  # sequences per forward pass (length-sorted, left-padded)
    "max_length": None,  # tokens per forward pass; None: the model's max_position_embeddings
    "max_gen_toks": 256,
    "add_bos_token": None,  # None: as the tokenizer does by default; true/false to force
    "bootstrap_iters": 1000,  # resamples for F1/MCC standard errors (lm-eval's CLI default: 100000)
}


class LmEvalTask(Task):
    """A benchmark task whose prompts, data and metrics are lm-eval's; subclassed once per :class:`TaskSpec`."""

    spec: ClassVar[TaskSpec]

    def data_status(self, config: SuiteConfig) -> str | None:
        try:
            plan_data(self.spec, config.data_dir, self._num_fewshot(config.task_options.get(self.name, {})))
        except DataUnavailable as exc:
            return str(exc)
        return None

    def run(self, handle: ModelHandle, context: TaskContext) -> list[MetricValue]:
        from lizard_bench.evaluation.harness import evaluate_task, metric_rows, shared_details
        from lizard_bench.evaluation.lm import LizardLM

        options = context.options(self)
        num_fewshot = self._num_fewshot(options)
        try:
            plan = plan_data(self.spec, context.config.data_dir, num_fewshot)
            lm = LizardLM.from_handle(
                handle, batch_size=int(options["batch_size"]), max_length=options["max_length"],
                max_gen_toks=int(options["max_gen_toks"]), add_bos_token=options["add_bos_token"],
            )
            evaluation = evaluate_task(lm, self.spec, plan, num_fewshot=num_fewshot, limit=context.limit,
                                       seed=context.seed, bootstrap_iters=int(options["bootstrap_iters"]))
        except DataUnavailable as exc:
            raise TaskUnavailable(str(exc)) from None
        details = shared_details(evaluation, self.spec, lm)
        values = []
        for metric, value, stderr in metric_rows(evaluation, self.spec):
            values.append(MetricValue(metric, value, stderr,
                                      {**details, "paper_metric": metric == self.spec.paper_metric}))
        return values

    def _num_fewshot(self, options: dict[str, Any]) -> int:
        shots = options.get("num_fewshot", self.default_options["num_fewshot"])
        if not isinstance(shots, int) or isinstance(shots, bool) or shots < 0:
            raise ValueError(f"task_options.{self.name}.num_fewshot must be a non-negative integer, got {shots!r}")
        return shots


def task_class(spec: TaskSpec, module: str = __name__) -> type[LmEvalTask]:
    """A Task subclass for ``spec`` with the class attributes the registry reads, defined in ``module``."""
    paper = f"; the paper reports {spec.paper_metric}" if spec.paper_metric else ""
    shots = f"{spec.num_fewshot}-shot" if spec.num_fewshot else "zero-shot"
    attributes = {
        "spec": spec,
        "name": spec.name,
        "suite": spec.suite,
        "metrics": {metric: "higher" for metric in spec.metrics},
        "data_source": "--data-dir DIR/<task>/<split>.jsonl if present, else the Hugging Face hub (lm-eval's dataset)",
        "description": f"{spec.label}, {shots}, lm-eval's prompt and metrics{paper}",
        "default_options": {**LM_EVAL_OPTIONS, "num_fewshot": spec.num_fewshot},
        "__module__": module,
        "__doc__": f"{spec.label} through lm-eval ({spec.definition}).",
    }
    return type(f"LmEval_{spec.name}", (LmEvalTask,), attributes)
