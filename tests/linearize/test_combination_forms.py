"""Every reading of Lizard's combination, and every extension, against a float64 per-token equation.

The reference below is written the way docs/design.md states the forms, one query at a time:
the linear branch as the recurrence S_i = γ_i S_{i-1} + φ(k_i) v_iᵀ (divided by φ(q_i)ᵀz_i unless
'unnormalised'), the local branch as an explicit list of (score, value) pairs over the window,
the anchors and the sinks. Parameters are perturbed randomly first, so no term can hide at zero.
"""

import math

import pytest
import torch
from transformers import DynamicCache

from lizard_bench.linearize import linearize
from lizard_bench.linearize.heads import repeat_kv
from tests.linearize.test_attention_math import attention_rope, layer_and_inputs, projections, rope
from tests.tiny_models import tiny_llama

W = 5
FORMS = [
    ("lizard_separate", {}),
    ("lizard_unnormalised", {}),
    ("lizard_convex", {}),
    ("lizard_plus", {}),
    ("lizard_plus", {"num_anchors": 2, "window_rope": False}),
    ("lizard_separate", {"sink_values": "zeros", "num_anchors": 3}),
    ("lizard_unnormalised", {"sink_values": "zeros", "window_rope": True}),
    ("no_window", {"combine": "unnormalised"}),
]


def reference_heads(attention, x, cos, sin) -> torch.Tensor:
    """The mixed head outputs [B, T, H, D] in float64, query by query."""
    config = attention.config
    q, k, v = projections(attention, x)
    groups = attention.groups
    B, T, H, D = q.shape
    kr, vr = repeat_kv(k, groups).double(), repeat_kv(v, groups).double()
    fq, fk = attention.feature_q(q).double(), attention.feature_k(repeat_kv(k, groups)).double()
    gamma = attention.gate(x).double().exp()  # [B, T, H]
    qw, kw = (rope(q, cos, sin).double(), repeat_kv(rope(k, cos, sin), groups).double()) if config.window_rope \
        else (q.double(), kr)
    sinks = attention.sink_logits.double() if hasattr(attention, "sink_logits") else torch.zeros(H, 0)
    sink_values = attention.sink_values.double() if hasattr(attention, "sink_values") else None
    out = torch.empty(B, T, H, D, dtype=torch.float64)
    S = torch.zeros(B, H, fq.shape[-1], D, dtype=torch.float64)
    z = torch.zeros(B, H, fq.shape[-1], dtype=torch.float64)
    for i in range(T):
        S = gamma[:, i, :, None, None] * S + fk[:, i, :, :, None] * vr[:, i, :, None, :]
        z = gamma[:, i, :, None] * z + fk[:, i]
        numerator = torch.einsum("bhf,bhfd->bhd", fq[:, i], S)
        linear = numerator if config.combine == "unnormalised" else numerator / (
            torch.einsum("bhf,bhf->bh", fq[:, i], z)[..., None] + config.eps)
        if config.combine == "unnormalised":
            linear = linear * attention.gla_log_scale.double().exp().view(1, H, 1)
        if not config.window:
            out[:, i] = linear
            continue
        keys = list(range(max(0, i - W + 1), i + 1)) + [a for a in range(config.num_anchors) if a <= i - W]
        scores = torch.stack([(qw[:, i] * kw[:, j]).sum(-1) / math.sqrt(D) for j in keys], dim=-1)  # [B, H, n]
        normaliser = scores.exp().sum(-1) + sinks.exp().sum(-1)
        window = sum(scores.exp()[..., n, None] * vr[:, j] for n, j in enumerate(keys)) / normaliser[..., None]
        if sink_values is not None:
            window = window + torch.einsum("hr,hrd->hd", sinks.exp(), sink_values) / normaliser[..., None]
        if config.combine == "convex":
            out[:, i] = window + (sinks.exp().sum(-1) / normaliser)[..., None] * linear
        else:
            out[:, i] = linear + attention.alpha.double().view(1, H, 1) * window
    return out


@pytest.mark.parametrize(("method", "options"), FORMS)
@torch.no_grad()
def test_form_matches_its_per_token_equation(method, options):
    attention, x = layer_and_inputs(method, W, **options)
    cos, sin = attention_rope(attention, x)
    expected = reference_heads(attention, x, cos, sin)
    expected = attention.base.o_proj(expected.reshape(*x.shape[:2], -1).float())
    torch.testing.assert_close(attention.attend(x, (cos, sin), None), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("method", "options"), FORMS)
def test_decoding_in_pieces_equals_the_full_forward(method, options):
    model = tiny_llama(seed=11)
    linearize(model, method, window=W, **options)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
        ids = torch.randint(2, 90, (2, 23), generator=torch.Generator().manual_seed(2))
        expected = model(input_ids=ids).logits
        cache = DynamicCache()
        # pieces that start before, at and after the anchors and the window fill up, and single tokens
        pieces = [model(input_ids=ids[:, a:b], cache=cache, use_cache=True).logits
                  for a, b in ((0, 1), (1, 3), (3, 4), (4, 11), (11, 12), (12, 13), (13, 23))]
    torch.testing.assert_close(torch.cat(pieces, dim=1), expected, atol=1e-5, rtol=1e-4)


def test_convex_rows_sum_to_one_so_constant_values_pass_through():
    """Under 'convex' the window, the sinks' share and the normalised GLA are one average: v ≡ c gives c."""
    attention, x = layer_and_inputs("lizard_plus", W)
    cos, sin = attention_rope(attention, x)
    B, T, _ = x.shape
    q, k, _ = projections(attention, x)
    constant = torch.randn(attention.num_kv_heads, attention.head_dim).expand(B, T, -1, -1)
    linear = attention._linear(q, repeat_kv(k, attention.groups), repeat_kv(constant, attention.groups),
                               attention.gate(x), None)
    window, lse = attention._window(q, k, constant, (cos, sin), None, keep=W - 1, return_lse=True)
    share = torch.exp(torch.logsumexp(attention.sink_logits, -1) - lse)[..., None]
    mixed = window + share * linear
    torch.testing.assert_close(mixed, repeat_kv(constant, attention.groups), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("options", "message"), [
    ({"combine": "convex", "num_sinks": 0}, "num_sinks >= 1"),
    ({"combine": "convex", "sink_values": "zeros"}, "sink_values"),
    ({"combine": "shared", "num_anchors": 2}, "num_anchors"),
    ({"combine": "unnormalised", "gla_scale_init": 0.0}, "gla_scale_init"),
    ({"gate_bias": [3.0]}, "gate_bias"),
    ({"feature_init": "zeros"}, "feature_init"),
])
def test_inconsistent_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        linearize(tiny_llama(), "lizard", **options)


def test_gate_bias_and_sink_init_are_options():
    model = tiny_llama()
    linearize(model, "lizard", gate_bias=[1.0, 2.0], sink_init=4.0)
    attention = model.model.layers[0].self_attn
    torch.testing.assert_close(attention.gate.proj.bias, torch.linspace(1.0, 2.0, attention.num_heads))
    assert torch.all(attention.sink_logits == 4.0)
