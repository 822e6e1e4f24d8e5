"""Triton backend of the attention kernels (CUDA; CPU only under ``TRITON_INTERPRET=1``).

One module per mechanism, each differentiable through a ``torch.autograd.Function``:

- :mod:`.softmax` — FlashAttention-style causal/windowed softmax with meta-memory sinks
  and grouped-query heads; windows skip whole key blocks.
- :mod:`.gla` — chunked scalar-gated linear attention with its normaliser and state.

:mod:`.compile_check` builds every kernel for a GPU target on a machine without one
(the interpreter checks results, not that the kernels compile). Importing this package
defines the kernels and does nothing else.
"""

from lizard_bench.kernels.triton_backend.gla import gated_linear_attention
from lizard_bench.kernels.triton_backend.softmax import softmax_attention

__all__ = ["gated_linear_attention", "softmax_attention"]
