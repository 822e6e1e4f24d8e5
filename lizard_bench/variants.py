"""Variants: the ways one pretrained model is run — the softmax teacher and its linearized forms.

Every variant runs its attention through the shared kernels, so comparisons between them
are like for like. A linearized variant is named after its method (``lizard``, ``lolcats``,
the ablations); ``variant_options`` in a suite tunes a built-in one or defines a new name
(``{lizard_hybrid: {method: lizard, softmax_layers: [0, 15]}}``). Its checkpoint lives under
``<results_dir>/checkpoints/<model>/<variant>/<fingerprint>/`` and is trained once, then reused
by every run whose base weights, method options and training recipe match; any other
combination gets its own folder, so no setting change ever replaces a checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lizard_bench.config import ConfigError, SuiteConfig
from lizard_bench.linearize.config import METHOD_PRESETS, METHODS, LinearizeConfig, method_config
from lizard_bench.models.descriptions import TEACHER
from lizard_bench.models.kernel_attention import use_kernel_attention
from lizard_bench.models.loading import LoadedModel
from lizard_bench.results.store import atomic_write_text, safe_name

if TYPE_CHECKING:
    from lizard_bench.linearize.pipeline import PreparedVariant


TRAINING_STAGES = ("stage1", "stage2")
# variants that run fewer than both stages by default (``train_stages`` in variant_options overrides it)
DEFAULT_TRAIN_STAGES: dict[str, tuple[str, ...]] = {"swa": ()}


@dataclass(frozen=True)
class VariantSpec:
    name: str
    method: str | None  # None: the teacher
    options: dict[str, Any] = field(default_factory=dict)  # as the suite wrote them (for linearize(**options))
    config: LinearizeConfig | None = None  # the method's preset with the options applied; None for the teacher
    train_stages: tuple[str, ...] = TRAINING_STAGES  # the suite's stages this variant runs (a stage left out: 0 tokens)


def resolve_variant(name: str, config: SuiteConfig) -> VariantSpec:
    """The method and options behind a variant name; unknown names and bad options are ConfigErrors."""
    settings = dict(config.variant_options.get(name, {}))
    if name == TEACHER:
        if settings:
            raise ConfigError(f"variant_options.{TEACHER}: the teacher takes no options")
        return VariantSpec(TEACHER, None)
    method = settings.pop("method", name if name in METHOD_PRESETS else None)
    if method is None:
        raise ConfigError(
            f"unknown variant {name!r}: use {TEACHER}, a method ({', '.join(METHODS)}), or define it under "
            f"variant_options.{name} with a 'method' key"
        )
    stages = _train_stages(name, settings.pop("train_stages", DEFAULT_TRAIN_STAGES.get(method, TRAINING_STAGES)))
    try:
        linearize_config = method_config(method, **settings)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"variant_options.{name}: {error}") from None
    if "stage1" in stages and not linearize_config.adds_parameters() and "train_stages" in config.variant_options.get(
            name, {}):
        raise ConfigError(f"variant_options.{name}.train_stages: stage1 trains what linearization adds, and this "
                          "layer adds nothing (no linear branch, no sinks): leave stage1 out")
    return VariantSpec(name, method, settings, linearize_config, stages)


def _train_stages(name: str, stages: Any) -> tuple[str, ...]:
    """``train_stages`` checked: a list of the suite's stage names (an empty list trains nothing)."""
    if not isinstance(stages, (list, tuple)) or any(stage not in TRAINING_STAGES for stage in stages):
        raise ConfigError(f"variant_options.{name}.train_stages: must be a list of {', '.join(TRAINING_STAGES)} "
                          f"(or []), got {stages!r}")
    return tuple(stage for stage in TRAINING_STAGES if stage in stages)


def needs_checkpoint(spec: VariantSpec, train) -> bool:
    """False for a variant that adds no parameter and trains no adapter (``swa``): it is rebuilt, not stored."""
    train = variant_training(spec, train)
    return spec.config.adds_parameters() or train.stage2.optimizer_steps(train.seq_len) > 0


def variant_training(spec: VariantSpec, train):
    """The suite's recipe as this variant runs it: a stage it leaves out gets no optimizer step."""
    from lizard_bench.linearize.training.config import StageConfig

    skipped = {stage: StageConfig(tokens=0, steps=0) for stage in TRAINING_STAGES if stage not in spec.train_stages}
    return dataclasses.replace(train, **skipped) if skipped else train


