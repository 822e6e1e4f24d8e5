"""Hedgehog feature maps: φ(x) = softmax(xW) ⊕ softmax(−xW), per head.

Softmax features are positive (so the linear-attention normaliser is positive) and, with W
learned to mimic the teacher, spiky like softmax attention — which is why Hedgehog-style
maps recover softmax behaviour far better than fixed kernels such as elu+1.
"""

from __future__ import annotations

import torch
from torch import nn


class HedgehogFeatureMap(nn.Module):
    """x [B, T, H, D] -> φ(x) [B, T, H, feature_dim], one projection W_h ∈ R^{D×feature_dim/2} per head."""

    def __init__(self, num_heads: int, head_dim: int, feature_dim: int, identity: bool = True) -> None:
        super().__init__()
        half = feature_dim // 2
        weight = torch.empty(num_heads, head_dim, half)
        if identity and half == head_dim:
            # identity start: φ(q)·φ(k) then begins as a smooth function of q·k, close to the teacher
            weight.copy_(torch.eye(head_dim).expand(num_heads, head_dim, head_dim))
        else:
            nn.init.normal_(weight, std=head_dim**-0.5)
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x W_h per head as one batched product ([B, H, T, D] @ [H, D, F/2]), then one softmax over both
        # signs stacked: three calls where two softmaxes and a concatenation took five, which a decode step
        # pays in every layer for every token (einsum's planning alone costs ~3x the product at decode sizes)
        projected = torch.matmul(x.float().transpose(1, 2), self.weight.float()).transpose(1, 2)
        return torch.stack([projected, -projected], dim=-2).softmax(dim=-1).flatten(-2)
