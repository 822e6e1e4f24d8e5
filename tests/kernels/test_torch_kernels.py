"""The PyTorch kernels against the float64 references, their gradients, state hand-off and the public API.

Inputs are fresh seeded random tensors (never zeros, never constants), outputs are
compared on every element, and the comparisons run with poisoned allocations so an
element no kernel wrote cannot pass.
"""

from __future__ import annotations

import pytest
import torch

import lizard_bench.kernels as kernels
from lizard_bench.kernels import GLAState, dispatch
from lizard_bench.kernels import torch_backend as tb
from lizard_bench.kernels.reference import gated_linear_attention_reference, softmax_attention_reference
from lizard_bench.kernels.torch_backend import softmax as softmax_module
from lizard_bench.kernels.torch_backend.gla import gated_linear_attention as gla_chunked
from lizard_bench.kernels.torch_backend.window import banded_window_attention
from tests.kernels.helpers import (
    assert_close_everywhere,
    generator,
    hedgehog_features,
    key_masks,
    log_gates,
    one_torch_thread,
    poison_allocations,
    randn,
    record_dense_calls,
)


@pytest.fixture
def poisoned():
    with poison_allocations():
        yield


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny problems: see :func:`one_torch_thread` (this file: 45-90 s with two threads under load, 4 s with one)."""
    with one_torch_thread():
        yield


def softmax_inputs(seed, T, S, H=4, Hkv=2, D=16, Dv=12, sinks=True, dtype=torch.float32, B=2):
    g = generator(seed)
    q = randn(g, B, T, H, D, dtype=dtype)
    k, v = randn(g, B, S, Hkv, D, dtype=dtype), randn(g, B, S, Hkv, Dv, dtype=dtype)
    sink_logits = 2.0 * randn(g, H, 3) if sinks else None
    return q, k, v, sink_logits


def gla_inputs(seed, T, B=2, H=3, K=32, V=16, gates=(-10.0, -1e-3), state=True, dtype=torch.float32, Hk=None,
               Hv=None):
    """GLA inputs; ``Hk``/``Hv`` (default H) give keys/values fewer heads than the queries."""
    g = generator(seed)
    q, k = hedgehog_features(g, B, T, H, K, dtype=dtype), hedgehog_features(g, B, T, Hk or H, K, dtype=dtype)
    v = randn(g, B, T, Hv or H, V, dtype=dtype)
    log_gate = log_gates(g, B, T, H, strongest=gates[0], weakest=gates[1])
    initial = None
    if state:
        initial = GLAState(S=randn(g, B, H, K, V), z=hedgehog_features(g, B, H, K) * 5.0)
    return q, k, v, log_gate, initial


# --------------------------------------------------------------------------- softmax attention

SOFTMAX_CASES = {
    # name: (T, S, window, sinks, causal, Hkv)
    "decode-window": (1, 200, 32, True, True, 2),
    "decode-full-window": (1, 32, 32, True, True, 2),  # a ring buffer: every held key is in the window
    "decode-window-no-sinks": (1, 40, 16, False, True, 2),
    "decode-sinks-no-window": (1, 50, None, True, True, 4),
    "T<window": (63, 63, 128, True, True, 2),
    "several-blocks": (130, 130, 32, True, True, 2),
    "long": (1000, 1000, 128, True, True, 2),
    "long-odd-window-no-sinks": (1000, 1000, 100, False, True, 2),
    "T<S-small-window": (100, 300, 7, True, True, 2),
    "T<S-short-history": (100, 130, 64, True, True, 2),
    "window-1": (20, 20, 1, True, True, 2),
    "window>=S": (20, 20, 50, True, True, 2),
    "mha-window": (130, 130, 32, True, True, 4),
    "teacher-sdpa": (63, 63, None, False, True, 2),
    "teacher-sdpa-T<S": (37, 100, None, False, True, 2),
    "teacher-sdpa-decode": (1, 50, None, False, True, 2),
    "causal-sinks-dense": (130, 130, None, True, True, 2),
    "non-causal": (50, 80, None, False, False, 2),
    "non-causal-sinks": (50, 80, None, True, False, 2),
    "non-causal-window-sinks": (50, 80, 10, True, False, 2),
}


@pytest.mark.parametrize("case", list(SOFTMAX_CASES), ids=list(SOFTMAX_CASES))
def test_softmax_matches_reference(case, poisoned):
    T, S, window, sinks, causal, Hkv = SOFTMAX_CASES[case]
    q, k, v, sink_logits = softmax_inputs(list(SOFTMAX_CASES).index(case), T, S, Hkv=Hkv, sinks=sinks)
    out = tb.softmax_attention(q, k, v, causal=causal, window=window, sink_logits=sink_logits, scale=None)
    expected = softmax_attention_reference(q, k, v, causal=causal, window=window, sink_logits=sink_logits)
    assert out.dtype == q.dtype
    assert_close_everywhere(out, expected)


@pytest.mark.parametrize("block_size,segment", [(16, 64), (32, 96), (48, 48)])
def test_banded_blocks_and_segments_match_reference(block_size, segment, poisoned):
    """Block sizes that do not divide the window and segments that cut the sequence at odd places."""
    q, k, v, sink_logits = softmax_inputs(7, 301, 333)
    out = banded_window_attention(q, k, v, window=40, sink_logits=sink_logits, scale=0.3, block_size=block_size,
                                  segment=segment)
    expected = softmax_attention_reference(q, k, v, window=40, sink_logits=sink_logits, scale=0.3)
    assert_close_everywhere(out, expected)


def test_softmax_is_max_shifted(poisoned):
    """Scores and sink logits far beyond e^88 (float32 overflow) still give the exact softmax."""
    q, k, v, sink_logits = softmax_inputs(11, 130, 130)
    q = q * 40.0
    sink_logits = sink_logits + 200.0 * torch.tensor([[1.0], [0.0], [-1.0], [0.5]])
    for window in (32, None):
        out = tb.softmax_attention(q, k, v, causal=True, window=window, sink_logits=sink_logits, scale=None)
        expected = softmax_attention_reference(q, k, v, window=window, sink_logits=sink_logits)
        assert_close_everywhere(out, expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("window,sinks", [(32, True), (None, False)], ids=["window+sinks", "teacher"])
def test_softmax_half_precision(dtype, window, sinks, poisoned):
    q, k, v, sink_logits = softmax_inputs(5, 130, 130, sinks=sinks, dtype=dtype)
    out = tb.softmax_attention(q, k, v, causal=True, window=window, sink_logits=sink_logits, scale=None)
    assert out.dtype == dtype
    expected = softmax_attention_reference(q, k, v, window=window, sink_logits=sink_logits)
    assert_close_everywhere(out, expected)


def test_windowed_path_is_banded_not_dense(monkeypatch):
    """Long windowed inputs never reach the O(T·S) path; short ones only see the last T + w - 1 keys."""

    def refuse(*args, **kwargs):
        raise AssertionError("dense path used for a long windowed input")

    q, k, v, sink_logits = softmax_inputs(3, 300, 400)
    with monkeypatch.context() as patch:
        patch.setattr(softmax_module, "_dense", refuse)
        tb.softmax_attention(q, k, v, causal=True, window=32, sink_logits=sink_logits, scale=None)

    seen = record_dense_calls(monkeypatch, lambda q, k: k.shape[1])  # keys per dense call
    tb.softmax_attention(q[:, -20:], k, v, causal=True, window=32, sink_logits=sink_logits, scale=None)
    assert seen == [20 + 32 - 1]


def test_windowed_decode_matches_prefill_rows():
    """One query against the cache (or just the last w keys, a ring buffer) equals the prefill row."""
    window = 32
    q, k, v, sink_logits = softmax_inputs(13, 150, 150)
    prefill = tb.softmax_attention(q, k, v, causal=True, window=window, sink_logits=sink_logits, scale=None)
    for t in (0, 5, 31, 32, 100, 149):
        start = max(0, t + 1 - window)
        full_cache, ring = (
            tb.softmax_attention(q[:, t : t + 1], k[:, first : t + 1], v[:, first : t + 1], causal=True,
                                 window=window, sink_logits=sink_logits, scale=None)
            for first in (0, start)
        )
        torch.testing.assert_close(full_cache, prefill[:, t : t + 1], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(ring, prefill[:, t : t + 1], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("window", [3, None], ids=["banded", "dense"])
def test_softmax_gradcheck(window):
    """Gradients w.r.t. q, k, v and the sink logits, through the banded (padded, T < S) and dense paths."""
    q, k, v, sink_logits = softmax_inputs(17, 10, 12, H=2, Hkv=1, D=4, Dv=3, dtype=torch.float64, B=1)
    sink_logits = sink_logits.double()
    inputs = tuple(x.requires_grad_() for x in (q, k, v, sink_logits))

    def fn(q, k, v, sinks):
        return tb.softmax_attention(q, k, v, causal=True, window=window, sink_logits=sinks, scale=None)

    assert torch.autograd.gradcheck(fn, inputs)


def test_banded_segments_gradcheck():
    q, k, v, sink_logits = softmax_inputs(19, 9, 9, H=2, Hkv=1, D=3, Dv=2, dtype=torch.float64, B=1)
    inputs = tuple(x.requires_grad_() for x in (q, k, v, sink_logits.double()))

    def fn(q, k, v, sinks):
        return banded_window_attention(q, k, v, window=3, sink_logits=sinks, scale=0.7, block_size=2, segment=4)

    assert torch.autograd.gradcheck(fn, inputs)


# --------------------------------------------------------------------------- gated linear attention

GATES = {"mixed": (-10.0, -1e-3), "near-one": (-2e-3, -1e-3), "near-zero": (-10.0, -8.0)}


@pytest.mark.parametrize("with_state", [False, True], ids=["no-state", "state"])
@pytest.mark.parametrize("gates", list(GATES))
@pytest.mark.parametrize("T", [1, 63, 130, 1000])
def test_gla_matches_reference(T, gates, with_state, poisoned):
    q, k, v, log_gate, initial = gla_inputs(T * 7 + len(gates), T, gates=GATES[gates], state=with_state)
    out, state = tb.gated_linear_attention(q, k, v, log_gate, initial_state=initial, output_final_state=True, eps=1e-6)
    expected, expected_state = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial)
    assert out.dtype == q.dtype and state.S.dtype == torch.float32 and state.z.dtype == torch.float32
    assert_close_everywhere(out, expected)
    assert_close_everywhere(state.S, expected_state.S)
    assert_close_everywhere(state.z, expected_state.z)


@pytest.mark.parametrize("chunk_size,segment", [(16, 48), (7, 7), (128, 128)])
def test_gla_chunks_and_segments(chunk_size, segment, poisoned):
    q, k, v, log_gate, initial = gla_inputs(23, 301)
    out, state = gla_chunked(q, k, v, log_gate, initial_state=initial, output_final_state=True, chunk_size=chunk_size,
                             segment=segment)
    expected, expected_state = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial)
    assert_close_everywhere(out, expected)
    assert_close_everywhere(state.S, expected_state.S)
    assert_close_everywhere(state.z, expected_state.z)


def test_gla_lizard_feature_sizes(poisoned):
    """K = 128 features per head (two softmax halves of 64) and V = 64, as in the paper's setting."""
    q, k, v, log_gate, initial = gla_inputs(29, 200, B=1, H=2, K=128, V=64)
    out, _ = tb.gated_linear_attention(q, k, v, log_gate, initial_state=initial, output_final_state=False, eps=1e-6)
    expected, _ = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial)
    assert_close_everywhere(out, expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gla_half_precision(dtype, poisoned):
    q, k, v, log_gate, initial = gla_inputs(31, 130, dtype=dtype)
    out, state = tb.gated_linear_attention(q, k, v, log_gate, initial_state=initial, output_final_state=True, eps=1e-6)
    expected, expected_state = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial)
    assert out.dtype == dtype and state.S.dtype == torch.float32
    assert_close_everywhere(out, expected)
    assert_close_everywhere(state.S, expected_state.S, dtype=dtype)  # float32 state of rounded inputs


