"""Prefill in fixed-size chunks through a model's cache: flat prefill memory for a linearized model.

Why: a one-shot prefill holds every layer's activations, feature maps and MLP intermediates
for the whole prompt at once, so its peak memory grows with the prompt even though a
linearized layer leaves a constant-size state behind. That state (the GLA state, the window
and anchor buffers of :class:`~lizard_bench.linearize.cache.LizardCacheLayer`) already holds
everything a later token needs, so the prompt can go in C tokens at a time: the peak then
depends on C, not on the prompt's length, and the result equals the one-shot one up to float
rounding. Positions need no bookkeeping: each call continues from the cache's length, as
``generate()`` continues a cache. Softmax layers (the teacher, a hybrid's kept layers) work
too; their key/value cache still grows with the prompt.

``generate()`` has its own chunked prefill (``generation_config.prefill_chunk_size``), which
:func:`~lizard_bench.linearize.convert.linearize` turns on; this function is the same loop for
callers that drive the model themselves (the efficiency probes).
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache

# Tokens per prefill chunk by default: large enough that the matrix products stay efficient (a chunk is
# 4-8 kernel chunks or window segments), small enough that its temporaries stay small. Measured on the
# embedded SmolLM2 (2-core CPU, 8K prompt): peak memory above the model 343 MiB with 2048-token chunks,
# 253 with 1024, 114 with 512, at 374 / 386 / 367 tokens/s (2K prompt: 374 and 331 tokens/s, 2048 vs 512).
DEFAULT_PREFILL_CHUNK = 512


@torch.no_grad()
def prefill_in_chunks(
    model: torch.nn.Module, input_ids: torch.Tensor, chunk_size: int | None, *, cache: Cache | None = None,
    logits_to_keep: int = 1,
) -> tuple[Cache, torch.Tensor]:
    """Run ``input_ids`` [B, T] through ``model`` ``chunk_size`` tokens at a time; returns (cache, logits).

    ``chunk_size=None`` is one shot. ``logits`` are those of the last ``logits_to_keep``
    positions ([B, keep, vocab]); ``logits_to_keep=0`` keeps every position, as transformers
    does. Only the chunks that hold kept positions compute more than one row of logits, so the
    LM head never materialises a T × vocabulary matrix it does not have to. ``cache``
    continues an existing cache (a new :class:`DynamicCache` otherwise).
    """
    total = input_ids.shape[1]
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of tokens or None, got {chunk_size}")
    if total == 0:
        raise ValueError("cannot prefill an empty prompt")
    step = total if chunk_size is None else chunk_size
    first_kept = 0 if logits_to_keep == 0 else max(0, total - logits_to_keep)
    cache = DynamicCache() if cache is None else cache
    pieces = []
    for start in range(0, total, step):
        stop = min(total, start + step)
        kept = stop - max(start, first_kept)  # this chunk's positions whose logits are wanted
        logits = model(input_ids=input_ids[:, start:stop], cache=cache, use_cache=True,
                       logits_to_keep=max(1, kept)).logits
        if kept > 0:
            pieces.append(logits)
    return cache, torch.cat(pieces, dim=1) if len(pieces) > 1 else pieces[0]
