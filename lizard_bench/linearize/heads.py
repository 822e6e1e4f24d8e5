"""Per-head helpers shared by the attention forms: RoPE and grouped key/value heads."""

from __future__ import annotations

import torch


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE on [B, T, H, D] with the model's cos/sin [B, T, D] (the rotate-half convention of Llama)."""
    cos, sin = cos[:, :, None, :].to(x.dtype), sin[:, :, None, :].to(x.dtype)
    return x * cos + rotate_half(x) * sin


def apply_rope_pair(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """RoPE on q [B, T, H, D] and k [B, T, Hkv, D] as one tensor: half the elementwise calls, which a decode
    step pays in every layer for every token."""
    both = apply_rope(torch.cat([q, k], dim=2), cos, sin)
    return both[:, :, : q.shape[2]], both[:, :, q.shape[2] :]


def repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """[B, T, Hkv, D] -> [B, T, Hkv * groups, D] (query head h reads KV head h // groups)."""
    return x if groups == 1 else x.repeat_interleave(groups, dim=2)
