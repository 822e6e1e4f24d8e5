"""Linearized checkpoints: exact round trips, refusal on a different base model, reuse by the pipeline."""

from __future__ import annotations

import json

import pytest
import torch

from lizard_bench.linearize import linearize, lizard_parameters
from lizard_bench.linearize.checkpoint import (
    LIZARD_FILE,
    LORA_FILE,
    MANIFEST,
    BaseModelMismatchError,
    CheckpointError,
    base_model_hash,
    load_linearized,
)
from lizard_bench.linearize.pipeline import prepare_linearized
from lizard_bench.linearize.training import LoraSettings
from lizard_bench.linearize.training.lora import attach_lora, lora_module_names, merge_lora
from tests.linearize.helpers import DEFAULT_OPTIONS, run_pipeline, small_config
from tests.tiny_models import character_tokenizer, tiny_llama

TOKENS = torch.tensor([[5, 17, 42, 8, 23, 61, 4, 9, 30, 12, 7, 55, 3, 19, 44, 28]])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short two-stage run with adapters left unmerged, and its checkpoint directory."""
    directory = tmp_path_factory.mktemp("trained")
    prepared = run_pipeline(directory, train=small_config(stage1_steps=3, stage2_steps=3, checkpoint_every=0))
    return prepared, directory / "ckpt"


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=TOKENS, use_cache=False).logits


def test_checkpoint_holds_only_added_parameters_and_a_full_manifest(trained):
    prepared, checkpoint = trained
    assert sorted(p.name for p in checkpoint.iterdir()) == sorted([MANIFEST, LIZARD_FILE, LORA_FILE])
    manifest = json.loads((checkpoint / MANIFEST).read_text())
    assert manifest["base_model"] == {"name": "tiny-seed0", "sha256": prepared.base_hash}
    assert manifest["linearize_config"] == prepared.config.to_dict()
    assert manifest["train_config"]["stage1"]["steps"] == 3 and manifest["train_config"]["corpus"] == "patterns"
    assert manifest["stages_completed"] == ["stage1", "stage2"]
    assert {"torch", "transformers", "peft", "accelerate"} <= set(manifest["versions"])
    assert manifest["summary"]["stages"]["stage2"]["steps"] == 3


def test_round_trip_gives_identical_logits(trained):
    prepared, checkpoint = trained
    unmerged = tiny_llama(0)
    load_linearized(unmerged, checkpoint, merge=False)
    assert torch.equal(logits(unmerged), logits(prepared.model))

    merged = tiny_llama(0)
    load_linearized(merged, checkpoint)
    assert not lora_module_names(merged)
    merge_lora(prepared.model)  # the same arithmetic on the trained model: bit-identical
    assert torch.equal(logits(merged), logits(prepared.model))
    assert not any(p.requires_grad for p in merged.parameters())


def test_loading_onto_a_different_base_model_is_refused(trained):
    _, checkpoint = trained
    with pytest.raises(BaseModelMismatchError, match=r"trained on base model 'tiny-seed0'") as caught:
        load_linearized(tiny_llama(1), checkpoint)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_loading_a_directory_without_manifest_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not a linearized checkpoint"):
        load_linearized(tiny_llama(0), tmp_path)


def test_base_hash_ignores_added_parameters_and_sees_weight_changes():
    model = tiny_llama(0)
    teacher = base_model_hash(model)
    linearize(model)
    attach_lora(model, LoraSettings(), seed=0)
    with torch.no_grad():
        for parameter in lizard_parameters(model).values():
            parameter.add_(1.0)
    assert base_model_hash(model) == teacher
    with torch.no_grad():
        model.model.norm.weight[0] += 1e-3
    assert base_model_hash(model) != teacher


def test_pipeline_reuses_a_matching_checkpoint_and_refuses_to_replace_it_with_a_new_recipe(trained, tmp_path):
    _, checkpoint = trained
    directory = checkpoint.parent
    steps = []
    again = run_pipeline(directory, train=small_config(stage1_steps=3, stage2_steps=3, checkpoint_every=0),
                         on_step=steps.append)
    assert again.from_checkpoint and steps == []
    assert again.stages["stage1"]["steps"] == 3  # the stored summary comes back with the loaded model

    # found by the corpus's name alone: "patterns" is no readable corpus spec, so nothing was read
    by_name = prepare_linearized(
        tiny_llama(0), character_tokenizer(), model_name="tiny-seed0", method="lizard", options=DEFAULT_OPTIONS,
        train=small_config(stage1_steps=3, stage2_steps=3, checkpoint_every=0), corpus=None,
        checkpoint_dir=checkpoint, log_dir=None, progress=False,
    )
    assert by_name.from_checkpoint

    new_recipe = small_config(stage1_steps=2, stage2_steps=0, checkpoint_every=0)
    before = (checkpoint / MANIFEST).read_text()
    with pytest.raises(CheckpointError, match="never replaced implicitly"):
        run_pipeline(directory, train=new_recipe, on_step=steps.append)
    assert (checkpoint / MANIFEST).read_text() == before and steps == []
    other = run_pipeline(tmp_path / "elsewhere", train=new_recipe, on_step=steps.append)
    assert not other.from_checkpoint and len(steps) == 2
    manifest = json.loads((other.checkpoint_dir / MANIFEST).read_text())
    assert manifest["stages_completed"] == ["stage1"] and LORA_FILE not in manifest["files"]
    assert not (other.checkpoint_dir / LORA_FILE).exists()
