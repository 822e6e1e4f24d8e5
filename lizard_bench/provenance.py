"""Where a number came from: code version, library versions, hardware, kernel backend, timing."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

import lizard_bench

_TRACKED_PACKAGES = ("torch", "transformers", "lm-eval", "peft", "accelerate", "triton")


def git_commit(start: Path | None = None) -> str:
    """HEAD of the checkout holding the package (with '+dirty' when it has local changes), or 'unknown'."""
    where = start or Path(lizard_bench.__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=where, capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"lizard_bench": lizard_bench.__version__}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_description(device: torch.device) -> str:
    """A human-readable device name, so a CPU number is never mistaken for a GPU one."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def run_provenance(*, device: torch.device, kernel_backend: str, seed: int, config_hash: str) -> dict[str, Any]:
    """The fields shared by every record of a run; per-unit timing is added by the runner."""
    return {
        "git_commit": git_commit(),
        "versions": package_versions(),
        "python": platform.python_version(),
        "device": str(device),
        "device_name": device_description(device),
        "kernel_backend": kernel_backend,
        "seed": seed,
        "config_hash": config_hash,
    }
