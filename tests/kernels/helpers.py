"""Generic helpers for kernel tests: realistic random inputs, poisoned allocations, full-tensor checks.

Backend-agnostic on purpose: every backend's tests build inputs and compare outputs the
same way, so a difference between backends is never a difference between test setups.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import torch

# (atol, rtol) per output dtype for comparisons with the float64 references.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-10, 1e-8),
    torch.float32: (2e-5, 2e-4),
    torch.float16: (2e-3, 1e-2),
    torch.bfloat16: (1.6e-2, 3e-2),
}


def generator(seed: int) -> torch.Generator:
    """A CPU generator: tests never depend on the global RNG or on test order."""
    return torch.Generator(device="cpu").manual_seed(seed)


def randn(gen: torch.Generator, *shape: int, dtype: torch.dtype = torch.float32, device="cpu") -> torch.Tensor:
    """Standard normal values drawn on CPU (reproducible across devices), then moved."""
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)


def hedgehog_features(gen: torch.Generator, *shape: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """Positive feature vectors like Lizard's φ(x) = softmax(xW) ⊕ softmax(−xW) (last dim even).

    Realistic GLA inputs: every entry positive and each half summing to 1, so the
    normaliser q·z is positive and the outputs are a weighted average of values.
    """
    *lead, size = shape
    x = 2.0 * torch.randn(*lead, size // 2, generator=gen, dtype=torch.float64)
    return torch.cat([x.softmax(-1), (-x).softmax(-1)], dim=-1).to(device=device, dtype=dtype)


def log_gates(
    gen: torch.Generator, *shape: int, strongest: float = -10.0, weakest: float = -1e-3, device="cpu"
) -> torch.Tensor:
    """log γ <= 0 spread log-uniformly in magnitude between ``weakest`` (γ ≈ 1) and ``strongest`` (γ ≈ 0)."""
    low, high = math.log(-weakest), math.log(-strongest)
    magnitude = torch.empty(*shape, dtype=torch.float64).uniform_(low, high, generator=gen).exp()
    return (-magnitude).to(device=device, dtype=torch.float32)


def assert_close_everywhere(actual: torch.Tensor, expected: torch.Tensor, *, dtype: torch.dtype | None = None) -> None:
    """Every element finite and within the tolerance of ``dtype`` (default: ``actual``'s dtype).

    Compares the whole tensor (no slicing, no reductions), so an element a kernel never
    wrote shows up: it holds NaN after :func:`poison_allocations`, stale or zero memory
    otherwise, and the fresh random inputs make a coincidental match with the reference
    essentially impossible.
    """
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != expected {tuple(expected.shape)}"
    bad = ~torch.isfinite(actual)
    assert not bad.any(), f"{int(bad.sum())} non-finite elements, first at {bad.nonzero()[0].tolist()}"
    atol, rtol = TOLERANCES[dtype or actual.dtype]
    torch.testing.assert_close(actual.to(expected.device, expected.dtype), expected, atol=atol, rtol=rtol)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run PyTorch CPU ops on one thread, restoring the previous count afterwards.

    Kernel tests run thousands of tiny ops (gradcheck, per-token references). Each op
    big enough to go parallel waits for every intra-op thread at its end, and when
    another process holds a core that wait lasts a scheduler time slice: on a shared
    2-core machine, two threads made these tests 10-20x slower than one.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextmanager
def poison_allocations() -> Iterator[None]:
    """Make ``torch.empty``, ``torch.empty_like`` and ``Tensor.new_empty`` return NaN-filled tensors.

    Output buffers allocated with these and left partly unwritten by a kernel then hold
    NaN instead of whatever the allocator recycled (possibly a previous, correct result),
    and :func:`assert_close_everywhere` reports them. Integer buffers get their dtype's
    minimum. Only Python-level allocations are affected, which is where kernels
    allocate their outputs.
    """
    originals = (torch.empty, torch.empty_like, torch.Tensor.new_empty)

    def poison(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.is_floating_point() or tensor.is_complex():
            return tensor.fill_(float("nan"))
        if tensor.dtype != torch.bool:
            return tensor.fill_(torch.iinfo(tensor.dtype).min)
        return tensor

    def empty(*args, **kwargs):
        return poison(originals[0](*args, **kwargs))

    def empty_like(*args, **kwargs):
        return poison(originals[1](*args, **kwargs))

    def new_empty(self, *args, **kwargs):
        return poison(originals[2](self, *args, **kwargs))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "empty", empty)
        patch.setattr(torch, "empty_like", empty_like)
        patch.setattr(torch.Tensor, "new_empty", new_empty)
        yield


def key_masks(gen: torch.Generator, B: int, S: int, device="cpu") -> torch.Tensor:
    """[B, S] bool key masks with every padding shape at once: row 0 left-padded, row 1 right-padded,
    further rows with random holes (about a third of the keys masked)."""
    mask = torch.rand(B, S, generator=gen) > 1 / 3
    mask[0] = torch.arange(S) >= min(S - 1, max(1, S // 4))
    if B > 1:
        mask[1] = torch.arange(S) < max(1, 3 * S // 4)
    return mask.to(device)


def record_dense_calls(monkeypatch: pytest.MonkeyPatch,
                       measure: Callable[[torch.Tensor, torch.Tensor], int]) -> list[int]:
    """Spy on the PyTorch softmax's dense path: each call appends ``measure(q, k)`` to the returned list (and still
    computes), so a test can say which rows or keys went the O(T·S) way."""
    from lizard_bench.kernels.torch_backend import softmax as softmax_module

    calls: list[int] = []
    dense = softmax_module._dense

    def spy(q, k, v, **kwargs):
        calls.append(measure(q, k))
        return dense(q, k, v, **kwargs)

    monkeypatch.setattr(softmax_module, "_dense", spy)
    return calls