def test_gla_prefill_in_pieces_equals_one_shot():
    q, k, v, log_gate, initial = gla_inputs(37, 130)
    whole, whole_state = tb.gated_linear_attention(q, k, v, log_gate, initial_state=initial, output_final_state=True,
                                                   eps=1e-6)
    state, pieces = initial, []
    for start, stop in ((0, 37), (37, 127), (127, 130)):
        part, state = tb.gated_linear_attention(
            q[:, start:stop], k[:, start:stop], v[:, start:stop], log_gate[:, start:stop],
            initial_state=state, output_final_state=True, eps=1e-6,
        )
        pieces.append(part)
    # Equal up to float32 round-off: the chunk boundaries, hence the summation order, differ.
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(state.S, whole_state.S, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state.z, whole_state.z, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("in_place", [False, True], ids=["new-state", "in-place"])
@pytest.mark.parametrize("prefix", [0, 37], ids=["steps-only", "prefill-then-steps"])
@pytest.mark.parametrize("with_state", [False, True], ids=["no-state", "state"])
def test_gla_decode_steps_equal_prefill(prefix, with_state, in_place):
    """A prefill of ``prefix`` tokens, then one step per token, reproduces a 70-token prefill."""
    q, k, v, log_gate, initial = gla_inputs(41, 70, state=with_state)
    whole, whole_state = tb.gated_linear_attention(q, k, v, log_gate, initial_state=initial, output_final_state=True,
                                                   eps=1e-6)
    B, _, H, K = q.shape
    state = (GLAState(S=initial.S.clone(), z=initial.z.clone()) if initial
             else GLAState(S=torch.zeros(B, H, K, v.shape[-1]), z=torch.zeros(B, H, K)))
    outputs = []
    if prefix:
        first, state = tb.gated_linear_attention(q[:, :prefix], k[:, :prefix], v[:, :prefix], log_gate[:, :prefix],
                                                 initial_state=initial, output_final_state=True, eps=1e-6)
        outputs.append(first)
    for t in range(prefix, 70):
        held = state
        o, state = tb.gated_linear_attention_step(q[:, t], k[:, t], v[:, t], log_gate[:, t], state, eps=1e-6,
                                                  in_place=in_place)
        assert (state.S is held.S) == in_place
        outputs.append(o.unsqueeze(1))
    torch.testing.assert_close(torch.cat(outputs, dim=1), whole, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(state.S, whole_state.S, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state.z, whole_state.z, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("seed", "heads"), [(43, (2, 2, 2)), (630, (4, 2, 1))], ids=["all-heads", "grouped"])
def test_gla_gradcheck(seed, heads):
    """Gradients w.r.t. q, k, v, log-gates and the initial state, over several chunks and two segments; grouped
    k (Hk = 2) and v (Hv = 1) gradients sum over the query heads that read them."""
    H, Hk, Hv = heads
    q, k, v, log_gate, initial = gla_inputs(seed, 11, B=1, H=H, K=4, V=3, Hk=Hk, Hv=Hv, gates=(-2.0, -0.01),
                                            dtype=torch.float64)
    inputs = tuple(x.double().requires_grad_() for x in (q, k, v, log_gate, initial.S, initial.z))

    def fn(q, k, v, log_gate, S, z):
        out, state = gla_chunked(q, k, v, log_gate, initial_state=GLAState(S, z), output_final_state=True,
                                 chunk_size=4, segment=8)
        return out, state.S, state.z

    assert torch.autograd.gradcheck(fn, inputs)


def test_autograd_path_matches_reference():
    """With inputs that need gradients the segments are concatenated rather than written in
    place (see SegmentedOutput): same values, and a finite backward through many segments."""
    q, k, v, sink_logits = softmax_inputs(73, 301, 301)
    leaves = [x.requires_grad_() for x in (q, k, v, sink_logits)]
    out = banded_window_attention(q, k, v, window=40, sink_logits=sink_logits, scale=0.3, segment=64)
    assert_close_everywhere(out.detach(), softmax_attention_reference(q, k, v, window=40, sink_logits=sink_logits,
                                                                      scale=0.3))
    out.square().sum().backward()
    assert all(x.grad is not None and torch.isfinite(x.grad).all() for x in leaves)

    q, k, v, log_gate, initial = gla_inputs(79, 301)
    leaves = [x.requires_grad_() for x in (q, k, v, log_gate, *initial)]
    out, state = gla_chunked(q, k, v, log_gate, initial_state=initial, output_final_state=True, segment=64)
    expected, _ = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial)
    assert_close_everywhere(out.detach(), expected)
    (out.square().sum() + state.S.sum()).backward()
    assert all(x.grad is not None and torch.isfinite(x.grad).all() for x in leaves)


# --------------------------------------------------------------------------- helpers and public API


def test_poisoned_allocations_expose_unwritten_output():
    """The poison helper turns a half-written output buffer into a failure, not a lucky pass."""
    q, k, v, log_gate, _ = gla_inputs(47, 20, state=False)
    expected, _ = gated_linear_attention_reference(q, k, v, log_gate)

    def lazy_kernel():
        out = torch.empty_like(v)
        out[:, :10] = expected[:, :10].float()  # forgets the second half
        return out

    with poison_allocations(), pytest.raises(AssertionError, match="non-finite"):
        assert_close_everywhere(lazy_kernel(), expected)


def test_public_api_runs_torch_backend():
    q, k, v, sink_logits = softmax_inputs(53, 70, 70)
    out = kernels.softmax_attention(q, k, v, window=16, sink_logits=sink_logits, backend="torch")
    assert_close_everywhere(out, softmax_attention_reference(q, k, v, window=16, sink_logits=sink_logits))

    q, k, v, log_gate, initial = gla_inputs(59, 70)
    out, state = kernels.gated_linear_attention(q, k, v, log_gate, initial_state=initial, output_final_state=True,
                                                backend="torch")
    expected, expected_state = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial)
    assert_close_everywhere(out, expected)
    o, _ = kernels.gated_linear_attention_step(q[:, 0], k[:, 0], v[:, 0], log_gate[:, 0], state)
    step_expected, _ = gated_linear_attention_reference(q[:, :1], k[:, :1], v[:, :1], log_gate[:, :1],
                                                        initial_state=expected_state)
    assert_close_everywhere(o, step_expected[:, 0])
    _, no_state = kernels.gated_linear_attention(q, k, v, log_gate, backend="torch")
    assert no_state is None


