"""Resumable training state: trainable parameters, optimizer, scheduler, RNG and progress, per stage.

Layout: ``<stage_dir>/step-000025/`` holding ``params.safetensors``, ``optimizer.pt``,
``scheduler.pt``, ``rng-<rank>.pt`` and ``meta.json``. Each is written into a hidden
``.partial-…`` directory and renamed into place when complete, so a crash while saving
leaves the previous state usable; older states are removed only after the new one exists.
A stage's last state carries ``"complete": true`` and is what lets a restarted run skip a
finished stage. Only what training changes is saved (for an 8B model: megabytes, not the
16 GB teacher), and everything loads with ``torch.load(weights_only=True)``.

Processes coordinate through the accelerator: every rank stores its own RNG state, the main
process writes the rest (under DDP the trainable parameters and optimizer state are
identical on every rank). The directory must be on a filesystem all ranks share.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from torch import nn

PREFIX = "step-"


def save_training_state(
    stage_dir: Path, *, step: int, accelerator: Accelerator, params: dict[str, nn.Parameter],
    optimizer: torch.optim.Optimizer | None, scheduler: Any | None, meta: dict[str, Any],
) -> Path:
    """Write the state after ``step`` optimizer steps; returns its directory (on every rank)."""
    name = f"{PREFIX}{step:06d}"
    target, partial = stage_dir / name, stage_dir / f".partial-{name}"
    main = accelerator.is_main_process
    if main:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(_rng_state(), partial / f"rng-{accelerator.process_index}.pt")
    if main:
        save_file({key: value.detach().cpu().contiguous() for key, value in params.items()},
                  str(partial / "params.safetensors"))
        if optimizer is not None:
            torch.save(optimizer.state_dict(), partial / "optimizer.pt")
        if scheduler is not None:
            torch.save(scheduler.state_dict(), partial / "scheduler.pt")
        (partial / "meta.json").write_text(json.dumps({**meta, "step": step}, indent=1) + "\n")
    accelerator.wait_for_everyone()
    if main:
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
        for older in stage_dir.glob(f"{PREFIX}*"):
            if older != target:
                shutil.rmtree(older, ignore_errors=True)
    accelerator.wait_for_everyone()
    return target


def read_meta(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((state_dir / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def latest_training_state(stage_dir: Path, fingerprint: str) -> tuple[Path, dict[str, Any]] | None:
    """The newest complete state of this stage written under ``fingerprint`` (other runs' states are ignored)."""
    if not stage_dir.is_dir():
        return None
    for candidate in sorted(stage_dir.glob(f"{PREFIX}*"), reverse=True):
        meta = read_meta(candidate)
        if meta is not None and meta.get("fingerprint") == fingerprint:
            return candidate, meta
    return None


def load_training_state(
    state_dir: Path, *, process_index: int, params: dict[str, nn.Parameter],
    optimizer: torch.optim.Optimizer | None = None, scheduler: Any | None = None,
) -> None:
    """Restore a saved state into live objects (call before ``accelerator.prepare``)."""
    load_parameters(params, load_file(str(state_dir / "params.safetensors")), where=str(state_dir))
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(state_dir / "optimizer.pt", weights_only=True))
    if scheduler is not None:
        scheduler.load_state_dict(torch.load(state_dir / "scheduler.pt", weights_only=True))
    rng_file = state_dir / f"rng-{process_index}.pt"
    if rng_file.is_file():  # absent when resuming on more processes than saved: RNG then restarts
        _set_rng_state(torch.load(rng_file, weights_only=True))


def load_parameters(params: dict[str, nn.Parameter], tensors: dict[str, torch.Tensor], where: str) -> None:
    """Copy ``tensors`` into ``params`` by name; both key sets must be the same."""
    missing, unexpected = sorted(set(params) - set(tensors)), sorted(set(tensors) - set(params))
    if missing or unexpected:
        raise ValueError(
            f"{where}: saved parameters do not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    with torch.no_grad():
        for name, parameter in params.items():
            parameter.copy_(tensors[name])


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return state


def _set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    cuda = [state[key] for key in sorted((k for k in state if k.startswith("cuda")), key=lambda k: int(k[4:]))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
