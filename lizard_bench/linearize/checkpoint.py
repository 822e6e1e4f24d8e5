"""Linearized checkpoints: only what training added, tied to the exact base weights it was trained on.

A checkpoint directory holds

    manifest.json         base model (name, weight hash), LinearizeConfig, TrainConfig, stages, versions
    lizard.safetensors    feature maps, gates, sinks, α (``lizard_parameters``)
    lora.safetensors      stage-2 adapters (absent when stage 2 did not run)

and never the teacher's weights: those come from wherever the base model is loaded (a few
MB to ship instead of 16 GB for an 8B model). That only works on the same base weights, so
the manifest records a content hash and :func:`load_linearized` refuses any other base
model. ``manifest.json`` is written last and removed first when a checkpoint is replaced,
so its presence means the parameter files beside it are complete.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lizard_bench.errors import InputError
from lizard_bench.linearize.config import LinearizeConfig
from lizard_bench.linearize.convert import linearize, lizard_parameters
from lizard_bench.linearize.training.config import LoraSettings
from lizard_bench.linearize.training.lora import attach_lora, lora_parameters, merge_lora
from lizard_bench.linearize.training.state import load_parameters
from lizard_bench.provenance import package_versions
from lizard_bench.results.store import atomic_write_text

MANIFEST = "manifest.json"
LIZARD_FILE = "lizard.safetensors"
LORA_FILE = "lora.safetensors"
FORMAT_VERSION = 1


class CheckpointError(InputError, ValueError):
    """A directory that is not a usable linearized checkpoint."""


class BaseModelMismatchError(CheckpointError):
    """The checkpoint was trained on different base weights than the model it is loaded onto."""


def _teacher_name(name: str) -> str:
    """A parameter's name in the unmodified teacher (undoing LizardAttention's ``.base`` and peft's ``.base_layer``)."""
    return name.replace(".self_attn.base.", ".self_attn.").replace(".base_layer.", ".")


def base_model_hash(model: nn.Module) -> str:
    """sha256 over the teacher's tensors (name, dtype, shape, bytes) in sorted name order.

    Linearized and LoRA parameters are excluded and wrapped names mapped back, so an unmerged
    linearized model hashes like its teacher. Merging LoRA changes the base weights: hash first.
    About 0.5 s per 100M float32 parameters.
    """
    added = set(lizard_parameters(model))
    tensors = {
        _teacher_name(name): tensor for name, tensor in model.state_dict().items()
        if name not in added and ".lora_" not in name
    }
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def read_manifest(checkpoint_dir: Path) -> dict[str, Any] | None:
    """The manifest of a complete checkpoint, or None when there is none (or it is unreadable)."""
    try:
        return json.loads((Path(checkpoint_dir) / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None


# what rebuilds a damaged checkpoint: training it again (the files are lizard-bench's own, never downloaded)
REBUILD_ADVICE = "the checkpoint is damaged; rerun the suite that trained it with --retrain to rebuild it"


def check_checkpoint_files(checkpoint_dir: Path, manifest: dict[str, Any], advice: str = REBUILD_ADVICE) -> None:
    """Every weights file the manifest lists is there and whole (its safetensors header fits the file).

    Why: a copy cut short (a full disk, an interrupted rsync) otherwise fails deep in safetensors, after the
    run has spent model time on other units, and fails the same way on every rerun. Reads headers only.
    """
    from lizard_bench.models.inspect import ModelFileError, check_safetensors

    files = manifest.get("files")
    if not isinstance(files, list) or not isinstance(manifest.get("base_model"), dict):
        raise CheckpointError(f"{Path(checkpoint_dir) / MANIFEST} is not a lizard-bench checkpoint manifest "
                              f"(no 'files' list or 'base_model'): {advice}")
    for name in files:
        path = Path(checkpoint_dir) / str(name)
        if not path.is_file():
            raise CheckpointError(f"{path} is missing (its {MANIFEST} lists it): {advice}")
        try:
            check_safetensors(path, advice=advice)
        except ModelFileError as exc:
            raise CheckpointError(str(exc)) from None


def save_linearized(
    model: nn.Module, checkpoint_dir: Path, *, base_name: str, base_hash: str, config: LinearizeConfig,
    train_config: dict[str, Any] | None, train_fingerprint: str | None, stages: list[str],
    summary: dict[str, Any] | None = None,
) -> Path:
    """Write the added parameters (and LoRA adapters, if attached and unmerged) and the manifest."""
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    (checkpoint_dir / MANIFEST).unlink(missing_ok=True)  # the old checkpoint stops counting as complete first
    files = {LIZARD_FILE: lizard_parameters(model), LORA_FILE: lora_parameters(model)}
    for filename, params in files.items():
        path = checkpoint_dir / filename
        path.unlink(missing_ok=True)
        if params:
            save_file({name: p.detach().cpu().contiguous() for name, p in params.items()}, str(path))
    manifest = {
        "format_version": FORMAT_VERSION,
        "base_model": {"name": base_name, "sha256": base_hash},
        "linearize_config": config.to_dict(),
        "train_config": train_config,
        "train_fingerprint": train_fingerprint,
        "stages_completed": stages,
        "files": [name for name, params in files.items() if params],
        "summary": summary or {},
        "versions": package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_text(checkpoint_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return checkpoint_dir


def load_linearized(
    model: nn.Module, checkpoint_dir: Path, *, kernel_backend: str | None = None, merge: bool = True,
    base_hash: str | None = None,
) -> dict[str, Any]:
    """Linearize the teacher ``model`` in place as the checkpoint says and load its parameters; returns the manifest.

    Refuses (:class:`BaseModelMismatchError`) when ``model``'s weights are not the ones the
    checkpoint was trained on. ``merge`` folds LoRA adapters into the projections (the form
    to benchmark); pass ``base_hash`` when already computed, to skip hashing again.
    """
    checkpoint_dir = Path(checkpoint_dir)
    manifest = read_manifest(checkpoint_dir)
    if manifest is None:
        raise CheckpointError(f"{checkpoint_dir}: not a linearized checkpoint (no readable {MANIFEST})")
    check_checkpoint_files(checkpoint_dir, manifest)
    expected = manifest["base_model"]["sha256"]
    actual = base_hash or base_model_hash(model)
    if actual != expected:
        raise BaseModelMismatchError(
            f"{checkpoint_dir} was trained on base model {manifest['base_model']['name']!r} "
            f"(weights sha256 {expected[:12]}), but the given model's weights hash to {actual[:12]}: "
            "load the same base model (same weights and dtype) or retrain"
        )
    options = dict(manifest["linearize_config"])
    linearize(model, options.pop("method"), kernel_backend=kernel_backend, **options)
    saved = load_file(str(checkpoint_dir / LIZARD_FILE)) if LIZARD_FILE in manifest["files"] else {}
    load_parameters(lizard_parameters(model), saved, where=str(checkpoint_dir))
    if LORA_FILE in manifest["files"]:
        lora = LoraSettings(**((manifest.get("train_config") or {}).get("lora") or {}))
        attach_lora(model, lora, seed=0)  # initial values are overwritten by the saved adapters
        load_parameters(lora_parameters(model), load_file(str(checkpoint_dir / LORA_FILE)), where=str(checkpoint_dir))
        if merge:
            merge_lora(model)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return manifest
