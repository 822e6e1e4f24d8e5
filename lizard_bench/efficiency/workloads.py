"""What is measured: a prefill of L tokens, and N decode steps after it.

Both go through the model's normal forward with a transformers cache, exactly as
``generate()`` runs them: a growing key/value cache for softmax layers, the constant-size
state for linearized ones. Only the last position's logits are computed during prefill
(as ``generate()`` does), so the LM head's L × vocabulary matrix does not dominate memory.
A linearized model prefills in chunks (``linearize/prefill.py``), as its ``generate()`` does;
a softmax model in one shot, its usual path.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from lizard_bench.linearize import cache_bytes, lizard_modules
from lizard_bench.linearize.prefill import prefill_in_chunks


def context_ids(vocab_size: int, batch_size: int, length: int, seed: int, device: torch.device) -> torch.Tensor:
    """Deterministic token ids (speed and memory do not depend on the text)."""
    generator = torch.Generator().manual_seed(seed + length)
    low = min(100, vocab_size - 1)
    return torch.randint(low, vocab_size, (batch_size, length), generator=generator).to(device)


def prefill_chunk_for(model: torch.nn.Module, requested: int | None) -> int | None:
    """The chunk size ``model`` prefills with: ``requested`` if it has linearized layers, else None (one shot)."""
    return requested if lizard_modules(model) else None


@torch.no_grad()
def prefill(model: torch.nn.Module, ids: torch.Tensor,
            chunk_size: int | None = None) -> tuple[DynamicCache, torch.Tensor]:
    """Run the context through the model, ``chunk_size`` tokens at a time (None: one shot).

    Returns the cache and the next greedy token [B, 1].
    """
    cache, logits = prefill_in_chunks(model, ids, chunk_size)
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
