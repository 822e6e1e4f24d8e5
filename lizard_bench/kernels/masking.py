"""Key masks: how every backend hides padded keys, so that all of them agree bit for bit in intent.

A masked key gets ``MASKED_KEY_SCORE`` added to its score instead of ``-inf``. In a row that
sees at least one real key or a sink, e^{-1e30 - max} is exactly 0, so the key counts for
nothing; in a row that sees only masked keys (a padding query) the scores are all equal and
the row averages them: finite, never NaN, so nothing poisons later layers or gradients.
Callers discard such rows.
"""

from __future__ import annotations

import torch

MASKED_KEY_SCORE = -1.0e30


def key_bias(key_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, S] bool (True = attend) -> additive [B, S] scores: 0 for real keys, MASKED_KEY_SCORE for masked ones."""
    zero = torch.zeros((), dtype=dtype, device=key_mask.device)
    return torch.where(key_mask, zero, torch.full((), MASKED_KEY_SCORE, dtype=dtype, device=key_mask.device))
