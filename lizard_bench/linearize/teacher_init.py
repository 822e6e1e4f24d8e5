"""Starting the meta-memory from the teacher: sink logits (``sink_init: teacher``) and sink values
(``sink_values: teacher``), from one teacher forward over a training window.

Why: the sinks decide how much of a row's weight leaves the softmax window. Under the
'convex' combination that weight is the linear branch's; the teacher puts 5–50 % of its
attention on keys the window cannot see (more in early layers), but sink logits starting at
0 hand the linear branch well under 1 %, so it gets almost no gradient and stage 1 on a short
budget barely moves (measured: held-out MSE 2.60 -> 2.21 in 100 steps). Starting each head's
sinks at the teacher's own share of distant keys makes the layer begin as "exact window, plus
the teacher's distant share of weight on the linear branch".

- Sink logits: per head, t = mean over queries that have distant keys of
  [lse_local + log(π / (1 − π))] − log m, where lse_local is the layer's own window (and
  anchor) log-normaliser and π the teacher's attention share outside those keys: then the m
  sinks together hold share π of the row.
- Sink values: the first sink of every head starts at the teacher's value at position 0
  (where SmolLM2 puts 45–59 % of its attention in middle layers); the others stay zero.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lizard_bench.linearize.attention import LizardAttention
from lizard_bench.linearize.convert import lizard_modules
from lizard_bench.linearize.heads import apply_rope, repeat_kv

SHARE_FLOOR = 1e-4  # clamp π into [floor, 1 - floor] so its log-odds stay finite


def wants_teacher_init(module: LizardAttention) -> bool:
    config = module.config
    return hasattr(module, "sink_logits") and (config.sink_init == "teacher" or config.sink_values == "teacher")


@torch.no_grad()
def initialise_from_teacher(model: nn.Module, input_ids: torch.Tensor) -> int:
    """Set the teacher-initialised sinks of every layer that asks for it; returns how many layers."""
    modules = [module for module in lizard_modules(model) if wants_teacher_init(module)]
    if not modules:
        return 0
    inputs: dict[int, tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]] = {}

    def keep_inputs(module, args, kwargs):
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        inputs.setdefault(module.layer_idx, (hidden.detach(), kwargs["position_embeddings"]))

    hooks = [module.register_forward_pre_hook(keep_inputs, with_kwargs=True) for module in modules]
    previous = [module.distill for module in modules]
    try:
        for module in modules:
            module.distill = True  # pass the teacher's outputs on, so every layer sees the teacher's inputs
        model(input_ids=input_ids, use_cache=False, logits_to_keep=1)
    finally:
        for hook in hooks:
            hook.remove()
        for module, flag in zip(modules, previous, strict=True):
            module.distill, module.distill_loss = flag, None
    for module in modules:
        hidden, position_embeddings = inputs[module.layer_idx]
        _initialise_layer(module, hidden, position_embeddings)
    return len(modules)


def _initialise_layer(module: LizardAttention, hidden: torch.Tensor, position_embeddings) -> None:
    T = hidden.shape[1]
    q, k, v = (projection.float() for projection in module.project(hidden))
    if module.config.sink_values == "teacher" and hasattr(module, "sink_values"):
        first_value = repeat_kv(v[:, :1], module.groups)[:, 0].mean(dim=0)  # [H, D], mean over the batch
        module.sink_values[:, 0] = first_value.to(module.sink_values.dtype)
    if module.config.sink_init != "teacher":
        return
    cos, sin = position_embeddings
    scale = module.head_dim**-0.5
    teacher = _scores(apply_rope(q, cos, sin), repeat_kv(apply_rope(k, cos, sin), module.groups), scale)
    own = teacher if module.config.window_rope else _scores(q, repeat_kv(k, module.groups), scale)
    position = torch.arange(T, device=q.device)
    causal = position[None, :] <= position[:, None]
    local = causal & (position[None, :] > position[:, None] - module.config.window)
    local |= causal & (position[None, :] < module.config.num_anchors)
    past = slice(min(module.config.window + module.config.num_anchors, T - 1), T)  # queries with distant keys
    probabilities = torch.softmax(teacher.masked_fill(~causal, float("-inf")), dim=-1)
    distant = (1 - (probabilities * local).sum(-1))[..., past].clamp(SHARE_FLOOR, 1 - SHARE_FLOOR)  # [B, H, T']
    own_lse = torch.logsumexp(own.masked_fill(~local, float("-inf")), dim=-1)[..., past]
    logits = (own_lse + torch.log(distant) - torch.log1p(-distant)).mean(dim=(0, 2)) - math.log(module.config.num_sinks)
    module.sink_logits.copy_(logits[:, None].expand_as(module.sink_logits).to(module.sink_logits.dtype))


def _scores(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """[B, T, H, D] x [B, S, H, D] -> scores [B, H, T, S]."""
    return torch.einsum("bthd,bshd->bhts", q, k) * scale
