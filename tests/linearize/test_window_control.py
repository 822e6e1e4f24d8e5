"""The training-free window control (``swa``): the teacher's own attention restricted to a window and anchors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lizard_bench.config import ConfigError, SuiteConfig
from lizard_bench.linearize import linearize, lizard_parameters
from lizard_bench.linearize.config import METHOD_PRESETS, method_config
from lizard_bench.linearize.pipeline import prepare_linearized
from lizard_bench.linearize.training.lora import lora_module_names
from lizard_bench.variants import needs_checkpoint, resolve_variant, variant_training
from lizard_bench.variants import training_config as suite_training
from tests.linearize.helpers import pattern_corpus, small_config
from tests.tiny_models import character_tokenizer, tiny_llama

REPO = Path(__file__).resolve().parents[2]
LENGTH = 37  # odd, and past every window below


def ids(length: int = LENGTH, batch: int = 2) -> torch.Tensor:
    return torch.randint(2, 90, (batch, length), generator=torch.Generator().manual_seed(5))


def swa_model(window: int, anchors: int) -> torch.nn.Module:
    model = tiny_llama(3, attn_implementation="eager")
    linearize(model, "swa", window=window, num_anchors=anchors)
    return model.eval()


def banded_mask(length: int, window: int, anchors: int) -> torch.Tensor:
    """Additive [1, 1, T, T] mask by hand: key j is visible to query i when i - window < j <= i, or j < anchors."""
    query, key = torch.arange(length)[:, None], torch.arange(length)[None, :]
    visible = (key <= query) & ((key > query - window) | (key < anchors))
    return torch.zeros(length, length).masked_fill(~visible, torch.finfo(torch.float32).min)[None, None]


@torch.no_grad()
def test_swa_without_anchors_and_a_window_past_the_sequence_is_the_teacher():
    teacher = tiny_llama(3, attn_implementation="eager").eval()
    expected = teacher(input_ids=ids()).logits
    got = swa_model(window=LENGTH, anchors=0)(input_ids=ids()).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("window, anchors", [(1, 0), (8, 0), (8, 4), (13, 3)])
@torch.no_grad()
def test_swa_equals_the_teacher_under_a_hand_built_band_mask(window, anchors):
    teacher = tiny_llama(3, attn_implementation="eager").eval()
    mask = banded_mask(LENGTH, window, anchors).expand(2, 1, LENGTH, LENGTH)
    expected = teacher(input_ids=ids(), attention_mask=mask).logits
    got = swa_model(window, anchors)(input_ids=ids()).logits
    assert not torch.allclose(got, teacher(input_ids=ids()).logits, atol=1e-3), "the window must change something"
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_swa_decode_equals_its_full_forward():
    model = swa_model(window=8, anchors=4)
    full = model(input_ids=ids(batch=1)).logits
    cache = None
    steps = []
    for position in range(LENGTH):
        output = model(input_ids=ids(batch=1)[:, position:position + 1], cache=cache, use_cache=True)
        cache = output.past_key_values
        steps.append(output.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)


def test_the_window_control_adds_nothing_to_learn():
    assert not method_config("swa").adds_parameters()
    assert not lizard_parameters(swa_model(8, 4))
    for method in METHOD_PRESETS:  # the config's answer is what the built layer holds
        model = tiny_llama(0)
        linearize(model, method)
        assert bool(lizard_parameters(model)) == method_config(method).adds_parameters(), method


def test_swa_lora_skips_stage1_and_records_it(tmp_path):
    model = tiny_llama(0)
    prepared = prepare_linearized(
        model, character_tokenizer(), model_name="tiny", method="swa_lora", options={"window": 16},
        train=small_config(stage1_steps=3, stage2_steps=2), corpus=pattern_corpus(),
        checkpoint_dir=tmp_path / "ckpt", log_dir=tmp_path / "logs", progress=False,
    )
    assert prepared.stages["stage1"] == {"skipped": "the linearized layer adds no parameter to train"}
    assert prepared.stages["stage2"]["steps"] == 2
    assert (tmp_path / "ckpt").is_dir(), "the LoRA adapters it learned are stored"
    assert not (tmp_path / "logs" / "stage1.jsonl").exists()


def test_swa_trains_nothing_and_stores_nothing(tmp_path):
    config = SuiteConfig(variants=["swa", "swa_lora"])
    swa, swa_lora = (resolve_variant(name, config) for name in ("swa", "swa_lora"))
    train = suite_training(config)
    assert swa.train_stages == () and swa_lora.train_stages == ("stage1", "stage2")
    assert not needs_checkpoint(swa, train) and needs_checkpoint(swa_lora, train)
    model = tiny_llama(0)
    prepared = prepare_linearized(
        model, character_tokenizer(), model_name="tiny", method="swa", options={"window": 16},
        train=variant_training(swa, small_config()), corpus=pattern_corpus(), checkpoint_dir=tmp_path / "ckpt",
        log_dir=tmp_path / "logs", progress=False,
    )
    assert prepared.checkpoint_dir is None and not (tmp_path / "ckpt").exists()
    assert prepared.stages == {} and not lora_module_names(prepared.model)


@pytest.mark.parametrize("stages, message", [
    (["stage1"], "adds nothing"),
    (["stage3"], "must be a list of stage1, stage2"),
    ("stage2", "must be a list"),
])
def test_train_stages_that_cannot_be_trained_are_refused(stages, message):
    config = SuiteConfig(variants=["mine"], variant_options={
        "mine": {"method": "swa", "train_stages": stages}})
    with pytest.raises(ConfigError, match=message):
        resolve_variant("mine", config)


def test_the_default_suites_equal_memory_window_caches_what_lizard_plus_holds():
    """On SmolLM2's attention geometry (9 query heads over 3 KV heads of 64), after a context past both windows."""
    from lizard_bench.config import load_config
    from lizard_bench.efficiency import workloads

    options = load_config(REPO / "configs" / "default.yaml").variant_options["swa_equal_memory"]

    def state_bytes(method: str, **changes) -> int:
        model = tiny_llama(0, hidden_size=576, num_attention_heads=9, num_key_value_heads=3, num_hidden_layers=1,
                           max_position_embeddings=2048)
        linearize(model, method, **changes)
        context = workloads.context_ids(model.config.vocab_size, 1, 700, 0, torch.device("cpu"))
        return workloads.cache_size(workloads.prefill(model.eval(), context, 256)[0])

    assert options["method"] == "swa"
    assert state_bytes("swa", window=options["window"]) == state_bytes("lizard_plus")
    assert state_bytes("swa", window=options["window"] + 1) > state_bytes("lizard_plus")


