"""What is measured: a prefill of L tokens, and N decode steps after it.

Both go through the model's normal forward with a transformers cache, exactly as
``generate()`` runs them: a growing key/value cache for softmax layers, the constant-size
state for linearized ones. Only the last position's logits are computed during prefill
(as ``generate()`` does), so the LM head's L × vocabulary matrix does not dominate memory.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from lizard_bench.linearize import cache_bytes


def context_ids(vocab_size: int, batch_size: int, length: int, seed: int, device: torch.device) -> torch.Tensor:
    """Deterministic token ids (speed and memory do not depend on the text)."""
    generator = torch.Generator().manual_seed(seed + length)
    low = min(100, vocab_size - 1)
    return torch.randint(low, vocab_size, (batch_size, length), generator=generator).to(device)


@torch.no_grad()
def prefill(model: torch.nn.Module, ids: torch.Tensor) -> tuple[DynamicCache, torch.Tensor]:
    """Run the context through the model; returns the cache and the next greedy token [B, 1]."""
    cache = DynamicCache()
    logits = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1).logits
    return cache, logits[:, -1:].argmax(dim=-1)


@torch.no_grad()
def decode(model: torch.nn.Module, cache: DynamicCache, token: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` greedy decode steps of one token per sequence (the cache is advanced in place)."""
    for _ in range(steps):
        logits = model(input_ids=token, cache=cache, use_cache=True).logits
        token = logits[:, -1:].argmax(dim=-1)
    return token


def cache_size(cache: DynamicCache) -> int:
    return cache_bytes(cache)