def test_select_backend_argument_env_and_device(monkeypatch):
    monkeypatch.delenv(kernels.BACKEND_ENV_VAR, raising=False)
    assert kernels.select_backend("cpu") == "torch"
    assert kernels.select_backend("cpu", "auto") == "torch"
    assert kernels.select_backend("cpu", "torch") == "torch"
    monkeypatch.setattr(dispatch, "triton_available", lambda: True)
    assert kernels.select_backend(torch.device("cuda")) == "triton"
    assert kernels.select_backend("cuda", "torch") == "torch"
    monkeypatch.setenv(kernels.BACKEND_ENV_VAR, "torch")
    assert kernels.select_backend("cuda") == "torch"
    monkeypatch.setenv(kernels.BACKEND_ENV_VAR, "triton")
    assert kernels.select_backend("cpu") == "triton"
    assert kernels.select_backend("cpu", "torch") == "torch"  # the argument wins over the environment
    monkeypatch.setattr(dispatch, "triton_available", lambda: False)
    monkeypatch.delenv(kernels.BACKEND_ENV_VAR)
    assert kernels.select_backend("cuda") == "torch"
    with pytest.raises(RuntimeError, match="triton is not installed"):
        kernels.select_backend("cpu", "triton")


@pytest.mark.parametrize("source", ["argument", "env"])
def test_select_backend_rejects_unknown_names(source, monkeypatch):
    monkeypatch.delenv(kernels.BACKEND_ENV_VAR, raising=False)
    if source == "env":
        monkeypatch.setenv(kernels.BACKEND_ENV_VAR, "cuda-graphs")
    requested = "cuda-graphs" if source == "argument" else None
    with pytest.raises(ValueError, match=r"unknown kernel backend 'cuda-graphs'.*torch, triton"):
        kernels.select_backend("cpu", requested)
    q, k, v, _ = softmax_inputs(61, 4, 4, sinks=False)
    with pytest.raises(ValueError, match="unknown kernel backend"):
        kernels.softmax_attention(q, k, v, backend=requested)


