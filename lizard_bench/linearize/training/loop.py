"""One training stage through ``accelerate``: the same loop on a CPU, one GPU, or many.

Run it in one process for one device, or under ``accelerate launch`` for several (the CLI's
entry point is ``lizard-bench train``): the model, optimizer, data loader and scheduler go
through ``Accelerator.prepare`` and gradients through ``accelerator.backward``. Data
parallel (DDP) covers the paper's 7B-8B teachers: the teacher is frozen, so each GPU holds
its bf16 weights (16 GB for 8B) and activations, but no teacher gradients or optimizer state
(those exist only for the few million Lizard/LoRA parameters)::

    accelerate launch --multi_gpu --num_processes 8 --mixed_precision bf16 -m lizard_bench.cli train --config S

A teacher too large for one GPU's memory trains under FSDP2: the frozen teacher is sharded,
the few trainable parameters stay replicated (see ``sharding``), and the model is sharded
once for both stages::

    accelerate launch --use_fsdp --fsdp_version 2 --fsdp_auto_wrap_policy TRANSFORMER_BASED_WRAP \
        --fsdp_transformer_layer_cls_to_wrap LlamaDecoderLayer --num_processes 8 --mixed_precision bf16 \
        -m lizard_bench.cli train --config S

FSDP1, DeepSpeed and fp16 under FSDP2 are refused with an explanation.

Budgets are counted in optimizer steps over all processes (see ``StageConfig``), and the
scheduler advances once per optimizer step (``step_scheduler_with_optimizer=False``):
accelerate's default would step it once per process, which makes the schedule depend on
how many GPUs ran it. Gradient accumulation is explicit (``no_sync`` on all micro-batches
but the last) for the same reason: nothing about the run depends on hidden counters.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, PartialState
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lizard_bench.linearize.training.config import StageConfig, TrainConfig
from lizard_bench.linearize.training.data import TokenWindows, WindowSampler
from lizard_bench.linearize.training.log import TrainingLog
from lizard_bench.linearize.training.optim import build_optimizer, build_scheduler
from lizard_bench.linearize.training.sharding import average_gradients, check_supported, is_sharded, replicate_trainable
from lizard_bench.linearize.training.stages import Stage
from lizard_bench.linearize.training.state import latest_training_state, load_training_state, save_training_state


@dataclass
class StepInfo:
    """What ``on_step`` hooks see after each optimizer step (on every process)."""

    stage: str
    step: int  # optimizer steps done, 1-based
    total_steps: int
    loss: float
    lr: float
    tokens: int
    time_s: float


@dataclass
class StageResult:
    """A finished stage: budget spent, wall time, and held-out scores before and after."""

    name: str
    metric: str
    steps: int
    tokens: int
    wall_s: float  # training time, summed over resumed sessions (evaluation excluded)
    eval_start: dict[str, float] = field(default_factory=dict)
    eval_end: dict[str, float] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)  # training loss per optimizer step
    resumed_from: int = 0  # step this session started at (0: from scratch)
    reused: bool = False  # True when a finished state was found and nothing was trained

    def summary(self) -> dict[str, Any]:
        """A compact record for run summaries: start/end metric and the first/last training losses."""
        k = min(10, max(1, len(self.losses) // 5))
        mean = (lambda xs: sum(xs) / len(xs) if xs else None)  # noqa: E731
        return {
            "steps": self.steps, "tokens": self.tokens, "wall_s": round(self.wall_s, 3), "metric": self.metric,
            "start": self.eval_start.get(self.metric), "end": self.eval_end.get(self.metric),
            "train_loss_first": mean(self.losses[:k]), "train_loss_last": mean(self.losses[-k:]),
            **{f"start_{key}": value for key, value in self.eval_start.items() if key != self.metric},
        }


def make_accelerator(train: TrainConfig) -> Accelerator:
    """The accelerator every part of a training run uses (one shared state per process, so same settings).

    accelerate keeps one state per process and refuses a second precision; in a single process
    (a Python session training two recipes one after the other) the finished run's state is
    dropped first. Under ``accelerate launch`` every process trains one recipe, so it never differs.
    """
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") != train.mixed_precision and PartialState().num_processes == 1:
        AcceleratorState._reset_state()
    accelerator = Accelerator(mixed_precision=train.mixed_precision, step_scheduler_with_optimizer=False)
    check_supported(accelerator)
    return accelerator


def run_stage(
    model: nn.Module, stage: Stage, *, windows: TokenWindows, eval_batches: torch.Tensor | None,
    budget: StageConfig, train: TrainConfig, state_dir: Path, fingerprint: str, log_path: Path | None = None,
    on_step: Callable[[StepInfo], None] | None = None, progress: bool = True,
) -> StageResult:
    """Train ``stage`` for ``budget`` on ``windows``, resuming from the newest matching state in ``state_dir``.

    ``eval_batches`` ([N, seq_len] held-out windows) are scored before the first and after the
    last step. A stage whose finished state already exists is not trained again: its
    parameters are loaded and its stored result returned.
    """
    accelerator = make_accelerator(train)
    params = stage.setup(model)
    total = budget.optimizer_steps(train.seq_len, accelerator.num_processes)
    if not is_sharded(accelerator):  # FSDP2 moves each shard to the device itself: no whole copy there
        model.to(accelerator.device)
    optimizer = build_optimizer(params, lr=budget.lr, betas=train.betas, weight_decay=train.weight_decay,
                                scalar_lr=budget.scalar_lr)
    scheduler = build_scheduler(optimizer, total, train.warmup_fraction)

    found = latest_training_state(state_dir, fingerprint)
    meta: dict[str, Any] = found[1] if found else {}
    if found:
        load_training_state(found[0], process_index=accelerator.process_index, params=params,
                            optimizer=None if meta.get("complete") else optimizer,
                            scheduler=None if meta.get("complete") else scheduler)
    if meta.get("complete"):
        stage.teardown(model)
        return _result(stage, meta, resumed_from=meta["step"], reused=True)

    start = int(meta.get("step", 0))
    per_step = budget.batch_size * budget.grad_accum * accelerator.num_processes  # windows per optimizer step
    sampler = WindowSampler(len(windows), seed=train.seed, start=start * per_step, length=(total - start) * per_step)
    loader = DataLoader(windows, batch_size=budget.batch_size, sampler=sampler)
    if is_sharded(accelerator):
        replicate_trainable(accelerator, model)
    prepared, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    log = TrainingLog(log_path if accelerator.is_main_process else None, resume_step=start)

    try:
        eval_start = meta.get("eval_start") or _evaluate(prepared, stage, eval_batches, accelerator)
        losses: list[float] = list(meta.get("losses", []))
        elapsed, began = float(meta.get("elapsed_s", 0.0)), time.perf_counter()
        tokens_per_step = per_step * train.seq_len
        batches = iter(loader)
        bar = tqdm(total=total, initial=start, desc=stage.title, unit="step", dynamic_ncols=True,
                   disable=not (progress and accelerator.is_main_process))
        with bar:
            prepared.train()
            for step in range(start + 1, total + 1):
                loss = _optimizer_step(prepared, stage, batches, budget.grad_accum, params, optimizer, accelerator,
                                       train.max_grad_norm)
                lr = scheduler.get_last_lr()[0]
                scheduler.step()
                losses.append(loss)
                info = StepInfo(stage.name, step, total, loss, lr, step * tokens_per_step,
                                elapsed + time.perf_counter() - began)
                log.write({"step": info.step, "loss": info.loss, "lr": info.lr, "tokens": info.tokens,
                           "time_s": round(info.time_s, 4)})
                bar.update(1)
                recent = losses[-10:]
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.4g}", lr=f"{lr:.2e}")
                if on_step is not None:
                    on_step(info)
                if train.checkpoint_every and step % train.checkpoint_every == 0 and step < total:
                    save_training_state(state_dir, step=step, accelerator=accelerator, params=params,
                                        optimizer=optimizer, scheduler=scheduler,
                                        meta=_meta(fingerprint, info.time_s, losses, eval_start, complete=False))
        elapsed += time.perf_counter() - began
        eval_end = _evaluate(prepared, stage, eval_batches, accelerator)
        final = _meta(fingerprint, elapsed, losses, eval_start, complete=True, eval_end=eval_end,
                      tokens=total * tokens_per_step, resumed_from=start)
        save_training_state(state_dir, step=total, accelerator=accelerator, params=params, optimizer=None,
                            scheduler=None, meta=final)
    finally:
        stage.teardown(model)
        accelerator.unwrap_model(prepared, keep_fp32_wrapper=False)  # drop a mixed-precision forward wrapper
        accelerator.free_memory()
    return _result(stage, {**final, "step": total}, resumed_from=start, reused=False)


def _optimizer_step(
    model: nn.Module, stage: Stage, batches, grad_accum: int, params: dict[str, nn.Parameter],
    optimizer, accelerator: Accelerator, max_grad_norm: float,
) -> float:
    """Accumulate ``grad_accum`` micro-batches, clip, step; returns the mean loss over all processes."""
    total = torch.zeros((), device=accelerator.device)
    for micro in range(grad_accum):
        input_ids = next(batches)
        last = micro == grad_accum - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(model):
            with accelerator.autocast():  # FSDP2 casts only what it shards; the replicated parameters need this
                loss = stage.loss(model, input_ids)
            if not stage.backward_in_forward:
                accelerator.backward(loss / grad_accum)
        total += loss.detach().float()
    if is_sharded(accelerator):  # FSDP2 leaves the replicated trainable parameters' gradients to us
        average_gradients(params.values(), accelerator)
    if max_grad_norm > 0:
        accelerator.clip_grad_norm_(list(params.values()), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return accelerator.reduce(total / grad_accum, reduction="mean").item()


def _evaluate(
    model: nn.Module, stage: Stage, batches: torch.Tensor | None, accelerator: Accelerator
) -> dict[str, float]:
    """Mean of each score over the held-out windows (every process scores the same windows)."""
    if batches is None or len(batches) == 0:
        return {}
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    for window in batches:
        with accelerator.autocast():
            scores = stage.evaluate(model, window[None].to(accelerator.device))
        for key, value in scores.items():
            sums[key] = sums.get(key, 0.0) + value
    model.train(was_training)
    return {key: value / len(batches) for key, value in sums.items()}


def _meta(fingerprint: str, elapsed: float, losses: list[float], eval_start: dict, *, complete: bool,
          **extra: Any) -> dict[str, Any]:
    return {"fingerprint": fingerprint, "complete": complete, "elapsed_s": elapsed, "losses": losses,
            "eval_start": eval_start, **extra}


def _result(stage: Stage, meta: dict[str, Any], *, resumed_from: int, reused: bool) -> StageResult:
    return StageResult(
        name=stage.name, metric=stage.metric, steps=meta["step"], tokens=meta.get("tokens", 0),
        wall_s=meta.get("elapsed_s", 0.0), eval_start=meta.get("eval_start") or {},
        eval_end=meta.get("eval_end") or {}, losses=meta.get("losses", []), resumed_from=resumed_from,
        reused=reused,
    )
