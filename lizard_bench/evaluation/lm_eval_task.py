"""The task plugin that runs one lm-eval task (see ``tasks/lm_eval_tasks.py`` for the registrations)."""

from __future__ import annotations

from typing import Any, ClassVar

from lizard_bench.config import SuiteConfig
from lizard_bench.evaluation.catalog import TaskSpec
from lizard_bench.evaluation.data_sources import DataUnavailable, plan_data
from lizard_bench.long_context import options as check
from lizard_bench.long_context.options import OptionError
from lizard_bench.tasks import MetricValue, ModelHandle, Task, TaskContext, TaskUnavailable

# Suite YAML may set these under task_options.<task>; every lm-eval task accepts the same ones.
LM_EVAL_OPTIONS: dict[str, Any] = {
    "num_fewshot": 0,  # MMLU: 5, as in the paper
    "batch_size": 4,  # sequences per forward pass (length-sorted, left-padded)
    "max_length": None,  # tokens per forward pass; None: the model's max_position_embeddings
    "max_gen_toks": 256,
    "add_bos_token": None,  # None: as the tokenizer does by default; true/false to force
    "bootstrap_iters": 1000,  # resamples for F1/MCC standard errors (lm-eval's CLI default: 100000)
    "log_samples": False,  # keep lm-eval's per-sample outputs in results/<run-id>/samples/ (--log-samples)
}


def lm_eval_suite_options(task: Task, config: SuiteConfig) -> dict[str, Any]:
    """Defaults, then ``task_options.<task>``, then the run's ``lm_eval`` settings (``--num-fewshot`` and the
    like, which apply to every lm-eval task of the run), parsed."""
    return task.parse_options({**task.default_options, **config.task_options.get(task.name, {}), **config.lm_eval})


def lm_eval_options(task: str, options: dict[str, Any]) -> dict[str, Any]:
    """The shared lm-eval options of ``task``, each value checked (an OptionError names a wrong one)."""
    if options["add_bos_token"] not in (None, True, False):
        raise OptionError(f"{task}.add_bos_token must be true, false or null, got {options['add_bos_token']!r}")
    if not isinstance(options["log_samples"], bool):
        raise OptionError(f"{task}.log_samples must be true or false, got {options['log_samples']!r}")
    return {
        **options,
        "num_fewshot": check.non_negative_int(options, task, "num_fewshot"),
        "batch_size": check.positive_int(options, task, "batch_size"),
        "max_length": check.positive_int(options, task, "max_length", allow_none=True),
        "max_gen_toks": check.positive_int(options, task, "max_gen_toks"),
        "bootstrap_iters": check.non_negative_int(options, task, "bootstrap_iters"),
    }


class LmEvalTask(Task):
    """A benchmark task whose prompts, data and metrics are lm-eval's; subclassed once per :class:`TaskSpec`."""

    spec: ClassVar[TaskSpec]

    def data_status(self, config: SuiteConfig) -> str | None:
        try:
            plan_data(self.spec, config.data_dir, self.suite_options(config)["num_fewshot"])
        except DataUnavailable as exc:
            return str(exc)
        return None

    def suite_options(self, config: SuiteConfig) -> dict[str, Any]:
        return lm_eval_suite_options(self, config)

    def run(self, handle: ModelHandle, context: TaskContext) -> list[MetricValue]:
        from lizard_bench.evaluation.harness import evaluate_task, metric_rows, shared_details
        from lizard_bench.evaluation.lm import LizardLM

        options = context.options(self)
        num_fewshot = options["num_fewshot"]
        try:
            plan = plan_data(self.spec, context.config.data_dir, num_fewshot)
            lm = LizardLM.from_handle(
                handle, batch_size=int(options["batch_size"]), max_length=options["max_length"],
                max_gen_toks=int(options["max_gen_toks"]), add_bos_token=options["add_bos_token"],
            )
            evaluation = evaluate_task(lm, self.spec, plan, num_fewshot=num_fewshot, limit=context.limit,
                                       seed=context.seed, bootstrap_iters=int(options["bootstrap_iters"]),
                                       log_samples=options["log_samples"])
        except DataUnavailable as exc:
            raise TaskUnavailable(str(exc)) from None
        details = shared_details(evaluation, self.spec, lm)
        if options["log_samples"]:
            details["samples_file"] = str(context.save_samples(handle, self.name,
                                                               evaluation.results.get("samples", {})))
        values = []
        for metric, value, stderr in metric_rows(evaluation, self.spec):
            values.append(MetricValue(metric, value, stderr,
                                      {**details, "paper_metric": metric == self.spec.paper_metric}))
        return values

    def parse_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return lm_eval_options(self.name, options)


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
        "default_options": {**LM_EVAL_OPTIONS, "num_fewshot": spec.num_fewshot},
        "__module__": module,
        "__doc__": f"{spec.label} through lm-eval ({spec.definition}).",
    }
    return type(f"LmEval_{spec.name}", (LmEvalTask,), attributes)
