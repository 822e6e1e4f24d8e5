"""Gates: per-token, per-head log decay log γ_i <= 0 for the linear branch (always in log space).

``sigmoid`` is the paper's default (γ = σ(w_γ · x)); the others are its Table 4 ablations.
Each maps the layer input x [B, T, d_model] to log γ [B, T, H] in float32, with no state
across tokens, so decoding needs nothing beyond the attention state.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _spread_bias(num_heads: int, low: float, high: float) -> torch.Tensor:
    """Per-head biases spread between two logits, so heads start with different memory lengths."""
    return torch.linspace(low, high, num_heads) if num_heads > 1 else torch.tensor([(low + high) / 2])


DEFAULT_BIAS = (3.0, 6.0)  # σ(3) = 0.95, σ(6) = 0.998: half-lives of 14 to 280 tokens


def half_life(bias: float) -> float:
    """Tokens after which a constant gate γ = σ(bias) keeps half of a token: ln ½ / ln σ(bias)."""
    return math.log(0.5) / F.logsigmoid(torch.tensor(float(bias), dtype=torch.float64)).item()


def bias_for_half_life(tokens: float) -> float:
    """The gate logit whose half-life is ``tokens`` (the inverse of :func:`half_life`): logit(2^(−1/tokens))."""
    keep = 0.5 ** (1.0 / tokens)
    return math.log(keep) - math.log1p(-keep)


def head_half_lives(gate: nn.Module) -> list[float] | None:
    """Each head's half-life from its gate's bias (what it remembers before the input moves it); None for gates
    without a per-head bias (Mamba-2, low-rank, none)."""
    bias = gate.proj.bias if isinstance(gate, SigmoidGate) else getattr(gate, "bias", None)
    if not isinstance(gate, (SigmoidGate, PoolingGate)) or bias is None:
        return None
    return [round(half_life(b), 1) for b in bias.detach().double().tolist()]


class SigmoidGate(nn.Module):
    """log γ = logsigmoid(x w_γ + b); the bias spreads the heads' starting memory lengths."""

    def __init__(self, hidden_size: int, num_heads: int, bias: tuple[float, float] = DEFAULT_BIAS) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden_size, num_heads)
        nn.init.normal_(self.proj.weight, std=0.02 / math.sqrt(hidden_size))
        with torch.no_grad():
            self.proj.bias.copy_(_spread_bias(num_heads, *bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.logsigmoid(self.proj(x).float())


class Mamba2Gate(nn.Module):
    """Mamba-2 style: log γ = −exp(A_log) · softplus(x W_dt + dt_bias)."""

    def __init__(self, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        self.dt_proj = nn.Linear(hidden_size, num_heads, bias=False)
        nn.init.normal_(self.dt_proj.weight, std=0.02 / math.sqrt(hidden_size))
        dt = torch.exp(torch.linspace(math.log(1e-3), math.log(1e-1), num_heads))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.A_log = nn.Parameter(torch.log(torch.linspace(1.0, 16.0, num_heads)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dt = F.softplus(self.dt_proj(x).float() + self.dt_bias.float())
        return -torch.exp(self.A_log.float()) * dt


class LowRankGate(nn.Module):
    """GLA style: log γ = logsigmoid(x W_down W_up + b) / τ with a rank-r bottleneck."""

    def __init__(self, hidden_size: int, num_heads: int, rank: int, temperature: float) -> None:
        super().__init__()
        self.down = nn.Linear(hidden_size, rank, bias=False)
        self.up = nn.Linear(rank, num_heads)
        nn.init.normal_(self.up.weight, std=0.02)
        with torch.no_grad():
            self.up.bias.zero_()
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.logsigmoid(self.up(self.down(x)).float()) / self.temperature


class PoolingGate(nn.Module):
    """1-D pooling: the input's channels are mean-pooled into one scalar per head, then a per-head
    affine map and logsigmoid. Far fewer parameters than the projection gates (the paper's weakest)."""

    def __init__(self, hidden_size: int, num_heads: int, bias: tuple[float, float] = DEFAULT_BIAS) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = nn.Parameter(torch.ones(num_heads))
        self.bias = nn.Parameter(_spread_bias(num_heads, *bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool1d(x.float(), self.num_heads)  # [B, T, d_model] -> [B, T, H]
        return F.logsigmoid(pooled * self.scale.float() + self.bias.float())


class NoGate(nn.Module):
    """γ = 1: plain (ungated) linear attention, for the 'no gate' ablation and LoLCATs."""

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(*x.shape[:-1], self.num_heads, dtype=torch.float32)


def build_gate(
    kind: str, hidden_size: int, num_heads: int, rank: int = 16, temperature: float = 16.0,
    bias: tuple[float, float] = DEFAULT_BIAS,
) -> nn.Module:
    """The gate ``kind``; ``bias`` (low, high) sets the sigmoid and pooling gates' per-head starting logits."""
    if kind == "sigmoid":
        return SigmoidGate(hidden_size, num_heads, bias)
    if kind == "mamba2":
        return Mamba2Gate(hidden_size, num_heads)
    if kind == "lowrank":
        return LowRankGate(hidden_size, num_heads, rank, temperature)
    if kind == "pooling":
        return PoolingGate(hidden_size, num_heads, bias)
    if kind == "none":
        return NoGate(num_heads)
    raise ValueError(f"unknown gate {kind!r}")
