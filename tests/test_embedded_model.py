"""Integration: the embedded SmolLM2 teacher loads offline and scores the embedded corpus sensibly."""

import pytest
import torch

from lizard_bench.models import load_model
from lizard_bench.models.kernel_attention import use_kernel_attention
from lizard_bench.models.locate import ModelNotFoundError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    try:
        return load_model("smollm2-135m", device="cpu")
    except ModelNotFoundError as exc:  # the README's setup installs it; say so rather than fail obscurely
        pytest.fail(f"embedded model missing: {exc}")


def test_architecture_is_the_documented_one(smollm2):
    config = smollm2.model.config
    assert (config.num_hidden_layers, config.hidden_size) == (30, 576)
    assert (config.num_attention_heads, config.num_key_value_heads) == (9, 3)


def test_kernel_path_matches_sdpa_and_predicts_python_docs(smollm2):
    from pydoc_data.topics import topics

    text = topics["for"][:2000]
    ids = smollm2.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"][:, :256]
    model = smollm2.model
    with torch.no_grad():
        model.set_attn_implementation("sdpa")
        expected = model(input_ids=ids).logits
        use_kernel_attention(model, "torch")
        actual = model(input_ids=ids).logits
    torch.testing.assert_close(actual, expected, atol=2e-4, rtol=1e-4)
    loss = torch.nn.functional.cross_entropy(actual[0, :-1], ids[0, 1:]).item()
    # A trained 135M model reads Python's docs far better than chance (ln 49152 ≈ 10.8 nats).
    assert loss < 4.0, loss


def test_the_dequantized_teacher_saves_as_an_ordinary_model_directory(smollm2, tmp_path):
    import json

    from transformers import AutoModelForCausalLM

    smollm2.model.save_pretrained(tmp_path)  # refused while the model still carried its GGUF quantizer
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    saved, loaded = smollm2.model.state_dict(), reloaded.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[name], loaded[name]) for name in saved)


def test_a_second_load_reads_the_converted_copy_and_gives_the_same_model(smollm2):
    from pathlib import Path

    from lizard_bench.models import gguf_cache

    copy = gguf_cache.find(Path(smollm2.source.location))
    assert copy is not None  # the fixture's load (the session's first) converted the file and kept the copy
    again = load_model("smollm2-135m", device="cpu")
    first, second = smollm2.model.state_dict(), again.model.state_dict()
    assert first.keys() == second.keys() and all(torch.equal(first[name], second[name]) for name in first)
    text = "The pass key is 48213. <|im_start|>user\nWhat is it?<|im_end|>"
    assert again.tokenizer(text).input_ids == smollm2.tokenizer(text).input_ids
    assert again.tokenizer.all_special_tokens == smollm2.tokenizer.all_special_tokens
    assert again.model.name_or_path == smollm2.model.name_or_path  # named after the file, not the copy


def test_weights_loaded_from_the_copy_are_in_anonymous_memory_not_mapped_from_the_file(smollm2):
    import gc
    from pathlib import Path

    from lizard_bench.models import gguf_cache

    maps = Path("/proc/self/maps")
    if not maps.is_file():
        pytest.skip("needs Linux /proc")
    again = load_model("smollm2-135m", device="cpu")
    gc.collect()
    weights_file = str(gguf_cache.find(Path(smollm2.source.location)) / "model.safetensors")
    # the memory probe subtracts the RSS after load: mapped weights would be counted later, during a prefill
    assert weights_file not in maps.read_text()
    assert torch.equal(again.model.lm_head.weight, smollm2.model.lm_head.weight)  # the copies hold the same values
