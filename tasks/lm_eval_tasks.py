"""GLUE, SuperGLUE and the Lizard paper's Table 1 tasks, run through lm-eval's own definitions.

One registered task per entry of :data:`lizard_bench.evaluation.catalog.TASK_SPECS`; the
bridge to lm-eval (model wrapper, local data, generated configs) is ``lizard_bench.evaluation``.
"""

from __future__ import annotations

from lizard_bench.evaluation.catalog import TASK_SPECS
from lizard_bench.evaluation.lm_eval_task import LmEvalTask, task_class
from lizard_bench.tasks import register_task

LM_EVAL_TASKS: dict[str, type[LmEvalTask]] = {
    spec.name: register_task(task_class(spec, module=__name__)) for spec in TASK_SPECS
}
