"""The Triton kernels against the float64 references: outputs, gradients, state hand-off, block skipping.

On a machine without CUDA the kernels run in Triton's interpreter (``tests/conftest.py`` sets
``TRITON_INTERPRET=1``), with 16-row blocks so that small inputs still span several blocks;
on CUDA the same tests run the compiled kernels. Inputs are fresh seeded random tensors,
every output element is compared, and allocations are poisoned with NaN so an element no
kernel wrote cannot pass. Gradients (float32) are compared with torch autograd through the
float64 references.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("triton")

import lizard_bench.kernels as kernels  # noqa: E402
from lizard_bench.kernels import GLAState  # noqa: E402
from lizard_bench.kernels.reference import (  # noqa: E402
    gated_linear_attention_reference,
    softmax_attention_reference,
)
from lizard_bench.kernels.triton_backend import gla, softmax  # noqa: E402
from tests.kernels.helpers import (  # noqa: E402
    assert_close_everywhere,
    generator,
    hedgehog_features,
    key_masks,
    log_gates,
    poison_allocations,
    randn,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture
def poisoned():
    with poison_allocations():
        yield


def assert_grads_close(actual: dict, expected: dict, rel: float = 1e-4) -> None:
    """float32 gradients against float64 ones: every element finite, within ``rel`` of the largest entry
    (plus float32 rounding noise, for gradients that vanish exactly, e.g. dq with a window of 1)."""
    for name, grad in expected.items():
        got = actual[name]
        assert got is not None and got.shape == grad.shape, name
        assert torch.isfinite(got).all(), f"d{name} has non-finite elements"
        scale = grad.abs().max().item()
        torch.testing.assert_close(got.double().cpu(), grad.double().cpu(), atol=rel * scale + 1e-6, rtol=10 * rel,
                                   msg=lambda m, name=name: f"d{name}: {m}")


# --------------------------------------------------------------------------- softmax attention


def softmax_inputs(seed, T, S, H=4, Hkv=2, D=16, Dv=12, sinks=True, dtype=torch.float32, B=2):
    g = generator(seed)
    q = randn(g, B, T, H, D, dtype=dtype, device=DEVICE)
    k, v = randn(g, B, S, Hkv, D, dtype=dtype, device=DEVICE), randn(g, B, S, Hkv, Dv, dtype=dtype, device=DEVICE)
    sink_logits = 2.0 * randn(g, H, 3, device=DEVICE) if sinks else None
    return q, k, v, sink_logits


SOFTMAX_CASES = {
    # name: (T, S, window, sinks, causal, Hkv, D)
    "decode-window": (1, 200, 32, True, True, 2, 16),
    "T<window": (63, 63, 128, True, True, 2, 16),
    "several-blocks": (130, 130, 32, True, True, 2, 16),
    "T<S-small-window": (100, 300, 7, True, True, 2, 16),
    "window-1": (20, 20, 1, True, True, 2, 16),
    "mha-window-D24": (70, 70, 20, True, True, 4, 24),
    "teacher": (130, 130, None, False, True, 2, 16),
    "teacher-T<S": (37, 100, None, False, True, 2, 16),
    "teacher-decode": (1, 50, None, False, True, 1, 32),
    "causal-sinks-dense": (63, 63, None, True, True, 2, 16),
    "non-causal": (50, 80, None, False, False, 2, 16),
    "non-causal-window-sinks": (50, 80, 10, True, False, 2, 16),
}
BACKWARD_CASES = ["decode-window", "several-blocks", "T<S-small-window", "mha-window-D24", "teacher-T<S",
                  "non-causal-window-sinks"]


@pytest.mark.parametrize("case", list(SOFTMAX_CASES))
def test_softmax_forward_matches_reference(case, poisoned):
    T, S, window, sinks, causal, Hkv, D = SOFTMAX_CASES[case]
    q, k, v, sink_logits = softmax_inputs(list(SOFTMAX_CASES).index(case), T, S, Hkv=Hkv, D=D, sinks=sinks)
    out, lse = softmax.softmax_attention_fwd(q, k, v, sink_logits, causal=causal, window=window)
    expected = softmax_attention_reference(q, k, v, causal=causal, window=window, sink_logits=sink_logits)
    assert out.dtype == q.dtype
    assert_close_everywhere(out, expected)
    assert_close_everywhere(lse, reference_lse2(q, k, v, causal, window, sink_logits))


def reference_lse2(q, k, v, causal, window, sink_logits):
    """Base-2 log-sum-exp of each query's visible scores and sinks, [B, H, T] (what the kernel stores)."""
    _, lse = softmax_attention_reference(q, k, v, causal=causal, window=window, sink_logits=sink_logits,
                                         return_lse=True)
    return (lse.transpose(1, 2) / math.log(2.0)).float()


