"""``lizard-bench train``: build a suite's linearized variants (train or reuse their checkpoints), evaluate nothing.

This is the multi-GPU entry point: ``accelerate launch -m lizard_bench.cli train --config
suite.yaml`` trains each variant under data parallel or FSDP2 on every process, and writes
the checkpoints ``lizard-bench run`` with the same suite then finds and reuses. Evaluation
stays a one-process job (see :func:`refuse_multiprocess_evaluation`): a model trained under
FSDP2 is split across the processes and only its checkpoint is whole.

Under several processes the teacher is loaded on the CPU first; the training loop moves it
to each process's device (data parallel) or shards it there (FSDP2), so no GPU ever holds a
whole copy it would not keep.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lizard_bench.config import ConfigError, SuiteConfig
from lizard_bench.kernels import select_backend
from lizard_bench.models.loading import load_model
from lizard_bench.preflight import preflight, print_warnings
from lizard_bench.variants import prepare_variant, resolve_variant, training_config


@dataclass(frozen=True)
class TrainedVariant:
    model: str
    variant: str
    checkpoint_dir: str
    reused: bool  # True: a matching checkpoint existed and nothing was trained
    stages: dict  # per stage: steps, tokens, wall_s, metric start/end
    half_lives: str = ""  # the trained gates' memory, one line (describe_half_lives)


def process_count() -> int:
    """Processes of this launch (``WORLD_SIZE``, as set by ``accelerate launch`` and ``torchrun``)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def refuse_multiprocess_evaluation() -> None:
    if process_count() > 1:
        raise ConfigError(
            "lizard-bench run evaluates in one process: train the linearized variants with "
            "'accelerate launch -m lizard_bench.cli train ...', then run 'lizard-bench run' with the same suite "
            "without accelerate launch (it reuses the checkpoints)"
        )


def train_suite(config: SuiteConfig, *, retrain: bool = False) -> list[TrainedVariant]:
    """Train (or find) the checkpoint of every linearized variant × model of ``config``; ``retrain`` replaces them."""
    specs = [resolve_variant(name, config) for name in config.variants]
    linearized = [spec for spec in specs if spec.method is not None]
    if not linearized:
        raise ConfigError(f"nothing to train: the suite's variants ({', '.join(config.variants)}) are all the "
                          "softmax teacher; add a linearized one with --variant (e.g. lizard)")
    # models, training corpus, devices, paths, existing checkpoints' files: before any model loads
    print_warnings(preflight(config, evaluate=False, retrain=retrain).warnings)
    train = training_config(config)

    from lizard_bench.linearize.pipeline import describe_half_lives
    from lizard_bench.linearize.training.loop import make_accelerator

    accelerator = make_accelerator(train)  # first, so that accelerate's process state takes its settings
    backend = select_backend(accelerator.device, None if config.kernel_backend == "auto" else config.kernel_backend)
    load_device = "cpu" if accelerator.num_processes > 1 else config.device
    trained = []
    for model_name in config.models:
        for spec in linearized:
            loaded = load_model(model_name, device=load_device, dtype=config.dtype)  # each variant from the teacher
            prepared = prepare_variant(loaded, spec, backend, config=config, model_name=model_name, run_dir=None,
                                       retrain=retrain)
            stored = str(prepared.checkpoint_dir) if prepared.checkpoint_dir else "(nothing learned: no checkpoint)"
            lives = prepared.summary()["gate_half_lives"]  # None when sharded, as summary() decides
            trained.append(TrainedVariant(model_name, spec.name, stored, prepared.from_checkpoint, prepared.stages,
                                          describe_half_lives(lives)))
            del loaded
    return trained


def trained_table(trained: list[TrainedVariant]) -> str:
    """One line per variant: where its checkpoint is, and what each stage did (start -> end of its metric)."""
    lines = []
    for item in trained:
        stages = "; ".join(
            f"{name} skipped: {s['skipped']}" if "skipped" in s else
            f"{name} {s.get('metric')} {_fmt(s.get('start'))} -> {_fmt(s.get('end'))} ({s.get('steps')} steps, "
            f"{_fmt(s.get('wall_s'))} s)" for name, s in item.stages.items()
        ) or "no training stages"
        lines.append(f"{item.model}  {item.variant}  {'reused' if item.reused else 'trained'}  "
                     f"{item.checkpoint_dir}  {stages}; {item.half_lives}")
    return "\n".join(lines)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "-"
