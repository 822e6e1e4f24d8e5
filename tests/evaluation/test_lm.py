"""The lm-eval wrapper scores exactly what the model computes, never pads, and truncates only visibly."""

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


@pytest.mark.parametrize("variant", VARIANTS)
def test_batches_never_contain_padding_or_masks(variant):
    model = tiny_variant(variant)
    spy = ForwardSpy(model)
    lm = LizardLM(model, TOKENIZER, "cpu", batch_size=4, progress=False)
    lm.loglikelihood([request("loglikelihood", c, x) for c, x in PAIRS])
    expected_rows = set()
    for context, continuation in PAIRS:
        context_ids, continuation_ids = lm._encode_pair(context, continuation)
        expected_rows.add(tuple((context_ids + continuation_ids)[:-1]))
    assert len(spy.calls) < len(PAIRS), "equal-length requests should share a forward pass"
    for input_ids, kwargs in spy.calls:
        assert kwargs.get("attention_mask") is None
        for row in input_ids.tolist():
            assert tuple(row) in expected_rows  # each row is one request exactly: nothing added, nothing shifted


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_models_refuse_padded_batches_which_is_why_the_wrapper_never_pads(variant):
    model = tiny_variant(variant)
    batch = torch.tensor([ids("abcd"), ids("xyzw")])
    with pytest.raises(ValueError, match="padding"):
        model(input_ids=batch, attention_mask=torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]]))


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


def test_generation_refuses_sampling_and_truncates_visibly():
    lm = LizardLM(tiny_variant("softmax"), TOKENIZER, "cpu", max_length=20, progress=False)
    with pytest.raises(ValueError, match="greedy"):
        lm.generate_until([request("generate_until", "hi", {"do_sample": True, "temperature": 0.7})])
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