@pytest.mark.parametrize("case", BACKWARD_CASES)
def test_softmax_backward_matches_reference(case, poisoned):
    T, S, window, sinks, causal, Hkv, D = SOFTMAX_CASES[case]
    q, k, v, sink_logits = softmax_inputs(100 + BACKWARD_CASES.index(case), T, S, Hkv=Hkv, D=D, sinks=sinks)
    leaves = {"q": q, "k": k, "v": v} | ({"sinks": sink_logits} if sinks else {})
    for x in leaves.values():
        x.requires_grad_(True)
    grad_out = randn(generator(7), *q.shape[:3], v.shape[-1], device=DEVICE)

    out = softmax.softmax_attention(q, k, v, causal=causal, window=window, sink_logits=sink_logits)
    actual = dict(zip(leaves, torch.autograd.grad(out, list(leaves.values()), grad_out), strict=True))
    expected_out = softmax_attention_reference(q, k, v, causal=causal, window=window, sink_logits=sink_logits)
    expected = torch.autograd.grad(expected_out, list(leaves.values()), grad_out.double())
    assert_grads_close(actual, dict(zip(leaves, expected, strict=True)))


@pytest.mark.parametrize("seed", range(8))
def test_softmax_random_block_boundaries(seed, poisoned):
    """Random lengths and windows around the block size: the masked/unmasked block split, forward and backward."""
    g = torch.Generator().manual_seed(seed)
    T = int(torch.randint(1, 60, (1,), generator=g))
    S = T + int(torch.randint(0, 40, (1,), generator=g))
    window = [None, *range(1, 50)][int(torch.randint(0, 50, (1,), generator=g))]
    causal = bool(seed % 4)
    q, k, v, sink_logits = softmax_inputs(300 + seed, T, S, H=4, Hkv=1 + seed % 2, sinks=bool(seed % 2), B=1)
    leaves = [x.requires_grad_(True) for x in (q, k, v)]
    out = softmax.softmax_attention(q, k, v, causal=causal, window=window, sink_logits=sink_logits)
    expected = softmax_attention_reference(q, k, v, causal=causal, window=window, sink_logits=sink_logits)
    assert_close_everywhere(out.detach(), expected.detach())
    grad_out = randn(generator(seed), *out.shape, device=DEVICE)
    actual = torch.autograd.grad(out, leaves, grad_out)
    wanted = torch.autograd.grad(expected, leaves, grad_out.double())
    assert_grads_close(dict(zip("qkv", actual, strict=True)), dict(zip("qkv", wanted, strict=True)))


def test_softmax_skips_blocks_outside_the_window(poisoned):
    """Keys before the first visited block are never read: poisoning them changes nothing, and their
    gradients are exactly zero. (16-key blocks under the interpreter; on CUDA the blocks are larger.)"""
    T, S, window = 16, 200, 20
    q, k, v, sink_logits = softmax_inputs(21, T, S)
    expected = softmax_attention_reference(q, k, v, window=window, sink_logits=sink_logits)
    block = 16 if DEVICE == "cpu" else 64
    first_visited = (S - T - window + 1) // block * block
    k_bad, v_bad = k.clone(), v.clone()
    k_bad[:, :first_visited], v_bad[:, :first_visited] = float("nan"), float("nan")
    k_bad.requires_grad_(True), v_bad.requires_grad_(True)
    out = softmax.softmax_attention(q, k_bad, v_bad, window=window, sink_logits=sink_logits)
    assert_close_everywhere(out, expected)
    dk, dv = torch.autograd.grad(out, [k_bad, v_bad], torch.ones_like(out))
    assert torch.equal(dk[:, :first_visited], torch.zeros_like(dk[:, :first_visited]))
    assert torch.equal(dv[:, :first_visited], torch.zeros_like(dv[:, :first_visited]))
    assert torch.isfinite(dk).all() and torch.isfinite(dv).all()


