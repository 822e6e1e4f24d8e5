"""The inference path of the local branch on PyTorch's fused CPU attention kernel, against the float64 reference.

Fresh seeded random inputs, every element compared, poisoned allocations (an output row the path
never wrote holds NaN); odd lengths, queries that are the last T of S keys, windows that do not
divide into blocks, grouped heads, strided keys, and spans that start before key 0.
"""

from __future__ import annotations

import pytest
import torch

from lizard_bench.kernels import torch_backend as tb
from lizard_bench.kernels.reference import softmax_attention_reference
from lizard_bench.kernels.torch_backend import fused_window
from tests.kernels.helpers import (
    assert_close_everywhere,
    generator,
    one_torch_thread,
    poison_allocations,
    randn,
    record_dense_calls,
)

pytestmark = pytest.mark.skipif(fused_window.CPU_ATTENTION_WITH_LSE is None,
                                reason="this PyTorch build has no fused CPU attention kernel with log-normaliser")

CASES = {
    # name: (T, S, window, H, Hkv, sinks, B)
    "one-block-past-the-window": (130, 130, 32, 4, 2, True, 2),
    "odd-length-long-window": (1001, 1001, 128, 4, 2, True, 1),
    "T<S-chunk-after-history": (513, 639, 128, 9, 3, True, 1),  # a prefill chunk after w - 1 buffered keys
    "T<S-short-history": (100, 130, 64, 4, 2, False, 2),
    "T<S-long-history": (100, 300, 7, 4, 4, True, 2),
    "window-not-a-multiple-of-blocks": (301, 333, 40, 4, 1, True, 2),
    "window-1": (67, 67, 1, 2, 1, True, 1),
    "window-33": (200, 200, 33, 2, 1, True, 2),
}


def inputs(seed: int, T: int, S: int, H: int, Hkv: int, sinks: bool, B: int, dtype=torch.float64, D: int = 16):
    g = generator(seed)
    q = randn(g, B, T, H, D, dtype=dtype)
    k, v = randn(g, B, S, Hkv, D, dtype=dtype), randn(g, B, S, Hkv, D, dtype=dtype)
    return q, k, v, (2.0 * randn(g, H, 3, dtype=dtype) if sinks else None)


@pytest.fixture(autouse=True)
def one_thread():
    with one_torch_thread():
        yield


@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts calls of the fused kernel, so a test knows the path it checks was taken."""
    calls = []
    kernel = fused_window.CPU_ATTENTION_WITH_LSE

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return kernel(*args, **kwargs)

    monkeypatch.setattr(fused_window, "CPU_ATTENTION_WITH_LSE", counting)
    return calls


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", list(CASES))
def test_fused_window_matches_reference(case, dtype, kernel_calls):
    T, S, window, H, Hkv, sinks, B = CASES[case]
    q, k, v, sink_logits = inputs(list(CASES).index(case), T, S, H, Hkv, sinks, B, dtype)
    with torch.no_grad(), poison_allocations():
        out, lse = tb.softmax_attention(q, k, v, window=window, sink_logits=sink_logits, return_lse=True)
        assert len(kernel_calls) == B  # one kernel call per batch row
        alone = tb.softmax_attention(q, k, v, window=window, sink_logits=sink_logits)
    expected, expected_lse = softmax_attention_reference(q, k, v, window=window, sink_logits=sink_logits,
                                                         return_lse=True)
    assert out.dtype == lse.dtype == dtype
    assert_close_everywhere(out, expected)
    assert_close_everywhere(lse, expected_lse)
    assert_close_everywhere(alone, expected)


def test_strided_keys_and_queries_are_read_in_place(kernel_calls):
    """Keys, values and queries that are views into larger tensors (as a model's projections give) are read
    through their own strides."""
    g = generator(11)
    B, T, H, Hkv, D, window = 2, 250, 4, 2, 16, 48
    packed = randn(g, B, T, H + 2 * Hkv + 1, D)  # q, k, v heads side by side, and one head of nothing
    q, k, v = packed[:, :, :H], packed[:, :, H : H + Hkv], packed[:, :, H + Hkv : H + 2 * Hkv]
    sinks = randn(g, H, 2)
    with torch.no_grad(), poison_allocations():
        out = tb.softmax_attention(q, k, v, window=window, sink_logits=sinks)
    assert kernel_calls
    assert_close_everywhere(out, softmax_attention_reference(q.double(), k.double(), v.double(), window=window,
                                                             sink_logits=sinks.double()), dtype=torch.float32)


def test_fused_equals_the_written_out_path_autograd_takes():
    q, k, v, sinks = inputs(5, 400, 450, 4, 2, True, 2, dtype=torch.float32)
    with torch.no_grad():
        fused, fused_lse = tb.softmax_attention(q, k, v, window=64, sink_logits=sinks, return_lse=True)
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    written, written_lse = tb.softmax_attention(*leaves, window=64, sink_logits=sinks, return_lse=True)
    torch.testing.assert_close(fused, written.detach(), atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(fused_lse, written_lse.detach(), atol=2e-6, rtol=1e-5)


def test_dense_path_takes_only_the_edge_blocks(monkeypatch):
    """Only queries whose span starts before key 0 and the last partial block go the dense way."""
    T, window = 1000, 128
    q, k, v, sinks = inputs(9, T, T, 4, 2, True, 1)
    rows = record_dense_calls(monkeypatch, lambda q, k: q.shape[1])  # query rows per dense call
    with torch.no_grad():
        tb.softmax_attention(q, k, v, window=window, sink_logits=sinks)
    c = min(fused_window.BLOCK, window)
    spans_before_key_0 = -(-(window - 1) // c) * c
    assert rows == [spans_before_key_0, T % c]


@pytest.mark.parametrize("reason", ["autograd", "key-mask", "value-size", "half-precision", "strided-last-dim"])
def test_other_calls_keep_the_written_out_path(reason, kernel_calls):
    """Calls the fused kernel cannot take exactly go the written-out way, and still match the reference."""
    q, k, v, sinks = inputs(3, 200, 200, 4, 2, True, 1, dtype=torch.float32)
    assert fused_window.applies(q, k, v, sinks, None)
    key_mask = None
    if reason == "autograd":
        q.requires_grad_()
    elif reason == "key-mask":
        key_mask = torch.ones(1, 200, dtype=torch.bool)
    elif reason == "value-size":
        v = v[..., :12]
    elif reason == "half-precision":
        q, k, v = q.bfloat16(), k.bfloat16(), v.bfloat16()
    else:  # every other element of wider tensors: the kernel would read the last dimension as contiguous
        q, k, v = (torch.cat([x, x.flip(-1)], dim=-1)[..., ::2] for x in (q, k, v))
    assert not fused_window.applies(q, k, v, sinks, key_mask)
    with torch.set_grad_enabled(reason == "autograd"):
        out = tb.softmax_attention(q, k, v, window=48, sink_logits=sinks, key_mask=key_mask)
    assert not kernel_calls
    expected = softmax_attention_reference(q.detach().double(), k.double(), v.double(), window=48,
                                           sink_logits=sinks.double(), key_mask=key_mask)
    assert_close_everywhere(out.detach(), expected, dtype=out.dtype)
