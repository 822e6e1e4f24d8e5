"""The one-query softmax step against the float64 reference: sinks, values carried by the sinks, grouped heads.

Both ways it is computed are checked: PyTorch's fused CPU attention kernel (which returns the
log-normaliser) and the softmax written out (what other devices, key masks and mismatched
value sizes use). Fresh random inputs, poisoned allocations, every element compared.
"""

from __future__ import annotations

import pytest
import torch

from lizard_bench.kernels import softmax_attention_step
from lizard_bench.kernels.reference import softmax_attention_reference
from lizard_bench.kernels.torch_backend import fused_window
from tests.kernels.helpers import assert_close_everywhere, generator, one_torch_thread, poison_allocations, randn


@pytest.fixture(autouse=True)
def one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(params=["fused", "written out"])
def path(request, monkeypatch):
    if request.param == "written out":
        monkeypatch.setattr(fused_window, "CPU_ATTENTION_WITH_LSE", None)  # what kernel_reads looks for
    return request.param


def expected(q, k, v, sinks, carried):
    """Reference: the softmax over keys and sinks, plus each sink's share times the carried value."""
    out, lse = softmax_attention_reference(q[:, None], k, v, sink_logits=sinks, return_lse=True)
    out, lse = out[:, 0], lse[:, 0]
    if carried is not None:
        share = torch.exp(torch.logsumexp(sinks.double(), dim=-1) - lse)  # [B, H]
        out = out + share[..., None] * carried.double()
    return out


@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (6, 2)])
@pytest.mark.parametrize("keys", [1, 7, 33])
@pytest.mark.parametrize("sinks,carry", [(0, False), (3, False), (3, True), (1, True)])
def test_one_query_matches_the_reference(path, heads, kv_heads, keys, sinks, carry):
    g = generator(heads * 100 + keys * 10 + sinks)
    B, D = 2, 16
    q, k, v = randn(g, B, heads, D), randn(g, B, keys, kv_heads, D), randn(g, B, keys, kv_heads, D)
    sink_logits = randn(g, heads, sinks) * 2 if sinks else None
    carried = randn(g, B, heads, D) if carry else None
    with poison_allocations():
        out = softmax_attention_step(q, k, v, sink_logits=sink_logits, sink_values=carried)
    assert out.shape == (B, heads, D) and out.dtype == q.dtype
    assert_close_everywhere(out, expected(q, k, v, sink_logits, carried))


def test_extreme_sinks_give_their_values_or_nothing(path):
    """A sink logit far above every score takes all the weight (its carried value); far below, none of it."""
    g = generator(7)
    q, k, v, carried = randn(g, 1, 4, 8), randn(g, 1, 5, 2, 8), randn(g, 1, 5, 2, 8), randn(g, 1, 4, 8)
    high = softmax_attention_step(q, k, v, sink_logits=torch.full((4, 2), 80.0), sink_values=carried)
    low = softmax_attention_step(q, k, v, sink_logits=torch.full((4, 2), -80.0), sink_values=carried)
    assert_close_everywhere(high, carried)
    assert_close_everywhere(low, expected(q, k, v, None, None))


def test_value_size_may_differ_from_the_key_size():
    g = generator(8)
    q, k, v = randn(g, 2, 4, 8), randn(g, 2, 6, 2, 8), randn(g, 2, 6, 2, 5)
    sinks = randn(g, 4, 2)
    assert_close_everywhere(softmax_attention_step(q, k, v, sink_logits=sinks),
                            expected(q, k, v, sinks, None))


def test_bad_shapes_are_refused():
    q, k = torch.randn(1, 4, 8), torch.randn(1, 3, 2, 8)
    with pytest.raises(ValueError, match="q \\[B, H, D\\]"):
        softmax_attention_step(q[:, None], k, k)
    with pytest.raises(ValueError, match="sink_values"):
        softmax_attention_step(q, k, k, sink_logits=torch.randn(4, 2), sink_values=torch.randn(1, 4, 3))