def test_softmax_is_max_shifted(poisoned):
    """Scores and sink logits far beyond e^88 (float32 overflow) still give the exact softmax."""
    q, k, v, sink_logits = softmax_inputs(11, 70, 70)
    q = q * 40.0
    sink_logits = sink_logits + 200.0 * torch.tensor([[1.0], [0.0], [-1.0], [0.5]], device=DEVICE)
    for window in (32, None):
        out = softmax.softmax_attention(q, k, v, window=window, sink_logits=sink_logits)
        assert_close_everywhere(out, softmax_attention_reference(q, k, v, window=window, sink_logits=sink_logits))


@pytest.mark.parametrize("window,sinks", [(32, True), (None, False)], ids=["window+sinks", "teacher"])
def test_softmax_float16(window, sinks, poisoned):
    q, k, v, sink_logits = softmax_inputs(5, 70, 70, sinks=sinks, dtype=torch.float16)
    out = softmax.softmax_attention(q, k, v, window=window, sink_logits=sink_logits)
    assert out.dtype == torch.float16
    assert_close_everywhere(out, softmax_attention_reference(q, k, v, window=window, sink_logits=sink_logits))


# --------------------------------------------------------------------------- gated linear attention


def gla_inputs(seed, T, B=2, H=2, K=32, V=16, gates=(-10.0, -1e-3), state=True, dtype=torch.float32, Hk=None,
               Hv=None):
    """GLA inputs; ``Hk``/``Hv`` (default H) give keys/values fewer heads than the queries."""
    g = generator(seed)
    q = hedgehog_features(g, B, T, H, K, dtype=dtype, device=DEVICE)
    k = hedgehog_features(g, B, T, Hk or H, K, dtype=dtype, device=DEVICE)
    v = randn(g, B, T, Hv or H, V, dtype=dtype, device=DEVICE)
    log_gate = log_gates(g, B, T, H, strongest=gates[0], weakest=gates[1], device=DEVICE)
    initial = None
    if state:
        initial = GLAState(S=randn(g, B, H, K, V, device=DEVICE), z=hedgehog_features(g, B, H, K, device=DEVICE) * 5.0)
    return q, k, v, log_gate, initial


GATES = {"mixed": (-10.0, -1e-3), "near-one": (-2e-3, -1e-3), "near-zero": (-10.0, -8.0)}
GLA_CASES = {
    # name: (T, gates, initial state, K, V, chunk size)
    "decode": (1, "mixed", True, 32, 16, None),
    "one-chunk": (63, "mixed", False, 32, 16, None),
    "gates-near-one": (130, "near-one", True, 32, 16, None),
    "gates-near-zero": (130, "near-zero", True, 32, 16, None),
    "no-state": (130, "mixed", False, 32, 16, None),
    "K80-V70-tiles": (100, "mixed", True, 80, 70, None),
    "chunk-16": (100, "mixed", True, 32, 16, 16),
}
GLA_BACKWARD_CASES = ["one-chunk", "gates-near-one", "gates-near-zero", "K80-V70-tiles", "chunk-16"]


@pytest.mark.parametrize("case", list(GLA_CASES))
def test_gla_forward_matches_reference(case, poisoned):
    T, gates, state, K, V, chunk = GLA_CASES[case]
    q, k, v, log_gate, initial = gla_inputs(list(GLA_CASES).index(case), T, K=K, V=V, gates=GATES[gates],
                                            state=state)
    out, final = gla.gated_linear_attention(q, k, v, log_gate, initial_state=initial, output_final_state=True,
                                            chunk_size=chunk)
    expected, expected_final = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial)
    assert out.dtype == q.dtype and final.S.dtype == final.z.dtype == torch.float32
    assert_close_everywhere(out, expected)
    assert_close_everywhere(final.S, expected_final.S)
    assert_close_everywhere(final.z, expected_final.z)


