"""Attention reach: how much of each layer's attention weight lands on keys beyond the softmax window.

Why: a linearized layer keeps an exact softmax over the last w keys (and m anchors) and hands
everything older to its gated linear branch. Whether that branch actually reaches past the
window is invisible in perplexity; it shows in the weight the layer's own arithmetic puts on
each key. This module writes every layer's output as Σ_j P_ij v_j and bins P by key distance
d = i − j: ``within`` (d < w, anchors excluded), ``anchors`` (j < m) and ``beyond`` (d ≥ w), beside
the teacher's softmax mass in the same bins.

Per layer kind (the layer's real arithmetic, one [H, T, T] float32 matrix at a time):
- teacher softmax: P = softmax(q kᵀ · scale) with its RoPE, causal;
- Lizard 'convex': P = W + π · A, W the window softmax (window keys and anchors, the sinks in its
  normaliser), π the sinks' share of it, A the normalised GLA weights
  A_ij = φ(q_i)·φ(k_j) e^{Σ_{t=j+1..i} log γ_t} / (Σ_{j'≤i} (same) + eps);
- 'separate': ŷ = ŷ_gla + α ŷ_win, read as P = (A + α W) / (1 + α), α clamped to >= 0 (a
  normalisation of the layer's weights, not its exact scale);
- 'shared' (LoLCATs): window scores e^{s_ij} and linear scores φ(q_i)·φ(k_j) of keys d ≥ w over
  their one normaliser;
- no linear branch (swa): P = W; no window: P = A;
- 'unnormalised': no per-key weights that sum to a fixed total, so the layer is 'unavailable'.
Sinks that carry values (an extension) add a term tied to no key; their share is ``unassigned``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from lizard_bench.linearize.attention import LizardAttention
from lizard_bench.linearize.heads import apply_rope, repeat_kv

BINS = ("within", "anchors", "beyond")


class Unsupported(ValueError):
    """A layer whose output is not a per-key weighting this module can write down; the message says why."""


@dataclass(frozen=True)
class Bins:
    """The split of key distances for one layer: window w and anchors m."""

    window: int
    anchors: int

    @property
    def first_query(self) -> int:
        """The first query with keys in every bin (so every query counted weighs the same bins)."""
        return self.window + self.anchors


@dataclass
class LayerReach:
    """One layer's mean weight per bin over heads and counted queries (or why there is none)."""

    layer: int
    kind: str
    bins: Bins
    mass: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    note: str | None = None


# -- capturing each layer's input --------------------------------------------------------------
def attention_modules(model: nn.Module) -> list[nn.Module]:
    """Every decoder layer's attention module, in order (teacher, Lizard, or a hybrid's mix)."""
    layers = model.get_decoder().layers if hasattr(model, "get_decoder") else model.model.layers
    return [layer.self_attn for layer in layers]


@torch.no_grad()
def capture_inputs(model: nn.Module, input_ids: torch.Tensor) -> list[tuple[torch.Tensor, tuple]]:
    """Each attention module's input hidden states and position embeddings from one plain forward.

    Why a plain forward (not distillation mode): a variant's layers should be read on the
    residual stream the variant itself produces.
    """
    modules = attention_modules(model)
    inputs: dict[int, tuple[torch.Tensor, tuple]] = {}

    def keeper(index: int):
        def keep(module, args, kwargs):
            hidden = kwargs.get("hidden_states", args[0] if args else None)
            inputs.setdefault(index, (hidden.detach(), kwargs["position_embeddings"]))
        return keep

    hooks = [module.register_forward_pre_hook(keeper(i), with_kwargs=True) for i, module in enumerate(modules)]
    try:
        model(input_ids=input_ids, use_cache=False, logits_to_keep=1)
    finally:
        for hook in hooks:
            hook.remove()
    return [inputs[i] for i in range(len(modules))]


