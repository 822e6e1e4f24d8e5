"""AdamW and the cosine-with-warm-up schedule of the paper's recipe."""

from __future__ import annotations

import math

import torch
from torch import nn

# Last name components of the per-head scalars: α, sink logits, the GLA scale and the gates' biases.
SCALAR_PARAMETERS = frozenset({"alpha", "sink_logits", "gla_log_scale", "bias", "dt_bias", "A_log", "scale"})


def is_scalar_parameter(name: str) -> bool:
    """Whether ``name`` is one of the per-head scalars that ``scalar_lr`` applies to (LoRA is never one)."""
    return "lora_" not in name and name.rsplit(".", 1)[-1] in SCALAR_PARAMETERS


def build_optimizer(
    params: dict[str, nn.Parameter], *, lr: float, betas: list[float], weight_decay: float,
    scalar_lr: float | None = None,
) -> torch.optim.AdamW:
    """AdamW over ``params`` in the given (sorted) order, which a saved optimizer state relies on.

    With ``scalar_lr`` the per-head scalars form a second parameter group at that rate (the
    schedule scales both groups alike).
    """
    options = {"betas": (betas[0], betas[1]), "weight_decay": weight_decay}
    if scalar_lr is None:
        return torch.optim.AdamW(list(params.values()), lr=lr, **options)
    scalars = [p for name, p in params.items() if is_scalar_parameter(name)]
    others = [p for name, p in params.items() if not is_scalar_parameter(name)]
    groups = [{"params": others, "lr": lr}, {"params": scalars, "lr": scalar_lr}]
    return torch.optim.AdamW([group for group in groups if group["params"]], lr=lr, **options)


def warmup_cosine(total_steps: int, warmup_fraction: float):
    """LR multiplier per 0-based step: linear warm-up over the first fraction, then cosine to zero.

    Unlike the common form that starts at exactly 0, the first step already moves (1/w of the
    peak) and the last step still has a small positive rate: with budgets of a few dozen steps
    on CPU, a step spent at learning rate 0 would be a noticeable share of the run.
    """
    warmup = math.ceil(warmup_fraction * total_steps)

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return multiplier


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, warmup_fraction))