@pytest.mark.parametrize("case", GLA_BACKWARD_CASES)
def test_gla_backward_matches_reference(case, poisoned):
    """Gradients of the output and of the final state, into q, k, v, the log-gates and the initial state."""
    T, gates, state, K, V, chunk = GLA_CASES[case]
    q, k, v, log_gate, initial = gla_inputs(200 + GLA_BACKWARD_CASES.index(case), T, K=K, V=V, gates=GATES[gates],
                                            state=state)
    leaves = {"q": q, "k": k, "v": v, "log_gate": log_gate} | ({"S0": initial.S, "z0": initial.z} if state else {})
    for x in leaves.values():
        x.requires_grad_(True)
    g = generator(9)
    grad_out = randn(g, *v.shape, device=DEVICE)
    grad_S, grad_z = randn(g, *q.shape[:1], q.shape[2], K, V, device=DEVICE), randn(g, q.shape[0], q.shape[2], K,
                                                                                   device=DEVICE)

    out, final = gla.gated_linear_attention(q, k, v, log_gate, initial_state=initial, output_final_state=True,
                                            chunk_size=chunk)
    grads = torch.autograd.grad([out, final.S, final.z], list(leaves.values()), [grad_out, grad_S, grad_z])
    expected_out, expected_final = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial)
    expected = torch.autograd.grad([expected_out, expected_final.S, expected_final.z], list(leaves.values()),
                                   [grad_out.double(), grad_S.double(), grad_z.double()])
    assert_grads_close(dict(zip(leaves, grads, strict=True)), dict(zip(leaves, expected, strict=True)))


@pytest.mark.parametrize("gates", ["mixed", "near-one"])
def test_unnormalised_gla_forward_and_backward(gates, poisoned):
    """normalize=False: the numerator q_tᵀ S_t alone, and its gradients, over several chunks and an odd length."""
    q, k, v, log_gate, initial = gla_inputs(300 + len(gates), 131, gates=GATES[gates])
    leaves = {"q": q, "k": k, "v": v, "log_gate": log_gate, "S0": initial.S, "z0": initial.z}
    for x in leaves.values():
        x.requires_grad_(True)
    out, _ = gla.gated_linear_attention(q, k, v, log_gate, initial_state=initial, normalize=False)
    expected, _ = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial, normalize=False)
    assert_close_everywhere(out.detach(), expected.detach())
    grad_out = randn(generator(10), *v.shape, device=DEVICE)
    grads = torch.autograd.grad(out, list(leaves.values()), grad_out, allow_unused=True)
    expected_grads = torch.autograd.grad(expected, list(leaves.values()), grad_out.double(), allow_unused=True)
    # z0 does not reach an unnormalised output: both sides agree that it has no gradient
    assert grads[-1] is None or not grads[-1].any()
    assert_grads_close(dict(zip(list(leaves)[:-1], grads[:-1], strict=True)),
                       dict(zip(list(leaves)[:-1], expected_grads[:-1], strict=True)))


def test_gla_backward_without_final_state(poisoned):
    """Only the output carries a gradient (the usual training case): no final state is produced."""
    q, k, v, log_gate, _ = gla_inputs(31, 70, state=False)
    leaves = {"q": q, "k": k, "v": v, "log_gate": log_gate}
    for x in leaves.values():
        x.requires_grad_(True)
    out, final = gla.gated_linear_attention(q, k, v, log_gate)
    assert final is None
    grads = torch.autograd.grad(out.square().sum(), list(leaves.values()))
    expected = torch.autograd.grad(gated_linear_attention_reference(q, k, v, log_gate)[0].square().sum(),
                                   list(leaves.values()))
    assert_grads_close(dict(zip(leaves, grads, strict=True)), dict(zip(leaves, expected, strict=True)))


def test_gla_prefill_in_pieces_equals_one_shot(poisoned):
    q, k, v, log_gate, initial = gla_inputs(41, 130)
    whole, whole_final = gla.gated_linear_attention(q, k, v, log_gate, initial_state=initial,
                                                    output_final_state=True)
    pieces, state = [], initial
    for lo, hi in [(0, 50), (50, 51), (51, 130)]:
        out, state = gla.gated_linear_attention(q[:, lo:hi], k[:, lo:hi], v[:, lo:hi], log_gate[:, lo:hi],
                                                initial_state=state, output_final_state=True)
        pieces.append(out)
    assert_close_everywhere(torch.cat(pieces, dim=1), whole)
    assert_close_everywhere(state.S, whole_final.S)
    assert_close_everywhere(state.z, whole_final.z)


