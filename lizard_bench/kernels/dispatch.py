"""Choosing which backend runs a kernel, explicitly and visibly.

Results record the backend that produced them, so the choice must be a plain, reportable
string: an explicit argument wins, then the ``LIZARD_KERNEL_BACKEND`` environment variable,
then the device (Triton on CUDA when it imports, the PyTorch reference elsewhere).
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

BACKENDS = ("torch", "triton")
BACKEND_ENV_VAR = "LIZARD_KERNEL_BACKEND"


@functools.cache
def triton_available() -> bool:
    """True when ``triton`` imports and this copy of the kernels has its Triton backend.

    Cached: the answer cannot change within a process, and every kernel call on CUDA asks (a decode
    step once per layer per token).

    (Triton runs on CPU only under TRITON_INTERPRET=1.) The copy of the kernels a saved model
    directory carries has the PyTorch backend only (lizard_bench/linearize/remote_code.py).
    """
    return importlib.util.find_spec("triton") is not None and importlib.util.find_spec(
        f"{__package__}.triton_backend") is not None


def select_backend(device: torch.device | str, requested: str | None = None) -> str:
    """Return the backend name that will run a kernel on ``device``.

    ``requested`` (or the environment variable) may be ``"torch"``, ``"triton"`` or
    ``"auto"``; anything else is an error that names the valid choices.
    """
    choice = requested or os.environ.get(BACKEND_ENV_VAR) or "auto"
    if choice == "auto":
        on_cuda = torch.device(device).type == "cuda"
        return "triton" if on_cuda and triton_available() else "torch"
    if choice not in BACKENDS:
        raise ValueError(
            f"unknown kernel backend {choice!r}: choose one of {', '.join(BACKENDS)} or 'auto' "
            f"(argument `backend=` or ${BACKEND_ENV_VAR})"
        )
    if choice == "triton" and not triton_available():
        raise RuntimeError(
            "kernel backend 'triton' requested but triton is not installed (pip install 'lizard-bench[triton]'), "
            "or this is the PyTorch-only copy of the kernels that a saved model directory carries"
        )
    return choice
