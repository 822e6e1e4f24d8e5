"""The lm-eval wrapper scores exactly what the model computes, in padded batches as at batch 1, and truncates only
visibly."""

from __future__ import annotations

import pytest
import torch
from lm_eval.api.instance import Instance
from tokenizers import decoders

from lizard_bench.evaluation.lm import LizardLM
from tests.evaluation.conftest import VARIANTS, tiny_variant
from tests.tiny_models import character_tokenizer

TOKENIZER = character_tokenizer()
TOKENIZER.backend_tokenizer.decoder = decoders.Fuse()  # decode characters back without separators


def request(kind: str, *args) -> Instance:
    return Instance(request_type=kind, doc={}, arguments=tuple(args), idx=0)


def ids(text: str) -> list[int]:
    return TOKENIZER(text, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def direct_logprob(model, context_ids: list[int], continuation_ids: list[int]) -> tuple[float, bool]:
    """Sum of log p(continuation | context) from one plain forward pass over the whole sequence."""
    sequence = torch.tensor([context_ids + continuation_ids])
    logprobs = torch.log_softmax(model(input_ids=sequence).logits[0].float(), dim=-1)
    positions = range(len(context_ids) - 1, len(context_ids) + len(continuation_ids) - 1)
    picked = [logprobs[p, t] for p, t in zip(positions, continuation_ids, strict=True)]
    greedy = all(logprobs[p].argmax().item() == t for p, t in zip(positions, continuation_ids, strict=True))
    return float(sum(picked)), greedy


class ForwardSpy:
    """Wraps ``model.forward`` to record every batch the wrapper sends."""

    def __init__(self, model) -> None:
        self.calls: list[tuple[torch.Tensor, dict]] = []
        self._forward = model.forward
        model.forward = self

    def __call__(self, *args, **kwargs):
        self.calls.append((kwargs["input_ids"].clone(), {k: v for k, v in kwargs.items() if k != "input_ids"}))
        return self._forward(*args, **kwargs)


PAIRS = [
    ("Question: is ice cold?\nAnswer:", " yes"),
    ("Question: is ice cold?\nAnswer:", " no"),
    ("The sky is ", "blue."),  # trailing space moves to the continuation
    ("", "An empty context starts from the start token."),
    ("abc", " def"),
    ("xyz", " uvw"),  # same length as the previous pair: batched together
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("add_bos", [None, True])
def test_loglikelihood_equals_direct_computation_from_logits(variant, add_bos):
    model = tiny_variant(variant)
    lm = LizardLM(model, TOKENIZER, "cpu", batch_size=3, add_bos_token=add_bos, progress=False)
    results = lm.loglikelihood([request("loglikelihood", c, x) for c, x in PAIRS])
    bos = [TOKENIZER.bos_token_id] if add_bos else []
    for (context, continuation), (logprob, greedy) in zip(PAIRS, results, strict=True):
        stripped = context.rstrip()
        moved = context[len(stripped):] + continuation
        start = (bos + ids(stripped)) if stripped else (bos or [TOKENIZER.bos_token_id])
        expected, expected_greedy = direct_logprob(model, start, ids(moved))
        assert logprob == pytest.approx(expected, abs=1e-4)
        assert greedy == expected_greedy


def test_greedy_flag_is_true_for_the_models_own_argmax_continuation():
    model = tiny_variant("softmax")
    lm = LizardLM(model, TOKENIZER, "cpu", progress=False)
    context = ids("Once upon a time")
    with torch.no_grad():
        sequence = torch.tensor([context])
        for _ in range(3):
            sequence = torch.cat([sequence, model(input_ids=sequence).logits[:, -1:].argmax(-1)], dim=1)
    greedy_text = TOKENIZER.decode(sequence[0, len(context):])
    assert ids(greedy_text) == sequence[0, len(context):].tolist()
    [(_, greedy)] = lm.loglikelihood([request("loglikelihood", "Once upon a time", greedy_text)])
    assert greedy


MIXED = PAIRS + [("A much longer context, so that batches need padding:", " yes"), ("Hi", " there, friend"),
                 ("Question: is fire hot?\nAnswer:", " yes")]


@pytest.mark.parametrize("variant", VARIANTS)
def test_length_sorted_padded_batches_score_as_batch_one(variant):
    """Batch 4 over mixed lengths (left-padded) gives batch 1's numbers: |Δ loglik| <= 1e-5, same greedy flags."""
    model = tiny_variant(variant)
    requests = [request("loglikelihood", c, x) for c, x in MIXED]
    alone = LizardLM(model, TOKENIZER, "cpu", batch_size=1, progress=False).loglikelihood(requests)
    spy = ForwardSpy(model)
    batched = LizardLM(model, TOKENIZER, "cpu", batch_size=4, progress=False).loglikelihood(requests)
    assert len(spy.calls) == -(-sum(1 for _, x in MIXED if x) // 4)
    assert any("attention_mask" in kwargs for _, kwargs in spy.calls), "mixed lengths should need padding"
    for (logprob, greedy), (expected, expected_greedy) in zip(batched, alone, strict=True):
        assert logprob == pytest.approx(expected, abs=1e-5)
        assert greedy == expected_greedy


def test_batches_are_sorted_by_length_and_padded_on_the_left():
    model = tiny_variant("lizard")
    spy = ForwardSpy(model)
    lm = LizardLM(model, TOKENIZER, "cpu", batch_size=3, progress=False)
    lm.loglikelihood([request("loglikelihood", c, x) for c, x in MIXED])
    rows = {tuple((c + x)[:-1]) for c, x in (lm._encode_pair(*pair) for pair in MIXED)}
    longest = [int(input_ids.shape[1]) for input_ids, _ in spy.calls]
    assert longest == sorted(longest, reverse=True)
    for input_ids, kwargs in spy.calls:
        mask = kwargs.get("attention_mask")
        if mask is None:
            assert "position_ids" not in kwargs
            mask = torch.ones_like(input_ids)
        else:
            assert torch.equal(kwargs["position_ids"], (mask.cumsum(1) - 1).clamp_min(0))
        for row, row_mask in zip(input_ids.tolist(), mask.tolist(), strict=True):
            pads = row_mask.index(1)
            assert row_mask == [0] * pads + [1] * (len(row) - pads)  # left padding only
            assert tuple(row[pads:]) in rows  # each row is one request exactly


def test_long_contexts_are_truncated_from_the_left_and_counted():
    model = tiny_variant("softmax")
    lm = LizardLM(model, TOKENIZER, "cpu", max_length=16, add_bos_token=True, progress=False)
    context, continuation = "a fairly long context that does not fit", " end"
    [(logprob, _)] = lm.loglikelihood([request("loglikelihood", context, continuation)])
    # BOS kept, then the last context tokens, so that inputs (all tokens but the last) are max_length long
    cont = ids(continuation)
    kept = 16 + 1 - len(cont) - 1
    expected, _ = direct_logprob(model, [TOKENIZER.bos_token_id] + ids(context)[-kept:], cont)
    assert logprob == pytest.approx(expected, abs=1e-4)
    summary = lm.truncation_summary()
    assert summary["truncated_requests"] == {"loglikelihood": 1}
    assert summary["max_tokens_dropped"] == len(ids(context)) - kept


def test_a_continuation_longer_than_max_length_is_an_error_not_a_silent_cut():
    lm = LizardLM(tiny_variant("softmax"), TOKENIZER, "cpu", max_length=8, progress=False)
    with pytest.raises(ValueError, match="does not fit max_length=8"):
        lm.loglikelihood([request("loglikelihood", "ctx", " a continuation of many tokens")])


@pytest.mark.parametrize("variant", VARIANTS)
def test_generate_until_is_greedy_and_stops_at_stop_strings(variant):
    model = tiny_variant(variant)
    lm = LizardLM(model, TOKENIZER, "cpu", progress=False)
    prompt = "Q: name a colour.\nA:"
    with torch.no_grad():
        sequence = torch.tensor([ids(prompt)])
        for _ in range(12):
            sequence = torch.cat([sequence, model(input_ids=sequence).logits[:, -1:].argmax(-1)], dim=1)
    reference = TOKENIZER.decode(sequence[0, len(ids(prompt)):], skip_special_tokens=True)
    [free] = lm.generate_until([request("generate_until", prompt, {"until": [], "max_gen_toks": 12})])
    assert free == reference
    stop = reference[5:7]
    [stopped] = lm.generate_until([request("generate_until", prompt, {"until": [stop], "max_gen_toks": 12})])
    assert stopped == reference[: reference.index(stop)]


PROMPTS = ["Q: name a colour.\nA:", "Hi", "A longer prompt than the others, for padding:", "xyz"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_batched_greedy_generation_equals_batch_one(variant):
    model = tiny_variant(variant)
    requests = [request("generate_until", p, {"until": ["."], "max_gen_toks": 10}) for p in PROMPTS]
    requests.append(request("generate_until", "abc", {"until": [], "max_gen_toks": 6}))  # its own settings group
    alone = LizardLM(model, TOKENIZER, "cpu", batch_size=1, progress=False).generate_until(requests)
    batched = LizardLM(model, TOKENIZER, "cpu", batch_size=4, progress=False).generate_until(requests)
    assert batched == alone


def test_sampling_is_reproducible_with_a_seed():
    model = tiny_variant("lizard")
    settings = {"until": [], "max_gen_toks": 12, "do_sample": True, "temperature": 1.5, "top_p": 0.95, "top_k": 40}
    requests = [request("generate_until", p, settings) for p in PROMPTS]

    def sample(seed: int) -> list[str]:
        return LizardLM(model, TOKENIZER, "cpu", batch_size=2, seed=seed, progress=False).generate_until(requests)

    torch.manual_seed(0)
    first = sample(7)
    after = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(1))  # sampling left the global random state alone
    assert sample(7) == first
    assert sample(8) != first
    greedy = LizardLM(model, TOKENIZER, "cpu", progress=False).generate_until(
        [request("generate_until", p, {"until": [], "max_gen_toks": 12}) for p in PROMPTS])
    assert first != greedy


def test_generation_settings_are_checked_and_truncation_is_visible():
    lm = LizardLM(tiny_variant("softmax"), TOKENIZER, "cpu", max_length=20, progress=False)
    with pytest.raises(ValueError, match="temperature above 0"):
        lm.generate_until([request("generate_until", "hi", {"do_sample": True, "temperature": 0.0})])
    with pytest.raises(ValueError, match="unsupported generation settings"):
        lm.generate_until([request("generate_until", "hi", {"num_beams": 4})])
    [text] = lm.generate_until([request("generate_until", "x" * 40, {"until": ["\n"], "max_gen_toks": 5})])
    assert len(text) <= 5
    assert lm.truncation_summary()["truncated_requests"] == {"generate_until": 1}


def test_loglikelihood_rolling_scores_every_token_once():
    model = tiny_variant("softmax")
    lm = LizardLM(model, TOKENIZER, "cpu", progress=False)
    text = "Rolling windows score each token exactly once."
    [total] = lm.loglikelihood_rolling([request("loglikelihood_rolling", text)])
    expected, _ = direct_logprob(model, [TOKENIZER.bos_token_id], ids(text))
    assert total == pytest.approx(expected, abs=1e-4)
    short = LizardLM(model, TOKENIZER, "cpu", max_length=8, progress=False)
    [windowed] = short.loglikelihood_rolling([request("loglikelihood_rolling", text)])
    assert windowed < 0 and windowed != pytest.approx(expected, abs=1e-3)  # less context per token, still finite


def test_lm_evals_own_hf_model_generates_in_padded_batches():
    """lm-eval's HFLM pads generation batches on the left: a linearized model now serves it at batch 2 as at 1."""
    from lm_eval.models.huggingface import HFLM

    model = tiny_variant("lizard")
    requests = [request("generate_until", p, {"until": ["."], "max_gen_toks": 8, "do_sample": False})
                for p in PROMPTS]
    outputs = {size: HFLM(pretrained=model, tokenizer=TOKENIZER, batch_size=size, max_length=128,
                          device="cpu").generate_until(requests) for size in (1, 2)}
    assert outputs[2] == outputs[1]