def test_gate_half_lives_set_the_bias_and_are_reported_by_the_formula():
    from lizard_bench.linearize.gates import bias_for_half_life, half_life
    from lizard_bench.linearize.pipeline import describe_half_lives, gate_half_lives

    model = tiny_llama(0)
    linearize(model, "lizard_plus", gate_half_lives=[14.0, 10000.0])
    lives = gate_half_lives(model)
    assert set(lives) == {"0", "1"} and len(lives["0"]) == 4
    assert lives["0"][0] == pytest.approx(14.0, abs=0.05) and lives["0"][-1] == pytest.approx(10000.0, abs=0.05)
    bias = model.model.layers[0].self_attn.gate.proj.bias.detach().double()
    by_hand = [math.log(0.5) / math.log(1 / (1 + math.exp(-b))) for b in bias.tolist()]  # ln ½ / ln σ(b)
    assert lives["0"] == pytest.approx(by_hand, abs=0.05)
    assert half_life(bias_for_half_life(300.0)) == pytest.approx(300.0)
    assert describe_half_lives(lives).startswith("gate half-lives 14 / ")

    default = tiny_llama(0)
    linearize(default, "lizard")
    assert gate_half_lives(default)["0"][0] == pytest.approx(math.log(0.5) / math.log(1 / (1 + math.exp(-3.0))),
                                                            abs=0.05)
    assert gate_half_lives(swa_model(8, 4)) is None


@pytest.mark.parametrize("options", [{"gate": "mamba2"}, {"gate": "none"}, {"linear_branch": False, "num_sinks": 0}])
def test_gate_half_lives_on_a_gate_without_a_bias_are_refused(options):
    with pytest.raises(ValueError, match="gate_half_lives"):
        method_config("lizard_separate", gate_half_lives=[14, 1000], **options)