def test_gla_float16(poisoned):
    q, k, v, log_gate, initial = gla_inputs(51, 100, dtype=torch.float16)
    out, final = gla.gated_linear_attention(q, k, v, log_gate, initial_state=initial, output_final_state=True)
    expected, expected_final = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial)
    assert out.dtype == torch.float16
    assert_close_everywhere(out, expected)
    assert_close_everywhere(final.S, expected_final.S, dtype=torch.float16)


# (H, Hk, Hv, T, gates): grouped key/value heads, read by the kernels as head h // G
GROUPED_GLA_CASES = {
    "Hv<H": (4, 4, 2, 67, "mixed"),
    "Hk<H-Hv<H": (4, 2, 1, 67, "near-zero"),
    "Hk<Hv": (6, 2, 3, 35, "near-one"),
}


@pytest.mark.parametrize("case", list(GROUPED_GLA_CASES))
def test_grouped_gla_forward_and_backward(case, poisoned):
    """Grouped k/v: outputs, final state and every gradient (k's and v's summed over their groups) against the
    float64 reference, at odd lengths over several 16-token chunks."""
    H, Hk, Hv, T, gates = GROUPED_GLA_CASES[case]
    q, k, v, log_gate, initial = gla_inputs(700 + list(GROUPED_GLA_CASES).index(case), T, B=1, H=H, Hk=Hk, Hv=Hv,
                                            gates=GATES[gates])
    leaves = {"q": q, "k": k, "v": v, "log_gate": log_gate, "S0": initial.S, "z0": initial.z}
    for x in leaves.values():
        x.requires_grad_(True)
    out, final = gla.gated_linear_attention(q, k, v, log_gate, initial_state=initial, output_final_state=True,
                                            chunk_size=16)
    expected_out, expected_final = gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial)
    assert_close_everywhere(out.detach(), expected_out.detach())
    assert_close_everywhere(final.S.detach(), expected_final.S.detach())
    assert_close_everywhere(final.z.detach(), expected_final.z.detach())
    g = generator(701)
    grad_out, grad_S = randn(g, *out.shape, device=DEVICE), randn(g, *final.S.shape, device=DEVICE)
    grads = torch.autograd.grad([out, final.S], list(leaves.values()), [grad_out, grad_S])
    expected = torch.autograd.grad([expected_out, expected_final.S], list(leaves.values()),
                                   [grad_out.double(), grad_S.double()])
    assert grads[1].shape == k.shape and grads[2].shape == v.shape
    assert_grads_close(dict(zip(leaves, grads, strict=True)), dict(zip(leaves, expected, strict=True)))


# --------------------------------------------------------------------------- public API and compilation


def test_public_api_dispatches_to_triton(poisoned):
    q, k, v, sink_logits = softmax_inputs(61, 40, 40)
    out = kernels.softmax_attention(q, k, v, window=16, sink_logits=sink_logits, backend="triton")
    assert_close_everywhere(out, softmax_attention_reference(q, k, v, window=16, sink_logits=sink_logits))
    q, k, v, log_gate, initial = gla_inputs(62, 40)
    out, _ = kernels.gated_linear_attention(q, k, v, log_gate, initial_state=initial, backend="triton")
    assert_close_everywhere(out, gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial)[0])
    q, k, v, log_gate, initial = gla_inputs(63, 40, H=4, Hv=2)  # grouped values pass the public checks
    out, _ = kernels.gated_linear_attention(q, k, v, log_gate, initial_state=initial, backend="triton")
    assert_close_everywhere(out, gated_linear_attention_reference(q, k, v, log_gate, initial_state=initial)[0])


