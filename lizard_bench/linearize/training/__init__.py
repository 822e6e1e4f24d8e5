"""Training a linearized model: stage 1 attention transfer, stage 2 LoRA alignment (docs/design.md §2).

One module per job: ``config`` (the recipe), ``data`` (token windows), ``stages`` (what trains
and on which loss), ``lora`` (peft adapters), ``optim`` (AdamW + schedule), ``loop`` (the
accelerate loop), ``state`` (resumable checkpoints), ``log`` (JSONL step logs).
"""

from lizard_bench.linearize.training.config import LoraSettings, StageConfig, TrainConfig, load_train_config
from lizard_bench.linearize.training.data import TokenWindows, WindowSampler, load_training_corpus
from lizard_bench.linearize.training.loop import StageResult, StepInfo, run_stage
from lizard_bench.linearize.training.lora import attach_lora, lora_parameters, merge_lora
from lizard_bench.linearize.training.stages import Alignment, AttentionTransfer

__all__ = [
    "Alignment",
    "AttentionTransfer",
    "LoraSettings",
    "StageConfig",
    "StageResult",
    "StepInfo",
    "TokenWindows",
    "TrainConfig",
    "WindowSampler",
    "attach_lora",
    "load_train_config",
    "load_training_corpus",
    "lora_parameters",
    "merge_lora",
    "run_stage",
]
