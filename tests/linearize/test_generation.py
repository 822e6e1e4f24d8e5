"""Decoding with the constant-size cache equals recomputation, and the cache does not grow."""

import pytest
import torch
from transformers import DynamicCache

from lizard_bench.linearize import cache_bytes, linearize
from tests.tiny_models import tiny_llama

METHODS_TO_DECODE = ["lizard", "lolcats", "no_window", "window_rope", "gate_mamba2", "gate_pooling"]


def trained_looking(method: str, **options):
    """A linearized tiny model with non-trivial added parameters (random, as if trained)."""
    model = tiny_llama(seed=11)
    linearize(model, method, window=6, **options)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


@pytest.mark.parametrize("method", METHODS_TO_DECODE)
def test_greedy_generation_equals_step_by_step_recomputation(method):
    model = trained_looking(method)
    prompt = torch.randint(2, 90, (1, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        generated = model.generate(prompt, max_new_tokens=16, do_sample=False, pad_token_id=1)
        sequence = prompt
        for _ in range(16):
            next_token = model(input_ids=sequence).logits[:, -1].argmax(-1, keepdim=True)
            sequence = torch.cat([sequence, next_token], dim=1)
    assert torch.equal(generated, sequence)


@pytest.mark.parametrize("method", ["lizard", "lolcats"])
def test_chunked_prefill_with_cache_equals_one_shot(method):
    model = trained_looking(method)
    ids = torch.randint(2, 90, (2, 23), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        cache = DynamicCache()
        pieces = [model(input_ids=ids[:, a:b], cache=cache, use_cache=True).logits
                  for a, b in ((0, 4), (4, 5), (5, 17), (17, 23))]
    torch.testing.assert_close(torch.cat(pieces, dim=1), expected, atol=1e-5, rtol=1e-4)


def test_cache_size_is_constant_in_context_length():
    model = trained_looking("lizard")
    sizes = {}
    for length in (8, 40, 120):
        cache = DynamicCache()
        with torch.no_grad():
            model(input_ids=torch.randint(2, 90, (1, length)), cache=cache, use_cache=True)
        sizes[length] = cache_bytes(cache)
    assert sizes[8] == sizes[40] == sizes[120] > 0
    teacher_sizes = []
    for length in (8, 40):
        cache = DynamicCache()
        with torch.no_grad():
            tiny_llama()(input_ids=torch.randint(2, 90, (1, length)), cache=cache, use_cache=True)
        teacher_sizes.append(cache_bytes(cache))
    assert teacher_sizes[1] == 5 * teacher_sizes[0], "the softmax teacher's cache grows linearly"
