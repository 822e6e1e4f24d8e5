"""Shared attention kernels: one set of code paths for the teacher and every linearized variant.

Public API (layout ``[B, T, H, D]``, sequence before heads):

- :func:`softmax_attention` — causal softmax; with ``window`` and ``sink_logits`` it is
  Lizard's local branch (sliding window plus meta-memory sinks).
- :func:`gated_linear_attention` — chunked scalar-gated linear attention with normaliser.
- :func:`gated_linear_attention_step` — one decode step on a :class:`GLAState`.
- :func:`softmax_attention_step` — one decode query against a set of held keys (a window, in any order).

Each takes ``backend=None|"auto"|"torch"|"triton"``; :func:`select_backend` tells callers
which one will run, so results can record it.
"""

from __future__ import annotations

import torch

from lizard_bench.kernels.dispatch import BACKEND_ENV_VAR, BACKENDS, select_backend, triton_available
from lizard_bench.kernels.state import GLAState

__all__ = [
    "BACKENDS",
    "BACKEND_ENV_VAR",
    "GLAState",
    "gated_linear_attention",
    "gated_linear_attention_step",
    "select_backend",
    "softmax_attention",
    "softmax_attention_step",
    "triton_available",
]


def _backend_module(name: str):
    """Import a backend lazily so that importing the package never imports Triton."""
    if name == "triton":
        from lizard_bench.kernels import triton_backend

        return triton_backend
    from lizard_bench.kernels import torch_backend

    return torch_backend