def test_shape_validation():
    q, k, v, sinks = softmax_inputs(67, 8, 8)
    with pytest.raises(ValueError, match=r"\[B, T, H, D\]"):
        kernels.softmax_attention(q[0], k, v, backend="torch")
    with pytest.raises(ValueError, match="multiple of key/value heads"):
        kernels.softmax_attention(q[:, :, :3], k, v, backend="torch")
    with pytest.raises(ValueError, match="fewer keys"):
        kernels.softmax_attention(q, k[:, :4], v[:, :4], backend="torch")
    with pytest.raises(ValueError, match="window must be >= 1"):
        kernels.softmax_attention(q, k, v, window=0, backend="torch")
    with pytest.raises(ValueError, match="sink_logits must be"):
        kernels.softmax_attention(q, k, v, sink_logits=sinks[:2], backend="torch")
    q, k, v, log_gate, _ = gla_inputs(71, 8, state=False)
    with pytest.raises(ValueError, match="gated_linear_attention expects"):
        kernels.gated_linear_attention(q, k[:, :4], v, log_gate, backend="torch")
    with pytest.raises(ValueError, match="gated_linear_attention expects"):
        kernels.gated_linear_attention(q, k, v, log_gate[..., :1], backend="torch")
    with pytest.raises(ValueError, match="multiple of key heads"):
        kernels.gated_linear_attention(q, k[:, :, :2], v, log_gate, backend="torch")
    with pytest.raises(ValueError, match="multiple of key heads"):
        kernels.gated_linear_attention(q, k, v[:, :, :2], log_gate, backend="torch")
    state = GLAState(S=torch.zeros(2, 3, 32, 16), z=torch.zeros(2, 3, 32))
    with pytest.raises(ValueError, match="multiple of key heads"):
        kernels.gated_linear_attention_step(q[:, 0], k[:, 0], v[:, 0, :2], log_gate[:, 0], state)
    with pytest.raises(ValueError, match="gated_linear_attention_step expects"):
        kernels.gated_linear_attention_step(q[:, 0], k[:, 0, :, :4], v[:, 0], log_gate[:, 0], state)


