"""Model handles the memory probe's child processes rebuild (importable, so a spawned process can call them)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from tests.tiny_models import linearized_tiny_llama, tiny_llama

BLOCK_FLOATS = 16 * 1024  # 64 KiB: below glibc's mmap threshold, so freed blocks stay in the heap
_pinned: list[torch.Tensor] = []


def leave_heap_residue(mib: int) -> None:
    """Allocate ``mib`` MiB in small blocks and free all but the last, which pins the heap's top.

    Without ``malloc_trim`` the freed blocks stay resident: the residue a prefill's temporaries leave.
    """
    blocks = [torch.ones(BLOCK_FLOATS) for _ in range(mib * 1024 * 1024 // (4 * BLOCK_FLOATS))]
    _pinned.append(blocks[-1])


def tiny_handle(method: str | None = None, residue_mib: int = 0) -> SimpleNamespace:
    """A tiny model (teacher, or linearized with ``method``) whose multi-token forwards leave ``residue_mib``."""
    model = tiny_llama() if method is None else linearized_tiny_llama(method)
    if residue_mib:
        def prefill_residue(module, args, kwargs) -> None:
            if kwargs["input_ids"].shape[1] > 1:
                leave_heap_residue(residue_mib)

        model.register_forward_pre_hook(prefill_residue, with_kwargs=True)
    return SimpleNamespace(model=model, device=torch.device("cpu"))


def sleeping_handle(pid_file: str) -> SimpleNamespace:
    """Writes this (child) process's id to ``pid_file``, then sleeps as a model load that takes long would."""
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(600)
    raise AssertionError("the test kills this process long before")
