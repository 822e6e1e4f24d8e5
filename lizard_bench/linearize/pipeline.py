"""From a teacher to a ready linearized model: reuse a matching checkpoint, or linearize and train.

The runner calls :func:`prepare_linearized` once per (model, variant), with a checkpoint
folder named after what determines the checkpoint (:func:`checkpoint_fingerprint`: base
weights by content hash, linearization config, training recipe), so a changed setting gets
a new folder and never overwrites a finished checkpoint. A finished checkpoint is reused;
otherwise the model is linearized and trained (stage 1 attention transfer, then stage 2 LoRA
alignment, either skipped by a zero budget), resuming from the last training-state checkpoint if an earlier attempt was
interrupted, and saved. The returned summary says what it cost and what it achieved.

Under ``accelerate launch`` every process calls this function alike; only the main process
writes files, and the checkpoint directory must be shared by all of them.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lizard_bench.data.corpus import Corpus, CorpusError
from lizard_bench.linearize.checkpoint import (
    CheckpointError,
    base_model_hash,
    load_linearized,
    read_manifest,
    save_linearized,
)
from lizard_bench.linearize.config import LinearizeConfig, method_config
from lizard_bench.linearize.convert import linearize, lizard_modules, lizard_parameters
from lizard_bench.linearize.gates import head_half_lives
from lizard_bench.linearize.teacher_init import initialise_from_teacher
from lizard_bench.linearize.training.config import StageConfig, TrainConfig, fingerprint_hash
from lizard_bench.linearize.training.data import TokenWindows, load_training_corpus
from lizard_bench.linearize.training.loop import StepInfo, make_accelerator, run_stage
from lizard_bench.linearize.training.lora import attach_lora
from lizard_bench.linearize.training.lora import merge_lora as merge_adapters
from lizard_bench.linearize.training.sharding import is_sharded
from lizard_bench.linearize.training.stages import Alignment, AttentionTransfer, Stage

logger = logging.getLogger(__name__)

TRAIN_STATE_DIR = "train_state"


@dataclass
class PreparedVariant:
    """A linearized model ready to evaluate, with where it came from and what training did."""

    model: nn.Module
    config: LinearizeConfig
    checkpoint_dir: Path | None  # None: nothing was learned, so nothing is stored (the layer is its config)
    base_hash: str
    from_checkpoint: bool  # True: a finished checkpoint was loaded and nothing was trained
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)  # per stage: steps, tokens, wall_s, start/end
    teacher_lm_loss: float | None = None  # held-out LM loss of the teacher (from stage 1's evaluation)
    sharded: bool = False  # trained under FSDP2: ``model`` is split across processes; evaluate from the checkpoint

    def provenance(self) -> dict[str, Any]:
        """What every record of the variant carries: the method and where its weights came from."""
        return {"checkpoint_dir": self.checkpoint_dir and str(self.checkpoint_dir), "base_sha256": self.base_hash,
                "from_checkpoint": self.from_checkpoint, "method": self.config.method}

    def summary(self) -> dict[str, Any]:
        """JSON-ready, for result records."""
        return {
            "checkpoint_dir": self.checkpoint_dir and str(self.checkpoint_dir), "base_sha256": self.base_hash,
            "from_checkpoint": self.from_checkpoint, "linearize_config": self.config.to_dict(),
            "stages": self.stages, "teacher_lm_loss": self.teacher_lm_loss,
            "gate_half_lives": None if self.sharded else gate_half_lives(self.model),
        }


def gate_half_lives(model: nn.Module) -> dict[str, list[float]] | None:
    """Per layer, each head's memory half-life in tokens from its gate bias, as trained (None: no such gate).

    Why: a gate whose biases stayed near their start remembers a few hundred tokens at most, whatever the
    training windows; this is where a reader sees whether training moved them.
    """
    lives = {str(module.layer_idx): head_half_lives(module.gate) for module in lizard_modules(model)
             if hasattr(module, "gate")}
    lives = {layer: heads for layer, heads in lives.items() if heads is not None}
    return lives or None


def describe_half_lives(lives: dict[str, list[float]] | None) -> str:
    """One line: the shortest, median and longest head half-life over all layers."""
    if not lives:
        return "no per-head gate bias"
    every = sorted(life for heads in lives.values() for life in heads)
    return (f"gate half-lives {every[0]:.0f} / {every[len(every) // 2]:.0f} / {every[-1]:.0f} tokens "
            f"(shortest / median / longest of {len(every)} heads)")


def checkpoint_fingerprint(base_hash: str, config: LinearizeConfig, train: TrainConfig) -> str:
    """What determines a checkpoint: the base weights (their hash covers the dtype), the method config, the recipe.

    ``train.corpus`` must already be the corpus's name (see :func:`prepare_linearized`).
    """
    return fingerprint_hash({"base_sha256": base_hash, "linearize": config.to_dict()}, train.fingerprint())


def prepare_linearized(
    model: nn.Module, tokenizer, *, model_name: str, method: str, options: dict[str, Any], train: TrainConfig,
    corpus: Corpus | str | None, checkpoint_dir: Path, log_dir: Path | None, kernel_backend: str | None = None,
    merge_lora: bool = True, on_step: Callable[[StepInfo], None] | None = None, progress: bool = True,
    retrain: bool = False, base_hash: str | None = None,
) -> PreparedVariant:
    """Turn the teacher ``model`` into its linearized variant in place (see the module docstring).

    ``corpus`` defaults to ``train.corpus``; ``log_dir`` receives ``stage1.jsonl`` and
    ``stage2.jsonl``; ``merge_lora`` folds the stage-2 adapters into the projections after
    saving them; ``on_step`` is called after every optimizer step (a hook for tests and
    progress reporting). A ``checkpoint_dir`` holding another checkpoint (other base weights,
    method or recipe) is refused, never replaced; ``retrain`` trains from scratch over a
    matching one. ``base_hash`` skips hashing the teacher again when the caller has.
    """
    checkpoint_dir = Path(checkpoint_dir)
    config = method_config(method, **options)
    corpus = corpus if corpus is not None else train.corpus
    # the corpus actually used identifies the run; a spec's name is the spec, so a finished checkpoint
    # is found without reading (or downloading) the corpus
    train = dataclasses.replace(train, corpus=corpus.name if isinstance(corpus, Corpus) else corpus)
    base_hash = base_hash or base_model_hash(model)
    identity = {"base_sha256": base_hash, "linearize": config.to_dict()}
    train_fingerprint = checkpoint_fingerprint(base_hash, config, train)

    manifest = read_manifest(checkpoint_dir)
    if manifest is not None and manifest.get("train_fingerprint") != train_fingerprint:
        raise CheckpointError(
            f"{checkpoint_dir} holds a checkpoint of another base model, method or recipe "
            f"(fingerprint {str(manifest.get('train_fingerprint'))[:12]}, this one {train_fingerprint[:12]}): "
            "pass another checkpoint folder; checkpoints are never replaced implicitly"
        )
    if manifest is not None and not retrain:
        load_linearized(model, checkpoint_dir, kernel_backend=kernel_backend, merge=merge_lora, base_hash=base_hash)
        model.eval()
        summary = manifest.get("summary") or {}
        return PreparedVariant(model, config, checkpoint_dir, base_hash, True, summary.get("stages", {}),
                               summary.get("teacher_lm_loss"))
    if retrain:
        logger.warning("retraining %s from scratch, as asked: its checkpoint is replaced", checkpoint_dir)
        shutil.rmtree(checkpoint_dir / TRAIN_STATE_DIR, ignore_errors=True)

    with torch.random.fork_rng(devices=[]):  # the added parameters' initial values depend on the seed only
        torch.manual_seed(train.seed)
        linearize(model, method, kernel_backend=kernel_backend, **options)

    accelerator = make_accelerator(train)  # process count, main process, barriers
    sharded = is_sharded(accelerator)
    transfer = AttentionTransfer(layerwise_scale=1 / train.stage1.grad_accum if sharded else None,
                                 before_o_proj=train.distill_target == "heads")
    alignment = Alignment(train.lora, seed=train.seed, train_attention=train.stage2_trains_attention)
    plan: list[tuple[Stage, StageConfig]] = [(transfer, train.stage1), (alignment, train.stage2)]
    plan = [(stage, budget) for stage, budget in plan
            if budget.optimizer_steps(train.seq_len, accelerator.num_processes) > 0]
    stages: dict[str, dict[str, Any]] = {}
    if not lizard_parameters(model) and plan and isinstance(plan[0][0], AttentionTransfer):
        plan = plan[1:]  # nothing of the layer's own to learn (swa): AdamW would get an empty parameter list
        stages[transfer.name] = {"skipped": "the linearized layer adds no parameter to train"}
    teacher_loss = None
    if sharded and any(isinstance(stage, Alignment) for stage, _ in plan):
        attach_lora(model, train.lora, seed=train.seed)  # FSDP2 shards once: adapters must exist from the start
    if plan:
        corpus = load_training_corpus(corpus)
        windows = TokenWindows.from_corpus(corpus, tokenizer, train.seq_len, split="train")
        eval_batches = _heldout_batches(corpus, tokenizer, train.seq_len, train.eval_windows)
        logger.info("training on %s: %d windows of %d tokens", corpus.name, len(windows), train.seq_len)
        # before any resume (a resumed state then overwrites these values) and before sharding
        initialise_from_teacher(model, windows[0][None].to(next(model.parameters()).device))
        for stage, budget in plan:
            result = run_stage(
                model, stage, windows=windows, eval_batches=eval_batches, budget=budget, train=train,
                state_dir=checkpoint_dir / TRAIN_STATE_DIR / stage.name,
                fingerprint=fingerprint_hash(identity, train.stage_fingerprint(stage.name)),
                log_path=Path(log_dir) / f"{stage.name}.jsonl" if log_dir is not None else None,
                on_step=on_step, progress=progress,
            )
            stages[stage.name] = result.summary()
            teacher_loss = result.eval_start.get("teacher_lm_loss", teacher_loss)

    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if not lizard_parameters(model) and not any(isinstance(stage, Alignment) for stage, _ in plan):
        model.eval()  # nothing was learned (swa): the layer is rebuilt from its config, no checkpoint is written
        return PreparedVariant(model, config, None, base_hash, False, stages, teacher_loss)
    if accelerator.is_main_process:
        save_linearized(
            model, checkpoint_dir, base_name=model_name, base_hash=base_hash, config=config,
            train_config=train.to_dict(), train_fingerprint=train_fingerprint, stages=list(stages),
            summary={"stages": stages, "teacher_lm_loss": teacher_loss},
        )
        shutil.rmtree(checkpoint_dir / TRAIN_STATE_DIR, ignore_errors=True)
    accelerator.wait_for_everyone()
    if merge_lora and not sharded:
        merge_adapters(model)
    model.eval()
    if not sharded:
        logger.info("%s trained: %s", model_name, describe_half_lives(gate_half_lives(model)))
    return PreparedVariant(model, config, checkpoint_dir, base_hash, False, stages, teacher_loss, sharded=sharded)


def _heldout_batches(corpus: Corpus, tokenizer, seq_len: int, count: int) -> torch.Tensor | None:
    """The first ``count`` held-out windows ([count, seq_len]), or None when the held-out split is too small."""
    if count <= 0:
        return None
    try:
        windows = TokenWindows.from_corpus(corpus, tokenizer, seq_len, split="heldout")
    except CorpusError:
        logger.warning("corpus %s has no held-out window of %d tokens: stages report no start/end scores",
                       corpus.name, seq_len)
        return None
    return windows.windows[:count].long()
