"""The training recipe as data: budgets per stage, optimizer, LoRA, and what identifies a result.

The dataclass defaults are the offline CPU budget (SmolLM2-135M on the embedded ``pydoc``
corpus in about five minutes on 2 cores); ``configs/train_paper.yaml`` holds the paper's
recipe. A budget is given in tokens (rounded up to whole optimizer steps, so the same file
means the same amount of training on 1 or 8 GPUs) or, for tests and quick checks, in steps.

Two settings do not change the trained weights (``checkpoint_every``, ``eval_windows``); they
are left out of the fingerprint so that changing them neither retrains nor invalidates a
half-finished run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lizard_bench.config import ConfigError

PRECISIONS = ("no", "fp16", "bf16")
DISTILL_TARGETS = ("output", "heads")


@dataclass
class StageConfig:
    """One stage's budget and learning rate (AdamW, cosine schedule with warm-up)."""

    tokens: int = 0  # training tokens (all processes together); 0 skips the stage
    steps: int | None = None  # exact optimizer steps; overrides ``tokens`` when set
    lr: float = 1e-3
    # learning rate of the per-head scalars (α, sink logits, gate biases, GLA scale); None: ``lr``. They
    # get one gradient per head, so at the shared rate they barely move in a short budget
    scalar_lr: float | None = None
    batch_size: int = 1  # windows per micro-batch and process
    grad_accum: int = 1  # micro-batches per optimizer step

    def optimizer_steps(self, seq_len: int, num_processes: int = 1) -> int:
        """Optimizer steps this budget buys: tokens / (tokens per step), rounded up."""
        if self.steps is not None:
            return self.steps
        per_step = seq_len * self.batch_size * self.grad_accum * num_processes
        return math.ceil(self.tokens / per_step)


@dataclass
class LoraSettings:
    """Stage-2 adapters (paper: r = 8, α = 16, no dropout, on the q, k, v projections)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj"])


@dataclass
class TrainConfig:
    """The two-stage Lizard training recipe (docs/design.md §2). Defaults: the offline CPU budget."""

    corpus: str = "pydoc"  # used when the caller does not pass a corpus
    seq_len: int = 512
    seed: int = 0
    stage1: StageConfig = field(default_factory=lambda: StageConfig(tokens=51_200, lr=1e-3))
    stage2: StageConfig = field(default_factory=lambda: StageConfig(tokens=30_720, lr=5e-4))
    lora: LoraSettings = field(default_factory=LoraSettings)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    weight_decay: float = 0.0
    warmup_fraction: float = 0.1
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"  # passed to accelerate: 'no', 'fp16' or 'bf16'
    # stage 1 matches each layer's output after o_proj ('output', the layer's contribution to the residual
    # stream) or before it ('heads', the heads' mixed values)
    distill_target: str = "output"
    stage2_trains_attention: bool = False  # stage 2 also trains what stage 1 trained (the paper: LoRA only)
    checkpoint_every: int = 25  # optimizer steps between resumable training-state checkpoints (0: never)
    eval_windows: int = 2  # held-out windows scored before and after each stage (for the summary)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "train config") -> TrainConfig:
        config = _build(cls, data, where, prefix="")
        config.validate(where)
        return config

    def validate(self, where: str = "train config") -> None:
        if self.seq_len < 2:
            raise ConfigError(f"{where}: seq_len must be >= 2, got {self.seq_len}")
        for name in ("stage1", "stage2"):
            stage: StageConfig = getattr(self, name)
            if stage.tokens < 0 or (stage.steps is not None and stage.steps < 0):
                raise ConfigError(f"{where}: {name} budget must be >= 0")
            if stage.batch_size < 1 or stage.grad_accum < 1 or stage.lr <= 0:
                raise ConfigError(f"{where}: {name} needs batch_size >= 1, grad_accum >= 1 and lr > 0")
            if stage.scalar_lr is not None and stage.scalar_lr <= 0:
                raise ConfigError(f"{where}: {name}.scalar_lr must be > 0 (or null: the stage's lr)")
        if self.distill_target not in DISTILL_TARGETS:
            raise ConfigError(f"{where}: distill_target must be one of {', '.join(DISTILL_TARGETS)}, "
                              f"got {self.distill_target!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"{where}: betas must be two numbers in [0, 1), got {self.betas!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError(f"{where}: warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.mixed_precision not in PRECISIONS:
            raise ConfigError(f"{where}: mixed_precision must be one of {', '.join(PRECISIONS)}")
        if self.lora.r < 1 or not self.lora.targets:
            raise ConfigError(f"{where}: lora needs r >= 1 and at least one target projection")

    # -- what identifies a trained result -----------------------------------------------------
    def common_fingerprint(self) -> dict[str, Any]:
        """Settings both stages depend on."""
        keep = ("corpus", "seq_len", "seed", "betas", "weight_decay", "warmup_fraction", "max_grad_norm",
                "mixed_precision", "distill_target")
        return {key: getattr(self, key) for key in keep}

    def stage_fingerprint(self, stage: str) -> dict[str, Any]:
        """Everything that determines the weights at the end of ``stage`` ('stage1' or 'stage2').

        Stage 2 starts from stage 1's result, so its fingerprint contains stage 1's; stage 1's
        does not contain stage 2's, so a changed stage-2 budget reuses a finished stage 1.
        """
        fingerprint = {**self.common_fingerprint(), "stage1": dataclasses.asdict(self.stage1)}
        if stage == "stage2":
            fingerprint.update(stage2=dataclasses.asdict(self.stage2), lora=dataclasses.asdict(self.lora))
            if self.stage2_trains_attention:  # absent when off, so older checkpoints keep their fingerprint
                fingerprint["stage2_trains_attention"] = True
        return fingerprint

    def fingerprint(self) -> dict[str, Any]:
        return self.stage_fingerprint("stage2")


def fingerprint_hash(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (for matching checkpoints to configs)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a training recipe YAML; unknown keys and wrong types are errors naming the file and key."""
    return TrainConfig.from_dict(read_recipe(path), where=str(path))


