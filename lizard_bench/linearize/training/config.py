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
from typing import Any, Literal

from lizard_bench.config import ConfigError, read_yaml
from lizard_bench.typed_config import build, rule

AT_LEAST_ONE = rule(lambda n: n >= 1, "must be >= 1")


@dataclass
class StageConfig:
    """One stage's budget and learning rate (AdamW, cosine schedule with warm-up)."""

    # training tokens (all processes together); 0 skips the stage
    tokens: int = field(default=0, metadata=rule(lambda n: n >= 0, "must be >= 0"))
    # exact optimizer steps; overrides ``tokens`` when set
    steps: int | None = field(default=None, metadata=rule(lambda n: n is None or n >= 0, "must be >= 0 or null"))
    lr: float = field(default=1e-3, metadata=rule(lambda lr: lr > 0, "must be > 0"))
    # learning rate of the per-head scalars (α, sink logits, gate biases, GLA scale); None: ``lr``. They
    # get one gradient per head, so at the shared rate they barely move in a short budget
    scalar_lr: float | None = field(default=None, metadata=rule(lambda lr: lr is None or lr > 0,
                                                                "must be > 0 (or null: the stage's lr)"))
    batch_size: int = field(default=1, metadata=AT_LEAST_ONE)  # windows per micro-batch and process
    grad_accum: int = field(default=1, metadata=AT_LEAST_ONE)  # micro-batches per optimizer step

    def optimizer_steps(self, seq_len: int, num_processes: int = 1) -> int:
        """Optimizer steps this budget buys: tokens / (tokens per step), rounded up."""
        if self.steps is not None:
            return self.steps
        per_step = seq_len * self.batch_size * self.grad_accum * num_processes
        return math.ceil(self.tokens / per_step)


@dataclass
class LoraSettings:
    """Stage-2 adapters (paper: r = 8, α = 16, no dropout, on the q, k, v projections)."""

    r: int = field(default=8, metadata=AT_LEAST_ONE)
    alpha: int = 16
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj"],
                               metadata=rule(bool, "must name at least one projection"))


@dataclass
class TrainConfig:
    """The two-stage Lizard training recipe (docs/design.md §2). Defaults: the offline CPU budget."""

    corpus: str = "pydoc"  # used when the caller does not pass a corpus
    seq_len: int = field(default=512, metadata=rule(lambda n: n >= 2, "must be >= 2"))
    seed: int = 0
    stage1: StageConfig = field(default_factory=lambda: StageConfig(tokens=40_960, lr=1e-3))
    stage2: StageConfig = field(default_factory=lambda: StageConfig(tokens=20_480, lr=5e-4))
    lora: LoraSettings = field(default_factory=LoraSettings)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99], metadata=rule(
        lambda betas: len(betas) == 2 and all(0 <= b < 1 for b in betas), "must be two numbers in [0, 1)"))
    weight_decay: float = 0.0
    warmup_fraction: float = field(default=0.1, metadata=rule(lambda f: 0 <= f < 1, "must be in [0, 1)"))
    max_grad_norm: float = 1.0
    # passed to accelerate; 'auto': bf16 where the device computes it natively, else 'no' (resolved before
    # anything is fingerprinted or recorded: see resolve_mixed_precision)
    mixed_precision: Literal["no", "fp16", "bf16", "auto"] = "no"
    # stage 1 matches each layer's output after o_proj ('output', the layer's contribution to the residual
    # stream) or before it ('heads', the heads' mixed values)
    distill_target: Literal["output", "heads"] = "output"
    stage2_trains_attention: bool = False  # stage 2 also trains what stage 1 trained (the paper: LoRA only)
    checkpoint_every: int = 25  # optimizer steps between resumable training-state checkpoints (0: never)
    eval_windows: int = 2  # held-out windows scored before and after each stage (for the summary)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "train config",
                  lines: dict[tuple[Any, ...], int] | None = None) -> TrainConfig:
        """The recipe ``data`` over the defaults; unknown keys, wrong types and values out of range are errors."""
        return build(cls, data, where=where, lines=lines)

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
    """Read a training recipe YAML; unknown keys and wrong types are errors naming the file, line and key."""
    data, lines = _recipe_file(Path(path))
    return TrainConfig.from_dict(data, where=str(path), lines=lines)


def read_recipe(path: str | Path) -> dict[str, Any]:
    """A training recipe YAML as a mapping, before a suite's ``training`` overrides are merged into it."""
    return _recipe_file(Path(path))[0]


def _recipe_file(path: Path) -> tuple[dict[str, Any], dict[tuple[Any, ...], int]]:
    if not path.is_file():
        raise ConfigError(f"{path}: training config not found")
    return read_yaml(path)


def resolve_mixed_precision(train: TrainConfig, device: str) -> TrainConfig:
    """``mixed_precision: auto`` made concrete for ``device`` ('auto', 'cpu', 'cuda', 'cuda:N').

    Why: bf16 autocast is 1.2-1.3x faster on a CPU with AVX512-BF16 or AMX, but a CPU without them emulates
    it: one 512 x 576 x 1536 matmul took 978 ms in bf16 against 32 ms in float32 on a 2-core AVX2 EPYC, so
    the default suite's training would take hours there. The resolved value is what the checkpoint's
    fingerprint and the records hold, so two machines that resolve differently never share a checkpoint.
    """
    if train.mixed_precision != "auto":
        return train
    return dataclasses.replace(train, mixed_precision="bf16" if native_bf16(device) else "no")


def native_bf16(device: str) -> bool:
    """Whether ``device`` computes bf16 matmuls in hardware (CUDA: as torch reports; CPU: AVX512-BF16 or AMX)."""
    import torch

    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
