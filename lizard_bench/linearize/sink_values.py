"""Starting the valued meta-memory sinks from the teacher (``sink_values: teacher``).

The teacher parks much of its attention on the sequence's first token (45–59 % in SmolLM2's
middle layers), so p₀v₀ is a large share of its output. Beyond the window nothing in a
linearized layer can supply v₀; a sink with a value can, and it learns fastest when it
starts at the teacher's own value there. One teacher forward over a training window gives,
per layer, the mean over the batch of the value vector at position 0; the first sink of
every head starts there (the others keep zero, so the sinks stay distinguishable).
"""

from __future__ import annotations

import torch
from torch import nn

from lizard_bench.linearize.convert import lizard_modules


@torch.no_grad()
def init_sink_values_from_teacher(model: nn.Module, input_ids: torch.Tensor) -> int:
    """Start each layer's first sink value at the teacher's value at position 0; returns how many layers."""
    modules = [m for m in lizard_modules(model) if m.config.sink_values == "teacher" and hasattr(m, "sink_values")]
    if not modules:
        return 0
    captured: dict[int, torch.Tensor] = {}
    hooks = []
    for module in modules:
        def keep_first(_, __, output, index=module.layer_idx):
            captured.setdefault(index, output[:, 0].detach())  # the teacher's call comes first in distill mode
        hooks.append(module.base.v_proj.register_forward_hook(keep_first))
    previous = [m.distill for m in modules]
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
        v0 = captured[module.layer_idx].float().mean(dim=0).view(module.num_kv_heads, module.head_dim)
        module.sink_values[:, 0] = v0.repeat_interleave(module.groups, dim=0).to(module.sink_values.dtype)
    return len(modules)