# --------------------------------------------------------------------------- log normalisers (shared-normaliser merges)

@pytest.mark.parametrize("case", ["decode-window", "T<window", "several-blocks", "long", "T<S-small-window",
                                  "teacher-sdpa", "causal-sinks-dense", "non-causal-window-sinks"])
def test_softmax_lse_matches_reference(case, poisoned):
    """Every path (banded, short dense, former SDPA cases) returns the same output plus log normalisers."""
    T, S, window, sinks, causal, Hkv = SOFTMAX_CASES[case]
    q, k, v, sink_logits = softmax_inputs(50 + list(SOFTMAX_CASES).index(case), T, S, Hkv=Hkv, sinks=sinks)
    out, lse = tb.softmax_attention(q, k, v, causal=causal, window=window, sink_logits=sink_logits, scale=None,
                                    return_lse=True)
    expected, expected_lse = softmax_attention_reference(q, k, v, causal=causal, window=window,
                                                         sink_logits=sink_logits, return_lse=True)
    assert lse.shape == q.shape[:3]
    assert_close_everywhere(out, expected)
    assert_close_everywhere(lse, expected_lse)


@pytest.mark.parametrize("window", [3, None], ids=["banded", "dense"])
def test_softmax_lse_gradcheck(window):
    q, k, v, sink_logits = softmax_inputs(23, 10, 12, H=2, Hkv=1, D=4, Dv=3, dtype=torch.float64, B=1)
    inputs = tuple(x.requires_grad_() for x in (q, k, v, sink_logits.double()))

    def fn(q, k, v, sinks):
        return tb.softmax_attention(q, k, v, causal=True, window=window, sink_logits=sinks, scale=None,
                                    return_lse=True)

    assert torch.autograd.gradcheck(fn, inputs)


