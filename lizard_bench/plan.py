"""``lizard-bench run --dry-run``: what a suite would do, printed before any model loads.

A suite such as ``paper-table1`` costs GPU-days; a missing dataset or a gated model found
after training would waste them. The plan lists every (model, variant, task) unit and
whether its data is here, every model and whether its files are, each linearized variant's
checkpoint (found, or to be trained, with the token budget per stage) and a rough time
estimate from the device and the model's size. Checkpoints are matched on their method
and recipe only: whether the base weights match is known once the weights are hashed.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lizard_bench.config import SuiteConfig
from lizard_bench.errors import InputError
from lizard_bench.models.inspect import inspect_model
from lizard_bench.models.locate import locate_model
from lizard_bench.preflight import (
    DAMAGED_CHECKPOINT,
    check_model,
    check_settings,
    checked_corpus,
    input_lengths,
    reads_corpus,
)
from lizard_bench.variants import matching_checkpoints, needs_checkpoint, variant_training

# Rough processing rates in (tokens × parameters) per second. CPU: this project's default run on 2 cores
# (SmolLM2-135M trained 3 × 82K tokens in 15 min; evaluated in about 20 min, generation included). GPU: an
# H100-class device at about a third of its bf16 peak (6 FLOP per token-parameter to train, 2 to score).
# Estimates only, and printed as such.
RATES = {"cpu": {"train": 3.7e10, "score": 5e10}, "cuda": {"train": 5e13, "score": 1.5e14}}
# Approximate scored tokens per unit when the task does not say (lm-eval tasks: public split sizes × choices ×
# prompt length, rounded); a long-context probe's own lengths are used where it has them.
LM_EVAL_TOKENS = {
    "cola": 3e4, "sst2": 5e4, "mrpc": 6e4, "qqp": 5e6, "mnli": 3e6, "mnli_mismatch": 3e6, "qnli": 2e6, "rte": 8e4,
    "wnli": 2e4, "boolq": 1.5e6, "cb": 3e4, "copa": 1e4, "multirc": 5e6, "record": 2e7, "sglue_rte": 8e4,
    "wic": 6e4, "wsc": 2e4, "piqa": 2e5, "arc_easy": 5e5, "arc_challenge": 3e5, "hellaswag": 4e6,
    "winogrande": 1e5, "mmlu": 4e7,
}
DEFAULT_TASK_TOKENS = 1e6


@dataclass
class Unit:
    model: str
    variant: str
    task: str
    data: str  # 'available' or why not
    available: bool


@dataclass
class Plan:
    """Everything ``--dry-run`` prints; ``problems`` non-empty means the run would miss something it needs."""

    units: list[Unit] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)  # name -> 'ok: ...' or the problem
    checkpoints: list[tuple[str, str, Path | None]] = field(default_factory=list)  # model, variant, found folder
    training: list[str] = field(default_factory=list)
    corpora: list[str] = field(default_factory=list)
    training_tokens: int = 0  # per linearized variant trained, both stages
    estimate: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # valid, but not what a setting suggests (preflight's)
    problems: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = ["models:", *(f"  {name}: {status}" for name, status in self.models.items()),
                 "corpora:", *(f"  {line}" for line in self.corpora),
                 f"units ({len(self.units)}):"]
        width = max((len(f"{u.model}  {u.variant}  {u.task}") for u in self.units), default=0)
        lines += [f"  {f'{u.model}  {u.variant}  {u.task}':{width}s}  data: "
                  + ("available" if u.available else "MISSING (below)") for u in self.units]
        if self.checkpoints:
            lines += ["checkpoints:", *(
                f"  {model}  {variant}: " + (f"found {found} (reused if the base weights' hash matches)" if found
                                             else "will be trained")
                for model, variant, found in self.checkpoints)]
        if self.training:
            lines += ["training budget:", *(f"  {line}" for line in self.training)]
        lines += ["time (a rough estimate from the device and model sizes, not a measurement):",
                  *(f"  {line}" for line in self.estimate)]
        if self.warnings:
            lines += ["warnings:", *(f"  {warning}" for warning in dict.fromkeys(self.warnings))]
        lines.append(f"missing ({len(self.problems)}):" if self.problems else "nothing missing")
        lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines)


def plan_run(config: SuiteConfig) -> Plan:
    """The plan of ``config``; raises an InputError only for a suite that is wrong in itself (bad names, values)."""
    settings = check_settings(config)
    plan = Plan(warnings=list(settings.warnings))
    facts = {}
    lengths = input_lengths(config, settings.tasks, settings.train)
    for name in config.models:
        try:
            facts[name] = inspect_model(locate_model(name))
            plan.warnings += check_model(name, facts[name], linearize=settings.train is not None, lengths=lengths)
            size = facts[name].parameters
            plan.models[name] = f"ok ({facts[name].model_type}, {_count(size) if size else 'size unknown'})"
        except InputError as exc:
            plan.models[name] = f"MISSING: {exc}"
            plan.problems.append(f"model {name}: {exc}")
    _plan_corpora(plan, config, settings)
    for model in config.models:
        for spec in settings.variants:
            for task in settings.tasks:
                if not config.runs(task.name, spec.name):
                    continue
                status = task.data_status(config)
                plan.units.append(Unit(model, spec.name, task.name, status or "available", status is None))
                if status is not None:
                    plan.problems.append(f"{task.name}: {status}")
    plan.problems = list(dict.fromkeys(plan.problems))
    if settings.train is not None:
        _plan_training(plan, config, settings)
    _estimate(plan, config, settings, facts)
    return plan


def _plan_corpora(plan: Plan, config: SuiteConfig, settings) -> None:
    wanted = []
    if reads_corpus(config, settings.tasks):
        wanted.append(("corpus", config.corpus, "heldout"))
    if settings.train is not None:
        wanted.append(("training corpus", settings.train.corpus, "train"))
    for label, spec, split in wanted:
        if spec.startswith("hf:"):
            plan.corpora.append(f"{label} {spec}: a hub dataset, read when the run starts")
            continue
        try:
            corpus = checked_corpus(spec, label, split=split)
            plan.corpora.append(f"{label} {spec}: {len(corpus.documents)} documents")
        except InputError as exc:
            plan.corpora.append(f"{label} {spec}: MISSING: {exc}")
            plan.problems.append(str(exc))


def _plan_training(plan: Plan, config: SuiteConfig, settings) -> None:
    train = settings.train
    for stage_name in ("stage1", "stage2"):
        stage = getattr(train, stage_name)
        steps = stage.optimizer_steps(train.seq_len)
        tokens = steps * train.seq_len * stage.batch_size * stage.grad_accum
        plan.training_tokens += tokens
        plan.training.append(f"{stage_name}: {steps} optimizer steps x {train.seq_len} tokens x "
                             f"{stage.batch_size * stage.grad_accum} = {_count(tokens)} tokens per variant "
                             f"(corpus {train.corpus})")
    stored = [spec for spec in settings.variants if spec.method is not None and needs_checkpoint(spec, train)]
    for model in config.models:
        for spec in stored:
            found = find_checkpoint(Path(config.results_dir), model, spec, variant_training(spec, train))
            plan.checkpoints.append((model, spec.name, found))
            if found is not None:
                _plan_checkpoint_files(plan, found)


def _plan_checkpoint_files(plan: Plan, folder: Path) -> None:
    """A found checkpoint whose weights files are cut short is a problem the run would stop on."""
    from lizard_bench.linearize.checkpoint import CheckpointError, check_checkpoint_files, read_manifest

    try:
        check_checkpoint_files(folder, read_manifest(folder) or {}, advice=DAMAGED_CHECKPOINT)
    except CheckpointError as exc:
        plan.problems.append(str(exc))


def find_checkpoint(results_dir: Path, model: str, spec, train) -> Path | None:
    """A finished checkpoint of ``spec`` whose method config and recipe match (base weights not checked)."""
    found = matching_checkpoints(results_dir, model, spec, train)
    return found[0] if found else None


def _estimate(plan: Plan, config: SuiteConfig, settings, facts: dict[str, Any]) -> None:
    rates = RATES["cuda" if settings.device.type == "cuda" else "cpu"]
    tasks = {task.name: task for task in settings.tasks}
    total = 0.0
    for model in config.models:
        size = facts[model].parameters if model in facts and facts[model].parameters else None
        guessed = size is None
        size = size or size_from_name(model)
        if size is None:
            plan.estimate.append(f"{model}: size unknown, no estimate")
            continue
        to_train = sum(name == model and found is None for name, _, found in plan.checkpoints)
        seconds = to_train * plan.training_tokens * size / rates["train"]
        scored = sum(_task_tokens(config, tasks[unit.task]) for unit in plan.units if unit.model == model)
        seconds += scored * size / rates["score"]
        total += seconds
        plan.estimate.append(f"{model}: ~{_duration(seconds)} ({_count(size)} parameters"
                             f"{', guessed from its name' if guessed else ''}, on {settings.device.type})")
    plan.estimate.append(f"total: ~{_duration(total)}")


def size_from_name(model: str) -> float | None:
    """Parameters read off a name such as ``Llama-3.2-1B`` or ``SmolLM2-360M`` (for models not downloaded)."""
    found = re.findall(r"(?<![\d.])(\d+(?:\.\d+)?)([BM])(?![a-z])", model.rsplit("/", 1)[-1], flags=re.IGNORECASE)
    if not found:
        return None
    number, unit = found[-1]
    return float(number) * (1e9 if unit.upper() == "B" else 1e6)


def _task_tokens(config: SuiteConfig, task) -> float:
    """Scored tokens of one unit of ``task``, roughly (the limit caps lm-eval tasks' examples)."""
    options = asdict(task.suite_options(config))
    lengths = options.get("lengths")
    if task.name == "corpus_perplexity":
        return float(config.perplexity.max_tokens)
    if options.get("length"):  # one length, several windows (attention_reach)
        return float(options["length"] * int(options.get("windows") or 1))
    if lengths:
        cells = len(options.get("depths") or [1]) * int(options.get("trials") or options.get("windows") or 1)
        return float(sum(lengths) * cells * (int(options.get("repeats", 0)) + int(options.get("warmup", 0)) or 1))
    tokens = LM_EVAL_TOKENS.get(task.name, DEFAULT_TASK_TOKENS)
    return tokens if config.limit is None else min(tokens, config.limit * 600.0)


def _count(value: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}"
    return str(int(value))


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"
