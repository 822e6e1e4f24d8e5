"""Training stages on a tiny hybrid model: losses fall, the right parameters train, resuming is exact, logs parse."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from lizard_bench.config import ConfigError
from lizard_bench.linearize import lizard_parameters
from lizard_bench.linearize.checkpoint import base_model_hash
from lizard_bench.linearize.training import StageConfig, TrainConfig, WindowSampler, load_train_config
from lizard_bench.linearize.training.data import documents_from_rows, format_alpaca
from lizard_bench.linearize.training.log import REQUIRED_FIELDS, read_log
from lizard_bench.linearize.training.lora import lora_module_names, lora_parameters
from lizard_bench.linearize.training.optim import warmup_cosine
from tests.linearize.helpers import (
    DEFAULT_OPTIONS,
    Interrupt,
    interrupt_at,
    run_pipeline,
    small_config,
    trainable_state,
)
from tests.tiny_models import tiny_llama

REPO = Path(__file__).resolve().parents[2]
HYBRID = {"softmax_layers": [1], **DEFAULT_OPTIONS}  # layer 1 of 3 stays softmax


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted two-stage run of a 3-layer hybrid, recording which parameters were trainable per stage."""
    directory = tmp_path_factory.mktemp("reference")
    model = tiny_llama(0, num_hidden_layers=3)
    teacher_hash = base_model_hash(model)
    trainable: dict[str, set[str]] = {}

    def record(info) -> None:
        names = {name for name, p in model.named_parameters() if p.requires_grad}
        trainable.setdefault(info.stage, names)
        assert trainable[info.stage] == names, "the trainable set changed within a stage"

    prepared = run_pipeline(directory, model=model, options=HYBRID, on_step=record)
    return {"prepared": prepared, "dir": directory, "trainable": trainable, "teacher_hash": teacher_hash}


def test_stage1_lowers_attention_mse(reference):
    stage1 = reference["prepared"].stages["stage1"]
    assert stage1["metric"] == "attention_mse"
    assert stage1["end"] < 0.8 * stage1["start"], stage1
    assert stage1["train_loss_last"] < stage1["train_loss_first"]


def test_stage2_lowers_lm_loss(reference):
    stage2 = reference["prepared"].stages["stage2"]
    assert stage2["metric"] == "lm_loss"
    assert stage2["end"] < stage2["start"] - 0.05, stage2
    assert reference["prepared"].teacher_lm_loss is not None


def test_only_intended_parameters_train_in_each_stage(reference):
    model = reference["prepared"].model
    assert reference["trainable"]["stage1"] == set(lizard_parameters(model))
    assert reference["trainable"]["stage2"] == set(lora_parameters(model))
    assert not any(p.requires_grad for p in model.parameters()), "everything is frozen after training"


def test_lora_sits_on_linearized_qkv_only(reference):
    expected = {f"model.layers.{i}.self_attn.base.{p}" for i in (0, 2) for p in ("q_proj", "k_proj", "v_proj")}
    assert set(lora_module_names(reference["prepared"].model)) == expected


def test_teacher_weights_are_untouched(reference):
    # unmerged: the hash maps wrapped names back and skips added parameters, so it must equal the teacher's
    assert base_model_hash(reference["prepared"].model) == reference["teacher_hash"] == reference["prepared"].base_hash


