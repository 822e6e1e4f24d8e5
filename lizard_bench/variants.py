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


@dataclass(frozen=True)
class VariantSpec:
    name: str
    method: str | None  # None: the teacher
    options: dict[str, Any] = field(default_factory=dict)  # as the suite wrote them (for linearize(**options))
    config: LinearizeConfig | None = None  # the method's preset with the options applied; None for the teacher


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
    try:
        linearize_config = method_config(method, **settings)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"variant_options.{name}: {error}") from None
    return VariantSpec(name, method, settings, linearize_config)


def training_config(config: SuiteConfig):
    """The suite's training recipe: TrainConfig defaults (the CPU budget), then ``training_recipe``'s file,
    then ``training`` applied."""
    from lizard_bench.config import merge_settings, recipe_path
    from lizard_bench.linearize.training.config import TrainConfig, read_recipe

    base = read_recipe(recipe_path(config.training_recipe)) if config.training_recipe else {}
    where = f"training (recipe {config.training_recipe} + the suite's 'training')" if base else \
        "suite 'training' section"
    return TrainConfig.from_dict(merge_settings(base, config.training), where=where)


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

    train = training_config(config)
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


def _copy_training_record(logs: Path, destination: Path, summary: dict[str, Any]) -> None:
    """Each run directory keeps its variants' training logs and summary, even when a checkpoint was reused."""
    destination.mkdir(parents=True, exist_ok=True)
    for log in sorted(logs.glob("*.jsonl")) if logs.is_dir() else []:
        shutil.copyfile(log, destination / log.name)
    atomic_write_text(destination / "summary.json", json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