def read_recipe(path: str | Path) -> dict[str, Any]:
    """A training recipe YAML as a mapping, before a suite's ``training`` overrides are merged into it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: training config not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    return data


_NESTED = {"stage1": StageConfig, "stage2": StageConfig, "lora": LoraSettings}


def _build(cls: type, data: dict[str, Any], where: str, prefix: str) -> Any:
    """``cls(**data)`` with nested sections, refusing unknown keys and obviously wrong types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    defaults = cls()
    values: dict[str, Any] = {}
    for key, value in data.items():
        label = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"{where}: unknown key '{label}' (known keys: {', '.join(sorted(fields))})")
        if key in _NESTED and not prefix:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: '{label}' must be a mapping")
            base = dataclasses.asdict(getattr(defaults, key))
            values[key] = _build(_NESTED[key], {**base, **value}, where, prefix=f"{key}.")
            continue
        is_float = str(fields[key].type).startswith("float")  # e.g. 'float | None': null or a number
        values[key] = _checked(getattr(defaults, key), value, where, label, float_field=is_float)
    return cls(**values)


def _checked(default: Any, value: Any, where: str, label: str, float_field: bool = False) -> Any:
    if value is None:
        if default is None:
            return None
        raise ConfigError(f"{where}: '{label}' cannot be null")
    if isinstance(default, str) and isinstance(value, bool):
        raise ConfigError(f"{where}: '{label}' must be a string, got {value!r} (YAML reads bare no/yes as booleans: "
                          "quote it)")
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(default, bool) and isinstance(value, bool)
    elif isinstance(default, float) or float_field:
        try:  # YAML 1.1 reads '1e-3' (no dot) as a string; accept it as the number it obviously is
            value, ok = float(value), True
        except (TypeError, ValueError):
            ok = False
    elif isinstance(default, int) or default is None:
        ok = isinstance(value, int)
    elif isinstance(default, list):
        ok = isinstance(value, list)
        value = list(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"{where}: '{label}' has the wrong type: got {value!r}")
    return value