def test_training_logs_are_well_formed_jsonl(reference):
    config = small_config()
    for stage, steps in (("stage1", config.stage1.steps), ("stage2", config.stage2.steps)):
        lines = (reference["dir"] / "logs" / f"{stage}.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in lines]
        assert [row["step"] for row in rows] == list(range(1, steps + 1))
        for row in rows:
            assert set(REQUIRED_FIELDS) <= set(row)
            assert all(isinstance(row[key], (int, float)) and math.isfinite(row[key]) for key in REQUIRED_FIELDS)
        assert [row["tokens"] for row in rows] == [config.seq_len * step for step in range(1, steps + 1)]
        assert all(a["time_s"] <= b["time_s"] for a, b in zip(rows, rows[1:], strict=False))
        lrs = [row["lr"] for row in rows]
        assert max(lrs) == pytest.approx(getattr(config, stage).lr) and lrs[-1] < lrs[len(lrs) // 2]


def test_resume_after_interruptions_equals_uninterrupted(reference, tmp_path):
    # crash in stage 1 (after its step-4 checkpoint), then in stage 2, then finish: three sessions
    for hook in (interrupt_at("stage1", 6), interrupt_at("stage2", 9)):
        with pytest.raises(Interrupt):
            run_pipeline(tmp_path, options=HYBRID, layers=3, on_step=hook)
    resumed = run_pipeline(tmp_path, options=HYBRID, layers=3)
    assert not resumed.from_checkpoint
    expected, actual = trainable_state(reference["prepared"].model), trainable_state(resumed.model)
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=1e-6, msg=name)
    for stage in ("stage1", "stage2"):  # the resumed log reads like one run: every step exactly once
        assert [row["step"] for row in read_log(tmp_path / "logs" / f"{stage}.jsonl")] == list(range(1, 13))
    assert not (tmp_path / "ckpt" / "train_state").exists(), "training state is removed once the checkpoint exists"


def test_zero_budgets_skip_stages(tmp_path):
    prepared = run_pipeline(tmp_path, train=small_config(stage1_steps=0, stage2_steps=0))
    assert prepared.stages == {}
    assert not lora_module_names(prepared.model)
    assert not (tmp_path / "logs").exists()


def test_token_budget_rounds_up_to_whole_steps():
    stage = StageConfig(tokens=1000, batch_size=2, grad_accum=3)
    assert stage.optimizer_steps(seq_len=64, num_processes=1) == math.ceil(1000 / 384)
    assert stage.optimizer_steps(seq_len=64, num_processes=2) == math.ceil(1000 / 768)
    assert StageConfig(tokens=10**9, steps=5).optimizer_steps(64) == 5
    assert StageConfig(tokens=0).optimizer_steps(64) == 0


def test_window_sampler_is_seeded_and_resumable():
    full = list(WindowSampler(10, seed=3, start=0, length=25))
    assert sorted(full[:10]) == list(range(10)) and sorted(full[10:20]) == list(range(10))  # each epoch a permutation
    assert full[:10] != full[10:20]  # reshuffled per epoch
    assert list(WindowSampler(10, seed=3, start=7, length=18)) == full[7:]
    assert list(WindowSampler(10, seed=4, start=0, length=10)) != full[:10]


def test_schedule_warms_up_then_decays():
    multiplier = warmup_cosine(total_steps=20, warmup_fraction=0.1)
    values = [multiplier(step) for step in range(20)]
    assert values[:2] == [0.5, 1.0] and 0 < values[-1] < 0.05
    assert all(a >= b for a, b in zip(values[1:], values[2:], strict=False))


def test_alpaca_rows_are_formatted_as_whole_examples():
    rows = [{"instruction": "Add.", "input": "2 and 3", "output": "5"},
            {"instruction": "Hi", "input": "", "output": "Hello"}]
    docs = documents_from_rows(rows, ["output", "input", "instruction"])
    assert docs[0].text == format_alpaca(rows[0]) == "### Instruction:\nAdd.\n\n### Input:\n2 and 3\n\n### Response:\n5"
    assert "### Input" not in docs[1].text
    assert [d.text for d in documents_from_rows([{"body": "x"}], ["body"])] == ["x"]


def test_config_files_load_and_cpu_file_matches_defaults():
    assert load_train_config(REPO / "configs" / "train_cpu.yaml") == TrainConfig()
    paper = load_train_config(REPO / "configs" / "train_paper.yaml")
    assert paper.corpus == "hf:yahma/alpaca-cleaned" and paper.seq_len == 2048
    assert (paper.stage1.tokens, paper.stage2.tokens) == (20_000_000, 20_000_000)
    assert (paper.stage1.lr, paper.stage2.lr, paper.betas) == (1e-3, 5e-4, [0.9, 0.99])


def test_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("stage1:\n  tokns: 5\n")
    with pytest.raises(ConfigError, match=r"unknown key 'stage1.tokns'"):
        load_train_config(path)
    path.write_text("seq_len: long\n")
    with pytest.raises(ConfigError, match=r"train.yaml:1: 'seq_len' must be an integer"):
        load_train_config(path)
    path.write_text("mixed_precision: no\n")
    with pytest.raises(ConfigError, match=r"quote it"):
        load_train_config(path)
    path.write_text("stage1:\n  lr: 1e-3\n")  # YAML 1.1 reads this as a string; it is still the number meant
    assert load_train_config(path).stage1.lr == 1e-3


def test_gradient_accumulation_equals_the_larger_batch(tmp_path):
    # 2 micro-batches of 1 window read the same windows as 1 batch of 2; the averaged gradients must agree
    def recipe(batch_size: int, grad_accum: int) -> TrainConfig:
        return small_config(stage1=StageConfig(steps=3, lr=3e-2, batch_size=batch_size, grad_accum=grad_accum),
                            stage2=StageConfig(steps=3, lr=2e-2, batch_size=batch_size, grad_accum=grad_accum))

    accumulated = trainable_state(run_pipeline(tmp_path / "accum", train=recipe(1, 2)).model)
    batched = trainable_state(run_pipeline(tmp_path / "batch", train=recipe(2, 1)).model)
    # float32 sums in another order; Adam's per-element scaling enlarges that on near-zero gradients (seen:
    # 1.5e-5 on one element, 0.07% of a step at lr 2e-2); a lost or doubled micro-batch moves far more
    for name, value in batched.items():
        torch.testing.assert_close(accumulated[name], value, rtol=0, atol=1e-4, msg=name)
    assert [row["tokens"] for row in read_log(tmp_path / "accum" / "logs" / "stage2.jsonl")] == [128, 256, 384]


def test_one_process_can_train_recipes_of_different_precision_one_after_the_other():
    """accelerate keeps one state per process; a finished bf16 recipe must not block a float32 one."""
    from lizard_bench.linearize.training.loop import make_accelerator

    assert make_accelerator(small_config(mixed_precision="bf16")).mixed_precision == "bf16"
    assert make_accelerator(small_config()).mixed_precision == "no"