def training_config(config: SuiteConfig):
    """The suite's training recipe: TrainConfig defaults (the CPU budget), then ``training_recipe``'s file,
    then ``training`` applied."""
    from lizard_bench.config import merge_settings, recipe_path
    from lizard_bench.linearize.training.config import TrainConfig, read_recipe, resolve_mixed_precision

    base = read_recipe(recipe_path(config.training_recipe)) if config.training_recipe else {}
    where = f"training (recipe {config.training_recipe} + the suite's 'training')" if base else \
        "suite 'training' section"
    train = TrainConfig.from_dict(merge_settings(base, config.training), where=where)
    return resolve_mixed_precision(train, config.device)


def prepare_variant(loaded: LoadedModel, spec: VariantSpec, backend: str, *, config: SuiteConfig,
                    model_name: str, run_dir: Path | None, retrain: bool = False) -> PreparedVariant | None:
    """Turn the loaded teacher into ``spec`` in place; returns what was prepared (None for the teacher).

    ``run_dir`` (when given) receives a copy of the variant's training logs and summary;
    ``retrain`` trains again over a matching checkpoint instead of loading it.
    """
    use_kernel_attention(loaded.model, backend)  # hybrid softmax layers and distillation targets use it too
    if spec.method is None:
        return None
    from lizard_bench.linearize.checkpoint import base_model_hash
    from lizard_bench.linearize.pipeline import prepare_linearized

    train = variant_training(spec, training_config(config))
    base_hash = base_model_hash(loaded.model)
    checkpoint_dir = checkpoint_folder(Path(config.results_dir), model_name, spec, base_hash, train)
    prepared = prepare_linearized(
        loaded.model, loaded.tokenizer, model_name=model_name, method=spec.method, options=spec.options,
        train=train, corpus=None, checkpoint_dir=checkpoint_dir, log_dir=checkpoint_dir / "logs",
        kernel_backend=backend, retrain=retrain, base_hash=base_hash,
    )
    if run_dir is not None:
        _copy_training_record(checkpoint_dir / "logs", run_dir / "training" / safe_name(model_name) / spec.name,
                              prepared.summary())
    return prepared


def checkpoint_folder(results_dir: Path, model_name: str, spec: VariantSpec, base_hash: str, train) -> Path:
    """``checkpoints/<model>/<variant>/<fingerprint>/``: one folder per base weights × method config × recipe.

    A checkpoint written before folders were keyed (``checkpoints/<model>/<variant>/`` itself)
    is still used in place when its fingerprint matches; otherwise it is left alone.
    """
    from lizard_bench.linearize.checkpoint import read_manifest
    from lizard_bench.linearize.pipeline import checkpoint_fingerprint

    variant_root = results_dir / "checkpoints" / safe_name(model_name) / safe_name(spec.name)
    fingerprint = checkpoint_fingerprint(base_hash, spec.config, train)
    legacy = read_manifest(variant_root)
    if legacy is not None and legacy.get("train_fingerprint") == fingerprint:
        return variant_root
    return variant_root / fingerprint[:16]


def matching_checkpoints(results_dir: Path, model_name: str, spec: VariantSpec, train) -> list[Path]:
    """The finished checkpoints of ``spec`` on ``model_name`` whose method config and recipe match ``train``.

    Why not :func:`checkpoint_folder`: its fingerprint needs the base weights' hash, known only once
    the weights load. Before that (a plan, preflight) these are the folders the run may reuse, one per
    base weights (other weights or dtype under the same name) at most.
    """
    from lizard_bench.linearize.checkpoint import read_manifest

    root = results_dir / "checkpoints" / safe_name(model_name) / safe_name(spec.name)
    if not root.is_dir():
        return []
    wanted, recipe = spec.config.to_dict(), train.to_dict()
    found = []
    for folder in [root, *sorted(path for path in root.iterdir() if path.is_dir())]:
        manifest = read_manifest(folder)
        if isinstance(manifest, dict) and manifest.get("linearize_config") == wanted \
                and manifest.get("train_config") == recipe:
            found.append(folder)
    return found


def _copy_training_record(logs: Path, destination: Path, summary: dict[str, Any]) -> None:
    """Each run directory keeps its variants' training logs and summary, even when a checkpoint was reused."""
    destination.mkdir(parents=True, exist_ok=True)
    for log in sorted(logs.glob("*.jsonl")) if logs.is_dir() else []:
        shutil.copyfile(log, destination / log.name)
    atomic_write_text(destination / "summary.json", json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