def softmax_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = True,
    window: int | None = None,
    sink_logits: torch.Tensor | None = None,
    scale: float | None = None,
    backend: str | None = None,
    return_lse: bool = False,
    key_mask: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention: q [B, T, H, D], k [B, S, Hkv, D], v [B, S, Hkv, Dv] -> [B, T, H, Dv].

    Queries are the last T of the S key positions (bottom-right alignment). ``window=w``
    keeps the last w keys (the query's own included); ``sink_logits`` [H, m] add e^{t}
    to the normaliser only. Hkv must divide H (grouped-query attention).
    With ``return_lse`` it also returns the log of each row's normaliser, lse [B, T, H]
    float32 (sinks included), differentiable — what a caller needs to merge this branch
    with another under one shared normaliser. ``key_mask`` [B, S] bool (True = attend) hides
    padded keys: they get no weight in any row that sees a real key or a sink, and a row that
    sees only masked keys stays finite but is meaningless (``kernels/masking.py``).
    """
    _check_softmax_inputs(q, k, v, window, sink_logits, key_mask)
    module = _backend_module(select_backend(q.device, backend))
    options: dict = {"return_lse": True} if return_lse else {}
    if key_mask is not None:
        options["key_mask"] = key_mask
    return module.softmax_attention(
        q, k, v, causal=causal, window=window, sink_logits=sink_logits, scale=scale, **options
    )


def gated_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_gate: torch.Tensor,
    *,
    initial_state: GLAState | None = None,
    output_final_state: bool = False,
    eps: float = 1e-6,
    normalize: bool = True,
    backend: str | None = None,
) -> tuple[torch.Tensor, GLAState | None]:
    """Gated linear attention: q [B, T, H, K], k [B, T, Hk, K], v [B, T, Hv, V], log_gate [B, T, H] (<= 0).

    Returns (o [B, T, H, V], final state or None). o_i = q_iᵀ S_i / (q_iᵀ z_i + eps)
    with S_i = γ_i S_{i-1} + k_i v_iᵀ and z_i = γ_i z_{i-1} + k_i. With ``normalize=False``,
    o_i = q_iᵀ S_i (the paper's recurrent form, no denominator); z is carried either way.
    Keys and values may have fewer heads than the queries (grouped-query attention; Hk and Hv
    must divide H and may differ): query head h reads key head h // (H / Hk) and value head
    h // (H / Hv), without the caller repeating them. Gates and state are per query head.
    """
    _check_gla_inputs(q, k, v, log_gate)
    module = _backend_module(select_backend(q.device, backend))
    return module.gated_linear_attention(
        q, k, v, log_gate, initial_state=initial_state, output_final_state=output_final_state, eps=eps,
        normalize=normalize,
    )


def gated_linear_attention_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_gate: torch.Tensor,
    state: GLAState,
    *,
    eps: float = 1e-6,
    normalize: bool = True,
    in_place: bool = False,
) -> tuple[torch.Tensor, GLAState]:
    """One decode step: q [B, H, K], k [B, Hk, K], v [B, Hv, V], log_gate [B, H] -> (o [B, H, V], new state).

    Hk and Hv divide H (grouped heads, as in :func:`gated_linear_attention`). A step is a few
    small matrix products whatever the device, so it has one implementation (the PyTorch one);
    the state stays float32. ``in_place`` writes the new
    state into ``state``'s own tensors (no allocation per token; not for autograd).
    """
    from lizard_bench.kernels.torch_backend import gated_linear_attention_step as step

    _check_gla_step_inputs(q, k, v, log_gate)
    return step(q, k, v, log_gate, state, eps=eps, normalize=normalize, in_place=in_place)


def softmax_attention_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    sink_logits: torch.Tensor | None = None,
    sink_values: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """One decode step of softmax attention: q [B, H, D] against k [B, S, Hkv, D], v [B, S, Hkv, Dv] -> [B, H, Dv].

    Every key is visible, so their order does not matter (a window held as a ring buffer is
    passed as it lies). ``sink_logits`` [H, m] join the normaliser, as in
    :func:`softmax_attention`; their weight carries ``sink_values`` [B, H, Dv] (one vector per
    row and head; zero when None) into the output:
    o = (Σ_j e^{s_j} v_j + Σ_r e^{t_r} u) / (Σ_j e^{s_j} + Σ_r e^{t_r}). Like the GLA step it
    has one implementation, the PyTorch one: a step is a few small products on any device.
    """
    from lizard_bench.kernels.torch_backend import softmax_attention_step as step

    if q.dim() != 3:
        raise ValueError(f"softmax_attention_step expects q [B, H, D], got {tuple(q.shape)}")
    _check_softmax_inputs(q.unsqueeze(1), k, v, None, sink_logits)
    if sink_values is not None and tuple(sink_values.shape) != (*q.shape[:2], v.shape[-1]):
        expected = (*q.shape[:2], v.shape[-1])
        raise ValueError(f"sink_values must be [B, H, Dv] = {expected}, got {tuple(sink_values.shape)}")
    return step(q, k, v, sink_logits=sink_logits, sink_values=sink_values, scale=scale)


def _check_softmax_inputs(q, k, v, window, sink_logits, key_mask=None) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"softmax_attention expects [B, T, H, D] tensors, got q{tuple(q.shape)} k{tuple(k.shape)} v{tuple(v.shape)}"
        )
    if q.shape[2] % k.shape[2] != 0 or k.shape[2] != v.shape[2]:
        raise ValueError(
            f"query heads ({q.shape[2]}) must be a multiple of key/value heads ({k.shape[2]}, {v.shape[2]})"
        )
    if k.shape[1] < q.shape[1]:
        raise ValueError(f"fewer keys ({k.shape[1]}) than queries ({q.shape[1]})")
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if sink_logits is not None and (sink_logits.dim() != 2 or sink_logits.shape[0] != q.shape[2]):
        raise ValueError(f"sink_logits must be [H={q.shape[2]}, m], got {tuple(sink_logits.shape)}")
    if key_mask is not None and (key_mask.dtype != torch.bool or tuple(key_mask.shape) != (k.shape[0], k.shape[1])):
        raise ValueError(f"key_mask must be bool [B={k.shape[0]}, S={k.shape[1]}], got {key_mask.dtype} "
                         f"{tuple(key_mask.shape)}")


def _check_gla_inputs(q, k, v, log_gate) -> None:
    shapes_ok = (
        q.dim() == 4 and k.dim() == 4 and v.dim() == 4 and k.shape[:2] == q.shape[:2] and k.shape[3] == q.shape[3]
        and v.shape[:2] == q.shape[:2] and log_gate.shape == q.shape[:3]
    )
    if not shapes_ok:
        raise ValueError(
            "gated_linear_attention expects q [B, T, H, K], k [B, T, Hk, K], v [B, T, Hv, V], log_gate [B, T, H]; "
            f"got q{tuple(q.shape)} k{tuple(k.shape)} v{tuple(v.shape)} log_gate{tuple(log_gate.shape)}"
        )
    _check_gla_heads(q.shape[2], k.shape[2], v.shape[2])


def _check_gla_step_inputs(q, k, v, log_gate) -> None:
    shapes_ok = (
        q.dim() == 3 and k.dim() == 3 and v.dim() == 3 and k.shape[0] == v.shape[0] == q.shape[0]
        and k.shape[2] == q.shape[2] and log_gate.shape == q.shape[:2]
    )
    if not shapes_ok:
        raise ValueError(
            "gated_linear_attention_step expects q [B, H, K], k [B, Hk, K], v [B, Hv, V], log_gate [B, H]; "
            f"got q{tuple(q.shape)} k{tuple(k.shape)} v{tuple(v.shape)} log_gate{tuple(log_gate.shape)}"
        )
    _check_gla_heads(q.shape[1], k.shape[1], v.shape[1])


def _check_gla_heads(H: int, Hk: int, Hv: int) -> None:
    if Hk < 1 or Hv < 1 or H % Hk or H % Hv:
        raise ValueError(f"query heads ({H}) must be a multiple of key heads ({Hk}) and of value heads ({Hv})")