@pytest.mark.skipif(DEVICE == "cuda", reason="CPU tensors are refused only without the interpreter")
def test_cpu_tensors_without_interpreter_are_refused(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    q, k, v, _ = softmax_inputs(71, 4, 4)
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        softmax.softmax_attention(q, k, v)


@pytest.mark.skipif(DEVICE == "cuda", reason="on CUDA every test above compiles the kernels")
def test_kernels_compile_for_h100():
    """The interpreter does not compile: build every kernel for sm_90 (bf16 and float32, head dim 128),
    checking that it compiles and fits in shared memory."""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    cmd = [sys.executable, "-m", "lizard_bench.kernels.triton_backend.compile_check", "--head-dims", "128"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("_kernel[") >= 18, result.stdout


@pytest.mark.parametrize("case", BACKWARD_CASES)
def test_softmax_lse_output_and_its_gradient(case, poisoned):
    """The natural-log normaliser is returned and differentiable (used to merge branches under one normaliser)."""
    T, S, window, sinks, causal, Hkv, D = SOFTMAX_CASES[case]
    q, k, v, sink_logits = softmax_inputs(300 + BACKWARD_CASES.index(case), T, S, Hkv=Hkv, D=D, sinks=sinks)
    leaves = {"q": q, "k": k, "v": v} | ({"sinks": sink_logits} if sinks else {})
    for x in leaves.values():
        x.requires_grad_(True)
    gen = generator(11)
    grad_out = randn(gen, *q.shape[:3], v.shape[-1], device=DEVICE)
    grad_lse = randn(gen, *q.shape[:3], device=DEVICE)

    out, lse = softmax.softmax_attention(q, k, v, causal=causal, window=window, sink_logits=sink_logits,
                                         return_lse=True)
    expected_out, expected_lse = softmax_attention_reference(q, k, v, causal=causal, window=window,
                                                             sink_logits=sink_logits, return_lse=True)
    assert_close_everywhere(lse, expected_lse)
    actual = torch.autograd.grad((out, lse), list(leaves.values()), (grad_out, grad_lse))
    expected = torch.autograd.grad((expected_out, expected_lse), list(leaves.values()),
                                   (grad_out.double(), grad_lse.double()))
    assert_grads_close(dict(zip(leaves, actual, strict=True)), dict(zip(leaves, expected, strict=True)))


# --------------------------------------------------------------------------- padded keys

KEY_MASK_CASES = ["decode-window", "several-blocks", "T<S-small-window", "teacher-T<S", "causal-sinks-dense",
                  "non-causal-window-sinks"]


@pytest.mark.parametrize("case", KEY_MASK_CASES)
def test_key_mask_forward_and_backward_match_reference(case, poisoned):
    """Masked keys in every kind of block (masked boundary blocks and the unmasked ones between), with gradients."""
    T, S, window, sinks, causal, Hkv, D = SOFTMAX_CASES[case]
    seed = 600 + KEY_MASK_CASES.index(case)
    q, k, v, sink_logits = softmax_inputs(seed, T, S, Hkv=Hkv, D=D, sinks=sinks, B=3)
    mask = key_masks(generator(seed), 3, S, device=DEVICE)
    leaves = {"q": q, "k": k, "v": v} | ({"sinks": sink_logits} if sinks else {})
    for x in leaves.values():
        x.requires_grad_(True)
    gen = generator(seed + 1)
    grad_out = randn(gen, *q.shape[:3], v.shape[-1], device=DEVICE)
    grad_lse = randn(gen, *q.shape[:3], device=DEVICE)

    out, lse = softmax.softmax_attention(q, k, v, causal=causal, window=window, sink_logits=sink_logits,
                                         return_lse=True, key_mask=mask)
    expected_out, expected_lse = softmax_attention_reference(q, k, v, causal=causal, window=window,
                                                             sink_logits=sink_logits, return_lse=True, key_mask=mask)
    assert_close_everywhere(out, expected_out)
    torch.testing.assert_close(lse.double().cpu(), expected_lse.cpu(), rtol=1e-6, atol=1e-4)
    real = mask[:, -T:, None].expand_as(lse)  # padding rows' lse is ~-1e30: its gradient is not compared
    grad_lse = grad_lse * real
    actual = torch.autograd.grad((out, lse), list(leaves.values()), (grad_out, grad_lse))
    expected = torch.autograd.grad((expected_out, expected_lse), list(leaves.values()),
                                   (grad_out.double(), grad_lse.double()))
    assert_grads_close(dict(zip(leaves, actual, strict=True)), dict(zip(leaves, expected, strict=True)))