# -- per-key weights ----------------------------------------------------------------------------
def teacher_weights(module: nn.Module, config, hidden: torch.Tensor, position_embeddings) -> torch.Tensor:
    """Softmax attention probabilities [B, H, T, T] of a Llama-family attention module, float32."""
    B, T, _ = hidden.shape
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    cos, sin = position_embeddings
    q = apply_rope(module.q_proj(hidden).view(B, T, heads, head_dim).float(), cos.float(), sin.float())
    k = apply_rope(module.k_proj(hidden).view(B, T, kv_heads, head_dim).float(), cos.float(), sin.float())
    scale = float(getattr(module, "scaling", head_dim**-0.5))
    scores = _scores(q, repeat_kv(k, heads // kv_heads), scale)
    return torch.softmax(scores.masked_fill(~_causal(T, hidden.device), float("-inf")), dim=-1)


def lizard_weights(
    module: LizardAttention, hidden: torch.Tensor, position_embeddings,
) -> tuple[torch.Tensor, str | None]:
    """Per-key weights [B, H, T, T] of a Lizard layer's mixed output, and a note on how they were read."""
    config = module.config
    if config.combine == "unnormalised" and config.linear_branch and config.window:
        raise Unsupported("combine 'unnormalised': the GLA has no normaliser, so its weights have no fixed total")
    q, k, v = (part.float() for part in module.project(hidden))
    note = "sink values add a term tied to no key (unassigned)" if hasattr(module, "sink_values") else None
    if config.combine == "shared":
        return _shared_weights(module, q, k, position_embeddings), note
    linear = _gla_weights(module, hidden, q, k) if config.linear_branch else None
    if not config.window:
        return linear, note
    window, sinks_share = _window_weights(module, q, k, position_embeddings)
    if linear is None:
        return window, note
    if config.combine == "convex":
        return window + sinks_share[..., None] * linear, note
    alpha = module.alpha.float().clamp_min(0.0).view(1, -1, 1, 1)
    clamped = bool((module.alpha < 0).any())
    read = "separate: (A + α W) / (1 + α), α clamped to >= 0" + (" (some α < 0 clamped)" if clamped else "")
    return (linear + alpha * window) / (1 + alpha), "; ".join(filter(None, [read, note]))


def _window_weights(module: LizardAttention, q, k, position_embeddings) -> tuple[torch.Tensor, torch.Tensor]:
    """Window softmax weights [B, H, T, T] (last w keys and the m anchors) and the sinks' share [B, H, T]."""
    config = module.config
    T = q.shape[1]
    if config.window_rope:
        cos, sin = (part.float() for part in position_embeddings)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    scores = _scores(q, repeat_kv(k, module.groups), module.head_dim**-0.5)
    visible = _local(T, config.window, config.num_anchors, q.device)
    scores = scores.masked_fill(~visible, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)  # [B, H, T]
    sinks = getattr(module, "sink_logits", None)
    if sinks is not None:
        sinks_total = torch.logsumexp(sinks.float(), dim=-1).view(1, -1, 1)
        lse = torch.logaddexp(lse, sinks_total.expand_as(lse))
        share = torch.exp(sinks_total - lse)
    else:
        share = torch.zeros_like(lse)
    return torch.exp(scores - lse[..., None]), share


def _gla_weights(module: LizardAttention, hidden, q, k) -> torch.Tensor:
    """Normalised GLA weights A [B, H, T, T], with the kernels' eps in the denominator."""
    T = q.shape[1]
    features_q = module.feature_q(q)
    features_k = module.feature_k(repeat_kv(k, module.groups))
    cumulative = module.gate(hidden).double().cumsum(dim=1).transpose(1, 2)  # [B, H, T]: Σ_{t<=i} log γ_t
    log_decay = cumulative[..., :, None] - cumulative[..., None, :]  # Σ_{t=j+1..i} log γ_t
    decay = torch.exp(log_decay.float().masked_fill(~_causal(T, q.device), float("-inf")))
    raw = torch.einsum("bihf,bjhf->bhij", features_q.float(), features_k.float()) * decay
    return raw / (raw.sum(dim=-1, keepdim=True) + module.config.eps)


def _shared_weights(module: LizardAttention, q, k, position_embeddings) -> torch.Tensor:
    """LoLCATs: window scores e^{s} and ungated linear scores of keys d >= w over one normaliser."""
    config = module.config
    T = q.shape[1]
    cos, sin = (part.float() for part in position_embeddings)
    rq, rk = (apply_rope(q, cos, sin), apply_rope(k, cos, sin)) if config.window_rope else (q, k)
    scores = _scores(rq, repeat_kv(rk, module.groups), module.head_dim**-0.5)
    local = _local(T, config.window, 0, q.device)
    scores = scores.masked_fill(~local, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    sinks = getattr(module, "sink_logits", None)
    if sinks is not None:
        lse = torch.logaddexp(lse, torch.logsumexp(sinks.float(), dim=-1).view(1, -1, 1).expand_as(lse))
    older = _causal(T, q.device) & ~local
    features_q, features_k = module.feature_q(q), module.feature_k(repeat_kv(k, module.groups))
    linear = torch.einsum("bihf,bjhf->bhij", features_q.float(), features_k.float()) * older
    total = torch.exp(lse) + linear.sum(dim=-1)
    return (torch.exp(scores) + linear) / total[..., None]


def _scores(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """[B, T, H, D] x [B, S, H, D] -> scores [B, H, T, S]."""
    return torch.einsum("bthd,bshd->bhts", q, k) * scale


def _causal(T: int, device) -> torch.Tensor:
    position = torch.arange(T, device=device)
    return position[None, :] <= position[:, None]


def _local(T: int, window: int, anchors: int, device) -> torch.Tensor:
    """Keys a window softmax sees: the last ``window`` (d < w) and the first ``anchors`` tokens, causal."""
    position = torch.arange(T, device=device)
    causal = _causal(T, device)
    return causal & ((position[None, :] > position[:, None] - window) | (position[None, :] < anchors))


# -- binning --------------------------------------------------------------------------------------
def bin_masses(weights: torch.Tensor, bins: Bins) -> dict[str, float]:
    """Mean weight per bin over batch, heads and queries i >= w + m; 'unassigned' is what no key holds."""
    T = weights.shape[-1]
    position = torch.arange(T, device=weights.device)
    distance = position[:, None] - position[None, :]
    anchor = (position < bins.anchors)[None, :].expand(T, T)
    masks = {"within": (distance >= 0) & (distance < bins.window) & ~anchor,
             "anchors": anchor & (distance >= 0),
             "beyond": (distance >= bins.window) & ~anchor}
    counted = weights[..., bins.first_query:, :]
    # a masked sum over keys as one product with a 0/1 matrix per bin; means in float64
    mass = {name: torch.einsum("...ij,ij->...i", counted, mask[bins.first_query:].to(counted.dtype))
            .double().mean().item() for name, mask in masks.items()}
    mass["unassigned"] = 1.0 - sum(mass.values())
    return mass


def layer_bins(module: nn.Module, default: Bins) -> Bins:
    """A Lizard layer with a window bins by its own w and m; any other layer by ``default``."""
    if isinstance(module, LizardAttention) and module.config.window:
        return Bins(module.config.window, module.config.num_anchors)
    return default


def layer_weights(module: nn.Module, config, hidden, position_embeddings) -> tuple[torch.Tensor, str, str | None]:
    """(weights [B, H, T, T], the layer's kind, a note) for a Lizard or a teacher attention module."""
    if isinstance(module, LizardAttention):
        weights, note = lizard_weights(module, hidden, position_embeddings)
        return weights, f"lizard:{module.config.combine}", note
    return teacher_weights(module, config, hidden, position_embeddings), "softmax", None


@torch.no_grad()
def window_reach(model: nn.Module, input_ids: torch.Tensor, default: Bins) -> list[LayerReach]:
    """Every layer's bin masses on one batch of windows, one layer's [B, H, T, T] weights at a time."""
    T = input_ids.shape[1]
    reaches = []
    for index, (module, (hidden, position_embeddings)) in enumerate(
            zip(attention_modules(model), capture_inputs(model, input_ids), strict=True)):
        bins = layer_bins(module, default)
        kind = f"lizard:{module.config.combine}" if isinstance(module, LizardAttention) else "softmax"
        if T <= bins.first_query:
            reaches.append(LayerReach(index, kind, bins, reason=f"windows of {T} tokens have no query past "
                                                                  f"w + m = {bins.first_query}"))
            continue
        try:
            weights, kind, note = layer_weights(module, model.config, hidden, position_embeddings)
        except Unsupported as exc:
            reaches.append(LayerReach(index, kind, bins, reason=str(exc)))
            continue
        reaches.append(LayerReach(index, kind, bins, mass=bin_masses(weights, bins), note=note))
        del weights
    return reaches


def mean_over_layers(reaches: list[LayerReach], bin_name: str) -> float | None:
    """The mean of one bin over the layers that have it (None when none does)."""
    values = [reach.mass[bin_name] for reach in reaches if reach.mass]
    return sum(values) / len(values) if values else None
