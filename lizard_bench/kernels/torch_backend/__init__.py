"""PyTorch backend: runs on every device, chunked and banded so that it is fast on CPU.

It is also the second reference the Triton kernels are compared with, and the only
implementation of the decode steps (a few small products, the same on every device).
"""

from lizard_bench.kernels.torch_backend.gla import gated_linear_attention, gated_linear_attention_step
from lizard_bench.kernels.torch_backend.softmax import softmax_attention, softmax_attention_step

__all__ = ["gated_linear_attention", "gated_linear_attention_step", "softmax_attention", "softmax_attention_step"]
