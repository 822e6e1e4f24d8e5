"""The teacher through the shared kernels gives the same logits and generations as transformers' SDPA."""

import pytest
import torch

from lizard_bench.models.kernel_attention import use_kernel_attention
from lizard_bench.models.masks import key_padding
from tests.tiny_models import tiny_llama


@pytest.fixture
def models():
    reference = tiny_llama(seed=3)
    routed = tiny_llama(seed=3)
    use_kernel_attention(routed, "torch")
    return reference, routed


def test_logits_match_sdpa(models):
    reference, routed = models
    ids = torch.randint(2, 100, (2, 37), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(input_ids=ids).logits
        actual = routed(input_ids=ids).logits
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_cached_generation_matches_sdpa(models):
    reference, routed = models
    prompt = torch.randint(2, 100, (1, 11), generator=torch.Generator().manual_seed(1))
    settings = dict(max_new_tokens=12, do_sample=False, pad_token_id=1)
    assert torch.equal(routed.generate(prompt, **settings), reference.generate(prompt, **settings))


@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_batch_matches_sdpa(models, side):
    """Padding reaches the kernels as a key mask: the same logits as transformers' SDPA on every real token."""
    reference, routed = models
    ids = torch.randint(2, 100, (2, 12), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    if side == "left":
        mask[0, :5] = 0
    else:
        mask[0, 7:] = 0
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).logits
        actual = routed(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    torch.testing.assert_close(actual[real], expected[real], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(actual).all()


def test_key_padding_reads_2d_and_4d_masks():
    padding = torch.tensor([[0, 1, 1], [1, 1, 1]])
    assert torch.equal(key_padding(padding, 3), padding.bool())
    assert key_padding(torch.ones(2, 3), 3) is None
    causal = torch.tril(torch.ones(3, 3, dtype=torch.bool))
    four_d = (causal[None, None] & padding.bool()[:, None, None, :])
    assert torch.equal(key_padding(four_d, 3), padding.bool())
    additive = torch.zeros(2, 1, 3, 3).masked_fill(~four_d, torch.finfo(torch.float32).min)
    assert torch.equal(key_padding(additive, 3), padding.bool())


def test_masks_beyond_padding_are_refused():
    """A sliding window (or packed documents) cannot be expressed by a key mask: refused, never dropped."""
    window = torch.tril(torch.ones(4, 4, dtype=torch.bool)) & ~torch.tril(torch.ones(4, 4, dtype=torch.bool), -2)
    with pytest.raises(ValueError, match="more than causal plus padding"):
        key_padding(window[None, None], 4)
