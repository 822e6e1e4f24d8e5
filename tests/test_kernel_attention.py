"""The teacher through the shared kernels gives the same logits and generations as transformers' SDPA."""

import pytest
import torch

from lizard_bench.models.kernel_attention import use_kernel_attention
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


def test_padding_mask_is_refused_not_ignored(models):
    _, routed = models
    ids = torch.randint(2, 100, (2, 8))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    with pytest.raises(ValueError, match="attention mask with padding"):
        routed(input_ids=ids, attention_mask=mask)
