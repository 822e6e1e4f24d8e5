"""Padded batches give every real token what it gets unpadded, in every variant, forward and decode.

Each variant is a tiny random Llama whose added parameters are pushed away from their
starting values, so that gates, sinks, α and feature maps all matter. Sequences of mixed
lengths (one shorter than the window, one shorter than the anchors) are batched with left
or right padding; positions are those of the real tokens (as transformers' generate
computes them). Tolerance: float32, |Δ| <= 1e-5 absolute + 1e-4 relative on logits
(measured: at most 4e-7).
"""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache, pipeline

from lizard_bench.models.kernel_attention import use_kernel_attention
from tests.tiny_models import character_tokenizer, linearized_tiny_llama, tiny_llama

WINDOW = 5
VARIANTS = {
    "teacher-kernels": ("teacher", {}),
    "lizard": ("lizard", {}),
    "separate": ("lizard_separate", {}),
    "unnormalised": ("lizard_unnormalised", {}),
    "shared-lolcats": ("lolcats", {}),
    "lizard_plus": ("lizard_plus", {"num_anchors": 3}),
    "anchors-valued-sinks": ("lizard_separate", {"sink_values": "zeros", "num_anchors": 3}),
    "window_rope": ("window_rope", {}),
    "no_window": ("no_window", {}),
    "hybrid": ("lizard", {"softmax_layers": [0]}),
}
LENGTHS = (13, 2, 18)
ATOL, RTOL = 1e-5, 1e-4


def variant(name: str) -> torch.nn.Module:
    method, options = VARIANTS[name]
    if method == "teacher":
        model = tiny_llama(seed=11)
        use_kernel_attention(model, "torch")
        return model
    return linearized_tiny_llama(method, seed=11, window=WINDOW, **options)


def sequences(seed: int = 0) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(2, 90, (n,), generator=generator).tolist() for n in LENGTHS]


def padded(rows: list[list[int]], side: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, position_ids) with pad id 1 on ``side``; positions count real tokens."""
    length = max(map(len, rows))
    ids = torch.ones(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for index, row in enumerate(rows):
        span = slice(length - len(row), length) if side == "left" else slice(0, len(row))
        ids[index, span] = torch.tensor(row)
        mask[index, span] = 1
    return ids, mask, (mask.cumsum(dim=1) - 1).clamp_min(0)


@pytest.fixture(scope="module", params=list(VARIANTS))
def model(request):
    return variant(request.param)


@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_logits_equal_unpadded(model, side):
    rows = sequences()
    ids, mask, positions = padded(rows, side)
    with torch.no_grad():
        batch = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        for index, row in enumerate(rows):
            alone = model(input_ids=torch.tensor([row])).logits[0]
            torch.testing.assert_close(batch[index][mask[index].bool()], alone, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("side", ["left", "right"])
def test_decode_after_padded_prefill_equals_unpadded_forward(model, side):
    """Prefill a padded batch into the cache, then decode token by token (after the pads, for right padding)."""
    rows, steps = sequences(1), 6
    ids, mask, positions = padded(rows, side)
    extra = torch.randint(2, 90, (len(rows), steps), generator=torch.Generator().manual_seed(5))
    cache = DynamicCache()
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
        decoded = []
        for step in range(steps):
            mask = torch.cat([mask, torch.ones(len(rows), 1, dtype=torch.long)], dim=1)
            position = (mask.sum(dim=1, keepdim=True) - 1)
            decoded.append(model(input_ids=extra[:, step : step + 1], attention_mask=mask, position_ids=position,
                                 cache=cache, use_cache=True).logits)
        decoded = torch.cat(decoded, dim=1)
        for index, row in enumerate(rows):
            full = model(input_ids=torch.tensor([row + extra[index].tolist()])).logits[0, len(row):]
            torch.testing.assert_close(decoded[index], full, atol=ATOL, rtol=RTOL)


def test_generate_left_padded_batch_equals_one_by_one(model):
    rows = sequences(2)
    ids, mask, _ = padded(rows, "left")
    settings = dict(max_new_tokens=12, do_sample=False, pad_token_id=1)
    with torch.no_grad():
        batch = model.generate(ids, attention_mask=mask, **settings)[:, ids.shape[1]:]
        for index, row in enumerate(rows):
            alone = model.generate(torch.tensor([row]), **settings)[0, len(row):]
            assert torch.equal(batch[index], alone), index


def test_padding_changes_the_result_when_the_mask_is_dropped():
    """The control: without its mask the same left-padded batch scores differently, so the tests above can fail."""
    model = variant("lizard")
    rows = sequences()
    ids, mask, positions = padded(rows, "left")
    with torch.no_grad():
        masked = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        unmasked = model(input_ids=ids, position_ids=positions).logits
    real = mask.bool()
    assert (masked[real] - unmasked[real]).abs().max() > 1e-2


def test_text_generation_pipeline_batch_of_two():
    model = variant("lizard")
    tokenizer = character_tokenizer()
    tokenizer.padding_side = "left"
    generate = pipeline("text-generation", model=model, tokenizer=tokenizer, device="cpu")
    prompts = ["the quick brown fox", "abc"]
    settings = dict(max_new_tokens=8, do_sample=False, return_full_text=False)
    batched = generate(prompts, batch_size=2, **settings)
    alone = [generate(prompt, **settings) for prompt in prompts]
    assert [out[0]["generated_text"] for out in batched] == [out[0]["generated_text"] for out in alone]
