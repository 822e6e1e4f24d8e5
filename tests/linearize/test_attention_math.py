"""A linearized layer computes the formulas of docs/design.md §2, checked against direct float64 computations."""

import math

import pytest
import torch

from lizard_bench.kernels.reference import gated_linear_attention_reference, softmax_attention_reference
from lizard_bench.linearize import linearize
from lizard_bench.linearize.heads import repeat_kv
from tests.tiny_models import tiny_llama


def layer_and_inputs(method: str, window: int, **options):
    """Layer 0 of a linearized tiny model with its added parameters perturbed (no term hides at its start)."""
    model = tiny_llama(seed=7)
    linearize(model, method, window=window, **options)
    attention = model.model.layers[0].self_attn
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in attention.parameters():
            if parameter.requires_grad:
                parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
    x = torch.randn(2, 21, model.config.hidden_size, generator=generator)
    return attention, x


def projections(attention, x):
    B, T, _ = x.shape
    q = attention.base.q_proj(x).view(B, T, attention.num_heads, attention.head_dim)
    k = attention.base.k_proj(x).view(B, T, attention.num_kv_heads, attention.head_dim)
    v = attention.base.v_proj(x).view(B, T, attention.num_kv_heads, attention.head_dim)
    return q, k, v


@torch.no_grad()
def test_separate_reading_is_gla_plus_alpha_times_window_with_sinks():
    attention, x = layer_and_inputs("lizard_separate", window=5)
    q, k, v = projections(attention, x)
    groups = attention.groups
    gla, _ = gated_linear_attention_reference(
        attention.feature_q(q), attention.feature_k(repeat_kv(k, groups)), repeat_kv(v, groups), attention.gate(x),
        eps=attention.config.eps)
    window = softmax_attention_reference(q, k, v, window=5, sink_logits=attention.sink_logits)
    expected = gla + attention.alpha.double().view(1, 1, -1, 1) * window
    expected = attention.base.o_proj(expected.reshape(*x.shape[:2], -1).float())
    torch.testing.assert_close(attention.attend(x, None, None), expected, atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_lolcats_shares_one_normaliser_between_window_and_older_keys():
    w = 4
    attention, x = layer_and_inputs("lolcats", window=w)
    cos, sin = attention_rope(attention, x)
    q, k, v = projections(attention, x)
    groups = attention.groups
    fq = attention.feature_q(q).double()
    fk = attention.feature_k(repeat_kv(k, groups)).double()
    qr, kr = rope(q, cos, sin).double(), repeat_kv(rope(k, cos, sin), groups).double()
    vr = repeat_kv(v, groups).double()
    B, T, H, D = q.shape
    expected = torch.empty(B, T, H, D, dtype=torch.float64)
    for i in range(T):
        window_keys = range(max(0, i - w + 1), i + 1)
        older_keys = range(0, max(0, i - w + 1))
        scores = torch.stack([(qr[:, i] * kr[:, j]).sum(-1) / math.sqrt(D) for j in window_keys], dim=-1)
        weights = [scores.exp()[..., n] for n in range(len(window_keys))]
        weights += [(fq[:, i] * fk[:, j]).sum(-1) for j in older_keys]
        keys = list(window_keys) + list(older_keys)
        numerator = sum(wt[..., None] * vr[:, j] for wt, j in zip(weights, keys, strict=True))
        expected[:, i] = numerator / sum(weights)[..., None]
    expected = attention.base.o_proj(expected.reshape(B, T, -1).float())
    torch.testing.assert_close(attention.attend(x, (cos, sin), None), expected, atol=1e-5, rtol=1e-4)


def attention_rope(attention, x):
    model = tiny_llama(seed=7)
    positions = torch.arange(x.shape[1]).unsqueeze(0).expand(x.shape[0], -1)
    return model.model.rotary_emb(x, positions)


def rope(x, cos, sin):
    first, second = x.chunk(2, dim=-1)
    rotated = torch.cat([-second, first], dim=-1)
    return x * cos[:, :, None] + rotated * sin[:, :, None]


@pytest.mark.parametrize("method", ["lizard", "lolcats"])
def test_window_rope_default_follows_each_method(method):
    """RoPE in the window is a switch: off by default for Lizard (paper form), on for LoLCATs."""
    attention, _ = layer_and_inputs(method, window=4)
    assert attention.config.window_rope is (method == "lolcats")
