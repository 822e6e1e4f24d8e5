"""Which lm-eval tasks lizard-bench runs, under which names, and which metric the paper reports.

lm-eval's own task definitions (YAML under ``lm_eval/tasks``) are the reference for prompts,
splits and metrics; this table only points at them. The metric names are repeated here
because a task must declare its metrics before anything is loaded (for 'unavailable'
records and ``lizard-bench list tasks``); a test checks them against lm-eval's files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lizard_bench.errors import UnknownNameError

SHIPPED_TASKS_DIR = Path(__file__).resolve().parent / "shipped_yaml"


@dataclass(frozen=True)
class TaskSpec:
    """One benchmark task backed by an lm-eval task (or, for MMLU, a group of subject tasks)."""

    name: str  # the lizard-bench task name, also lm-eval's task (or group) name
    suite: str  # glue | superglue | paper
    definition: str  # lm-eval YAML relative to lm_eval/tasks, or 'shipped:<path>' under shipped_yaml/
    metrics: tuple[str, ...]  # every metric lm-eval reports for the task
    label: str
    paper_metric: str | None = None  # the metric the Lizard paper's Table 1 reports
    num_fewshot: int = 0
    is_group: bool = False  # MMLU: one lm-eval task per subject, aggregated by size
    export_config: str | None = None  # hub config holding every subtask's rows (MMLU: 'all', with a subject column)

    @property
    def shipped(self) -> bool:
        return self.definition.startswith("shipped:")

    def definition_path(self) -> Path:
        """The YAML that defines the task (for MMLU: the folder of per-subject YAMLs)."""
        if self.shipped:
            return SHIPPED_TASKS_DIR / self.definition.removeprefix("shipped:")
        return lm_eval_tasks_dir() / self.definition


def lm_eval_tasks_dir() -> Path:
    """lm-eval's bundled task folder, found without importing lm-eval (keeps `list tasks` fast)."""
    import importlib.util

    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("lm-eval is not installed: pip install 'lm-eval>=0.4.5'")
    return Path(next(iter(spec.submodule_search_locations))) / "tasks"


_ACC = ("acc",)
_ACC_F1 = ("acc", "f1")
_MC_NORM = ("acc", "acc_norm")

TASK_SPECS: tuple[TaskSpec, ...] = (
    # GLUE (lm-eval's 'glue' tag), zero-shot as lm-eval defines them
    TaskSpec("cola", "glue", "glue/cola/default.yaml", ("mcc",), "CoLA"),
    TaskSpec("sst2", "glue", "glue/sst2/default.yaml", _ACC, "SST-2"),
    TaskSpec("mrpc", "glue", "glue/mrpc/default.yaml", _ACC_F1, "MRPC"),
    TaskSpec("qqp", "glue", "glue/qqp/default.yaml", _ACC_F1, "QQP"),
    TaskSpec("mnli", "glue", "glue/mnli/default.yaml", _ACC, "MNLI (matched)"),
    TaskSpec("mnli_mismatch", "glue", "glue/mnli/mismatch.yaml", _ACC, "MNLI (mismatched)"),
    TaskSpec("qnli", "glue", "glue/qnli/default.yaml", _ACC, "QNLI"),
    TaskSpec("rte", "glue", "glue/rte/default.yaml", _ACC, "RTE"),
    TaskSpec("wnli", "glue", "glue/wnli/default.yaml", _ACC, "WNLI"),
    # SuperGLUE (lm-eval's 'super-glue-lm-eval-v1' tag)
    TaskSpec("boolq", "superglue", "super_glue/boolq/default.yaml", _ACC, "BoolQ"),
    TaskSpec("cb", "superglue", "super_glue/cb/default.yaml", _ACC_F1, "CB"),
    TaskSpec("copa", "superglue", "super_glue/copa/default.yaml", _ACC, "COPA"),
    TaskSpec("multirc", "superglue", "super_glue/multirc/default.yaml", _ACC, "MultiRC"),
    # lm-eval's own record imports a module transformers 5 removed: same definition, shipped here
    TaskSpec("record", "superglue", "shipped:record/default.yaml", ("f1", "em"), "ReCoRD"),
    TaskSpec("sglue_rte", "superglue", "super_glue/rte/default.yaml", _ACC, "RTE (SuperGLUE)"),
    TaskSpec("wic", "superglue", "super_glue/wic/default.yaml", _ACC, "WiC"),
    TaskSpec("wsc", "superglue", "super_glue/wsc/default.yaml", _ACC, "WSC"),
    # the Lizard paper's Table 1
    TaskSpec("piqa", "paper", "piqa/piqa.yaml", _MC_NORM, "PIQA", paper_metric="acc"),
    TaskSpec("arc_easy", "paper", "arc/arc_easy.yaml", _MC_NORM, "ARC-e", paper_metric="acc"),
    TaskSpec("arc_challenge", "paper", "arc/arc_challenge.yaml", _MC_NORM, "ARC-c", paper_metric="acc_norm"),
    TaskSpec("hellaswag", "paper", "hellaswag/hellaswag.yaml", _MC_NORM, "HellaSwag", paper_metric="acc_norm"),
    TaskSpec("winogrande", "paper", "winogrande/default.yaml", _ACC, "WinoGrande", paper_metric="acc"),
    TaskSpec("mmlu", "paper", "mmlu/default", _ACC, "MMLU", paper_metric="acc", num_fewshot=5, is_group=True,
             export_config="all"),
)

SPECS_BY_NAME: dict[str, TaskSpec] = {spec.name: spec for spec in TASK_SPECS}
SUITES: tuple[str, ...] = ("glue", "superglue", "paper")


def get_spec(name: str) -> TaskSpec:
    if name not in SPECS_BY_NAME:
        raise UnknownNameError(f"unknown lm-eval task {name!r}: choose from {', '.join(SPECS_BY_NAME)}")
    return SPECS_BY_NAME[name]


def expand_task_names(names: list[str] | None) -> list[TaskSpec]:
    """Task names or suite names (glue, superglue, paper), comma-separated or repeated; None means all."""
    if not names:
        return list(TASK_SPECS)
    chosen: list[TaskSpec] = []
    for item in (part.strip() for name in names for part in name.split(",")):
        if not item:
            continue
        picked = [s for s in TASK_SPECS if s.suite == item] if item in SUITES else [get_spec(item)]
        chosen.extend(s for s in picked if s not in chosen)
    return chosen
