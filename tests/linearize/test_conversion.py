"""Conversion of a tiny random Llama (2 layers, GQA) for every method, and the exactness anchor."""

import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from lizard_bench.linearize import (
    METHODS,
    LizardAttention,
    UnsupportedModelError,
    linearize,
    lizard_parameters,
)
from tests.tiny_models import tiny_llama

HIDDEN, HEADS, KV_HEADS, HEAD_DIM = 64, 4, 2, 16


def expected_added_parameters(method: str, feature_dim: int = 128, sinks: int = 4) -> int:
    """Per layer, from the method's definition (docs/design.md §2), independently of the implementation."""
    if method in ("swa", "swa_lora"):  # the teacher's own attention, restricted: nothing added
        return 0
    feature_maps = 2 * HEADS * HEAD_DIM * (feature_dim // 2)
    gates = {
        "sigmoid": HIDDEN * HEADS + HEADS,
        "none": 0,
        "mamba2": HIDDEN * HEADS + 2 * HEADS,
        "lowrank": HIDDEN * 16 + 16 * HEADS + HEADS,
        "pooling": 2 * HEADS,
    }
    gate = {"lolcats": "none", "no_gate": "none", "gate_mamba2": "mamba2", "gate_lowrank": "lowrank",
            "gate_pooling": "pooling"}.get(method, "sigmoid")
    has_window = method != "no_window"
    sink_count = HEADS * sinks if has_window and method != "lolcats" else 0
    # α weighs the window only in the 'separate' and 'unnormalised' readings; 'convex' (lizard) has none
    alpha = HEADS if method in ("lizard_separate", "lizard_unnormalised") else 0
    gla_scale = HEADS if method == "lizard_unnormalised" else 0
    return feature_maps + gates[gate] + sink_count + alpha + gla_scale


@pytest.mark.parametrize("method", METHODS)
def test_every_method_converts_with_expected_shapes_and_trainable_set(method):
    model = tiny_llama()
    teacher_count = sum(p.numel() for p in model.parameters())
    linearize(model, method)
    modules = [layer.self_attn for layer in model.model.layers]
    assert all(isinstance(m, LizardAttention) for m in modules)
    added = lizard_parameters(model)
    assert sum(p.numel() for p in added.values()) == 2 * expected_added_parameters(method)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(added), "only what linearization added is trainable"
    assert sum(p.numel() for p in model.parameters()) == teacher_count + sum(p.numel() for p in added.values())
    ids = torch.randint(2, 90, (2, 19))
    logits = model(input_ids=ids).logits
    assert logits.shape == (2, 19, model.config.vocab_size) and torch.isfinite(logits).all()
    if added:
        logits.sum().backward()
        assert all(p.grad is not None for p in added.values())


def test_softmax_layers_stay_teacher():
    model = tiny_llama()
    teacher_attention = model.model.layers[1].self_attn
    linearize(model, "lizard", softmax_layers=[1])
    assert isinstance(model.model.layers[0].self_attn, LizardAttention)
    assert model.model.layers[1].self_attn is teacher_attention
    assert all(name.startswith("model.layers.0.") for name in lizard_parameters(model))


def test_exactness_anchor_reproduces_teacher_logits():
    """Linear branch off, α = 1, no sinks, RoPE in the window and w >= T: exactly softmax attention."""
    teacher = tiny_llama(seed=5)
    student = tiny_llama(seed=5)
    linearize(student, "lizard_separate", linear_branch=False, num_sinks=0, window_rope=True, window=64)
    ids = torch.randint(2, 90, (2, 50), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(student(input_ids=ids).logits, teacher(input_ids=ids).logits,
                                   atol=1e-5, rtol=1e-5)


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="unknown linearization method"):
        linearize(tiny_llama(), "mamba")
    with pytest.raises(ValueError, match="unknown linearization option"):
        linearize(tiny_llama(), "lizard", windw=3)
    with pytest.raises(ValueError, match="out of range"):
        linearize(tiny_llama(), "lizard", softmax_layers=[7])
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50, bos_token_id=0, eos_token_id=0))
    with pytest.raises(UnsupportedModelError, match="cannot linearize 'gpt2'"):
        linearize(gpt2, "lizard")
    model = tiny_llama()
    linearize(model, "lizard")
    with pytest.raises(ValueError, match="already linearized"):
        linearize(model, "lizard")


def test_teacher_weights_are_shared_not_copied():
    model = tiny_llama()
    q_proj = model.model.layers[0].self_attn.q_proj
    linearize(model, "lizard")
    assert model.model.layers[0].self_attn.base.q_proj is q_proj
    assert isinstance(q_proj, nn.Linear) and not q_proj.weight.requires_grad


def test_every_method_is_described_for_lizard_bench_list():
    from lizard_bench.models.descriptions import describe_variants

    descriptions = describe_variants()
    assert set(METHODS) <= set(descriptions)
    extensions = {"lizard_plus", "window_rope"}  # beyond the paper: their descriptions must say so
    assert all(descriptions[name].startswith("extension") for name in extensions)