# --------------------------------------------------------------------------- unnormalised GLA (no denominator)

UNNORMALISED_GATES = {**GATES, "no-decay": (-1e-12, -1e-13)}  # no decay: the numerator grows with T


@pytest.mark.parametrize("gates", list(UNNORMALISED_GATES))
@pytest.mark.parametrize("T", [1, 63, 130, 4099])
def test_unnormalised_gla_matches_reference(T, gates, poisoned):
    """o_i = q_iᵀ S_i with no denominator, also at long odd lengths where the numerator grows into the thousands."""
    q, k, v, log_gate, initial = gla_inputs(T * 11 + len(gates), T, B=1, H=2, gates=UNNORMALISED_GATES[gates])
    out, state = tb.gated_linear_attention(q, k, v, log_gate, initial_state=initial, output_final_state=True,
                                           normalize=False)
    expected, expected_state = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial,
                                                                normalize=False)
    assert_close_everywhere(out, expected)
    assert_close_everywhere(state.S, expected_state.S)
    assert_close_everywhere(state.z, expected_state.z)
    if gates == "no-decay" and T > 1000:
        assert expected_state.z.max() > 100, "the case must exercise large undecayed sums"


def test_unnormalised_decode_steps_equal_prefill():
    q, k, v, log_gate, initial = gla_inputs(83, 70)
    whole, _ = tb.gated_linear_attention(q, k, v, log_gate, initial_state=initial, output_final_state=True,
                                         normalize=False)
    first, state = tb.gated_linear_attention(q[:, :29], k[:, :29], v[:, :29], log_gate[:, :29], initial_state=initial,
                                             output_final_state=True, normalize=False)
    outputs = [first]
    for t in range(29, 70):
        o, state = kernels.gated_linear_attention_step(q[:, t], k[:, t], v[:, t], log_gate[:, t], state,
                                                       normalize=False)
        outputs.append(o.unsqueeze(1))
    torch.testing.assert_close(torch.cat(outputs, dim=1), whole, atol=1e-5, rtol=1e-4)


def test_unnormalised_gla_gradcheck():
    q, k, v, log_gate, initial = gla_inputs(89, 11, B=1, H=2, K=4, V=3, gates=(-2.0, -0.01), dtype=torch.float64)
    inputs = tuple(x.double().requires_grad_() for x in (q, k, v, log_gate, initial.S, initial.z))

    def fn(q, k, v, log_gate, S, z):
        out, state = gla_chunked(q, k, v, log_gate, initial_state=GLAState(S, z), output_final_state=True,
                                 normalize=False, chunk_size=4, segment=8)
        return out, state.S, state.z

    assert torch.autograd.gradcheck(fn, inputs)


def test_public_api_passes_normalize_through():
    q, k, v, log_gate, initial = gla_inputs(97, 40)
    out, _ = kernels.gated_linear_attention(q, k, v, log_gate, initial_state=initial, normalize=False, backend="torch")
    expected, _ = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial, normalize=False)
    assert_close_everywhere(out, expected)


# --------------------------------------------------------------------------- padded keys

KEY_MASK_CASES = ["decode-window", "decode-full-window", "decode-sinks-no-window",
                  "T<window", "several-blocks", "long", "T<S-small-window", "T<S-short-history",
                  "window>=S", "teacher-sdpa", "teacher-sdpa-T<S", "teacher-sdpa-decode", "causal-sinks-dense",
                  "non-causal-window-sinks"]


