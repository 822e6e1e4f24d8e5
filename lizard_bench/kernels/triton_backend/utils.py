"""Small helpers shared by the Triton kernels: launch checks, dot precision, tile sizes."""

from __future__ import annotations

import os

import torch
import triton


def interpreting() -> bool:
    """True when Triton runs kernels through its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def check_device(*tensors: torch.Tensor) -> None:
    """Triton needs CUDA tensors, or CPU tensors under the interpreter; say so plainly otherwise."""
    for t in tensors:
        if t is not None and t.device.type != "cuda" and not interpreting():
            raise RuntimeError(
                f"the Triton backend needs CUDA tensors (got a {t.device.type} tensor); on CPU use "
                "backend='torch', or set TRITON_INTERPRET=1 before importing the kernels to run them "
                "in Triton's interpreter"
            )


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot`` precision: float32 inputs use 3xTF32 (about float32 accuracy on tensor cores, where
    plain TF32 would keep only 10 mantissa bits); 16-bit inputs ignore the setting."""
    return "tf32x3" if dtype == torch.float32 else "tf32"


def feature_block(n: int) -> int:
    """Tile covering a whole feature axis of size ``n``: a power of two, at least 16 (tl.dot's minimum)."""
    return max(16, triton.next_power_of_2(n))