@pytest.mark.parametrize("case", KEY_MASK_CASES)
def test_key_mask_matches_reference(case, poisoned):
    """Every path (sdpa, dense, banded) hides masked keys as the reference does, rows of only masked keys included."""
    T, S, window, sinks, causal, Hkv = SOFTMAX_CASES[case]
    seed = 500 + KEY_MASK_CASES.index(case)
    q, k, v, sink_logits = softmax_inputs(seed, T, S, Hkv=Hkv, sinks=sinks, B=3)
    mask = key_masks(generator(seed), 3, S)
    out, lse = tb.softmax_attention(q, k, v, causal=causal, window=window, sink_logits=sink_logits, scale=None,
                                    return_lse=True, key_mask=mask)
    expected, expected_lse = softmax_attention_reference(q, k, v, causal=causal, window=window,
                                                         sink_logits=sink_logits, return_lse=True, key_mask=mask)
    assert_close_everywhere(out, expected)
    torch.testing.assert_close(lse.double(), expected_lse, rtol=1e-6, atol=1e-4)
    if window is None and not sinks and causal:  # the teacher's own path, without lse
        plain = tb.softmax_attention(q, k, v, causal=True, key_mask=mask)
        assert_close_everywhere(plain, expected)


def test_key_mask_equals_dropping_the_keys():
    """A left-padded row's real queries see exactly what the unpadded row sees (the reference's own promise)."""
    q, k, v, sink_logits = softmax_inputs(41, 40, 40, B=1)
    pad = 7
    mask = (torch.arange(40) >= pad)[None]
    padded = tb.softmax_attention(q, k, v, window=8, sink_logits=sink_logits, key_mask=mask)
    plain = tb.softmax_attention(q[:, pad:], k[:, pad:], v[:, pad:], window=8, sink_logits=sink_logits)
    torch.testing.assert_close(padded[:, pad:], plain, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("window", [3, None], ids=["banded", "dense"])
def test_key_mask_gradcheck(window):
    q, k, v, sink_logits = softmax_inputs(43, 10, 12, H=2, Hkv=1, D=4, Dv=3, dtype=torch.float64, B=2)
    mask = key_masks(generator(43), 2, 12)
    inputs = tuple(x.requires_grad_() for x in (q, k, v, sink_logits.double()))

    def fn(q, k, v, sinks):
        return tb.softmax_attention(q, k, v, causal=True, window=window, sink_logits=sinks, scale=None,
                                    key_mask=mask)

    assert torch.autograd.gradcheck(fn, inputs)


def test_key_mask_half_precision_sdpa_is_finite():
    """16-bit masks cannot hold the masked-key score; padding rows must still not turn into NaN."""
    q, k, v, _ = softmax_inputs(47, 20, 20, sinks=False, dtype=torch.float16, B=2)
    mask = key_masks(generator(47), 2, 20)
    out = tb.softmax_attention(q, k, v, causal=True, key_mask=mask)
    expected = softmax_attention_reference(q, k, v, causal=True, key_mask=mask)
    assert torch.isfinite(out).all()
    real = mask[:, :, None, None].expand_as(out)  # rows whose own key is real see at least that key
    torch.testing.assert_close(out[real].double(), expected[real], atol=2e-3, rtol=1e-2)


def test_key_mask_shape_is_checked():
    q, k, v, _ = softmax_inputs(49, 4, 4, B=2)
    with pytest.raises(ValueError, match="key_mask must be bool"):
        kernels.softmax_attention(q, k, v, key_mask=torch.ones(2, 3, dtype=torch.bool))


# --------------------------------------------------------------------------- grouped key/value heads in GLA

# (H, Hk, Hv): keys and values with fewer heads than the queries, their counts possibly different
# (Lizard's case: keys feature-mapped per query head, values grouped).
GROUPED_HEADS = [(6, 6, 2), (6, 3, 3), (6, 2, 1), (4, 1, 2)]


def _repeated(x: torch.Tensor, H: int) -> torch.Tensor:
    return x.repeat_interleave(H // x.shape[2], dim=2)


@pytest.mark.parametrize("heads", GROUPED_HEADS, ids=lambda h: "H{}-Hk{}-Hv{}".format(*h))
def test_grouped_reference_is_the_repeated_one(heads):
    """The float64 reference reads key/value head h // G, exactly as if the caller had repeated them."""
    H, Hk, Hv = heads
    q, k, v, log_gate, initial = gla_inputs(601, 9, H=H, Hk=Hk, Hv=Hv)
    grouped, grouped_state = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial)
    repeated, repeated_state = gated_linear_attention_reference(q, _repeated(k, H), _repeated(v, H), log_gate,
                                                                initial_state=initial)
    assert torch.equal(grouped, repeated) and torch.equal(grouped_state.S, repeated_state.S)


@pytest.mark.parametrize("normalize", [True, False], ids=["normalised", "unnormalised"])
@pytest.mark.parametrize("gates", list(GATES))
@pytest.mark.parametrize("T", [1, 63, 301])
@pytest.mark.parametrize("heads", GROUPED_HEADS, ids=lambda h: "H{}-Hk{}-Hv{}".format(*h))
def test_grouped_gla_matches_reference(heads, T, gates, normalize, poisoned):
    """Grouped k/v through the public API: odd lengths over several chunks and segments, extreme gates."""
    H, Hk, Hv = heads
    q, k, v, log_gate, initial = gla_inputs(610 + 7 * T + len(gates), T, H=H, Hk=Hk, Hv=Hv, gates=GATES[gates])
    out, state = kernels.gated_linear_attention(q, k, v, log_gate, initial_state=initial, output_final_state=True,
                                                normalize=normalize, backend="torch")
    expected, expected_state = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial,
                                                                normalize=normalize)
    assert out.shape == (2, T, H, v.shape[-1]) and state.S.shape == (2, H, k.shape[-1], v.shape[-1])
    assert_close_everywhere(out, expected)
    assert_close_everywhere(state.S, expected_state.S)
    assert_close_everywhere(state.z, expected_state.z)


@pytest.mark.parametrize("chunk_size,segment", [(16, 48), (7, 7)])
def test_grouped_gla_chunks_and_segments(chunk_size, segment, poisoned):
    q, k, v, log_gate, initial = gla_inputs(620, 131, H=4, Hk=2, Hv=1)
    out, state = gla_chunked(q, k, v, log_gate, initial_state=initial, output_final_state=True, chunk_size=chunk_size,
                             segment=segment)
    expected, expected_state = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial)
    assert_close_everywhere(out, expected)
    assert_close_everywhere(state.S, expected_state.S)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_grouped_gla_half_precision(dtype, poisoned):
    q, k, v, log_gate, initial = gla_inputs(625, 130, H=6, Hk=6, Hv=2, dtype=dtype)
    out, _ = tb.gated_linear_attention(q, k, v, log_gate, initial_state=initial)
    expected, _ = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial)
    assert out.dtype == dtype
    assert_close_everywhere(out, expected)


@pytest.mark.parametrize("heads", [(6, 6, 2), (6, 2, 3)], ids=lambda h: "H{}-Hk{}-Hv{}".format(*h))
def test_grouped_gla_backward_matches_reference(heads, poisoned):
    """float32 autograd through the torch backend (several segments, strong gates) against the float64 reference."""
    H, Hk, Hv = heads
    q, k, v, log_gate, initial = gla_inputs(640 + Hk, 301, H=H, Hk=Hk, Hv=Hv, gates=GATES["near-zero"])
    leaves = [x.requires_grad_() for x in (q, k, v, log_gate, *initial)]
    g = generator(641)
    grad_out, grad_S = randn(g, 2, 301, H, v.shape[-1]), randn(g, *initial.S.shape)
    out, state = tb.gated_linear_attention(q, k, v, log_gate, initial_state=initial, output_final_state=True)
    grads = torch.autograd.grad([out, state.S], leaves, [grad_out, grad_S])
    expected_out, expected_state = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial)
    expected = torch.autograd.grad([expected_out, expected_state.S], leaves, [grad_out.double(), grad_S.double()])
    for name, got, want in zip(("q", "k", "v", "log_gate", "S0", "z0"), grads, expected, strict=True):
        assert got.shape == want.shape, name
        assert torch.isfinite(got).all(), name
        scale = want.abs().max().item()
        torch.testing.assert_close(got.double(), want.double(), atol=1e-4 * scale + 1e-6, rtol=1e-3,
                                   msg=lambda m, n=name: f"d{n}: {m}")


@pytest.mark.parametrize("in_place", [False, True], ids=["new-state", "in-place"])
@pytest.mark.parametrize("heads", [(6, 6, 2), (6, 3, 1)], ids=lambda h: "H{}-Hk{}-Hv{}".format(*h))
def test_grouped_decode_steps_equal_prefill(heads, in_place):
    """A prefill, then steps with grouped k/v (the public step API), reproduce the one-shot grouped forward."""
    H, Hk, Hv = heads
    q, k, v, log_gate, initial = gla_inputs(650 + Hk, 53, H=H, Hk=Hk, Hv=Hv)
    whole, whole_state = kernels.gated_linear_attention(q, k, v, log_gate, initial_state=initial,
                                                        output_final_state=True, backend="torch")
    first, state = kernels.gated_linear_attention(q[:, :20], k[:, :20], v[:, :20], log_gate[:, :20],
                                                  initial_state=initial, output_final_state=True, backend="torch")
    outputs = [first]
    for t in range(20, 53):
        o, state = kernels.gated_linear_attention_step(q[:, t], k[:, t], v[:, t], log_gate[:, t], state,
                                                       in_place=in_place)
        assert o.shape == (2, H, v.shape[-1])
        outputs.append(o.unsqueeze(1))
    torch.testing.assert_close(torch.cat(outputs, dim=1), whole, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(state.S, whole_state.S, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state.z, whole_state.z, atol=1e-5, rtol=1e-5)
    expected, _ = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial)
    assert_close_everywhere(torch.cat(outputs, dim=1), expected)
