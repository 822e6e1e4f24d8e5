"""lm-eval's model interface over one lizard-bench model variant (teacher or linearized).

One wrapper serves every variant, so tokenization, BOS handling, truncation and batching are
identical for all of them and a difference in scores can only come from the model.

Batching: requests are sorted by token length (longest first, so out-of-memory shows up at
once) and cut into batches of ``batch_size``, so neighbours differ little in length and
padding stays small. A batch of unequal lengths is padded on the left with an attention mask
and position ids that count real tokens only: every variant then computes for each real
token exactly what it computes unpadded (the kernels mask pad keys, a recurrent state
skips pad tokens; ``linearize/padding.py``), so scores do not depend on the batch size
beyond float32 rounding. A batch of equal lengths is sent unpadded and without a mask.

Generation: greedy by default; ``do_sample`` (with ``temperature``, ``top_p``, ``top_k``)
samples, reproducibly: each batch draws from its own generator state seeded from ``seed``
and the batch's number, without touching the global random state.

Tokenization and BOS: text is tokenized without special tokens, then the tokens the
tokenizer itself puts in front of a text (its BOS, for tokenizers that add one — the same
default lm-eval's Hugging Face model uses) are prepended once per sequence; ``add_bos_token``
forces this on or off. A context/continuation pair follows lm-eval's convention: trailing
whitespace of the context moves to the continuation, the pair is encoded as one string, and
the continuation is what follows the separately encoded context.

Truncation: a sequence longer than ``max_length`` loses context tokens from the left (after
the BOS), never continuation tokens. Unlike lm-eval's Hugging Face model, this is never
silent: each truncation is logged and counted in :attr:`truncation`, which the task copies
into its records.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from lm_eval.api.model import LM
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm.auto import tqdm
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

log = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 2048
SAMPLING_KEYS = ("do_sample", "temperature", "top_p", "top_k")
DEFAULT_SEED = 1234


@dataclass
class _Scored:
    """One sequence to score: ``tokens`` = context + continuation; the last ``n_scored`` are scored."""

    tokens: list[int]
    n_scored: int


class LizardLM(LM):
    """Scores and generates with a transformers causal LM for lm-eval, in length-sorted padded batches."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        device: torch.device | str,
        *,
        batch_size: int = 1,
        max_length: int | None = None,
        max_gen_toks: int = 256,
        add_bos_token: bool | None = None,
        name: str = "model",
        progress: bool = True,
        seed: int = DEFAULT_SEED,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self._device = torch.device(device)
        self.batch_size = batch_size
        self.max_length = max_length or _model_max_length(model, tokenizer)
        self.max_gen_toks = max_gen_toks
        self.name = name
        self.progress = progress
        self.seed = seed
        self.prefix_ids = self._prefix_tokens(add_bos_token)
        self.truncation: dict[str, Any] = {"requests": defaultdict(int), "max_tokens_dropped": 0}
        self._keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
        self._encode_cached = functools.lru_cache(maxsize=8192)(self._encode_uncached)

    @classmethod
    def from_handle(cls, handle: Any, **options: Any) -> LizardLM:
        """Wrap a :class:`lizard_bench.tasks.ModelHandle` (model, tokenizer and device of one variant)."""
        return cls(handle.model, handle.tokenizer, handle.device, name=f"{handle.model_name}/{handle.variant}",
                   **options)

    # ------------------------------------------------------------------ settings, for records
    def settings(self) -> dict[str, Any]:
        """What a reader needs to reproduce the scoring: recorded with every number."""
        return {
            "batch_size": self.batch_size,
            "max_length": self.max_length,
            "max_gen_toks": self.max_gen_toks,
            "prefix_token_ids": list(self.prefix_ids),
            "padding": "left, in length-sorted batches; position ids count real tokens",
            "seed": self.seed,
        }

    def truncation_summary(self) -> dict[str, Any]:
        return {"truncated_requests": dict(self.truncation["requests"]),
                "max_tokens_dropped": self.truncation["max_tokens_dropped"]}

    # ------------------------------------------------------------------ lm-eval interface
    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        before = self.truncation["requests"]["loglikelihood"]
        items = [self._fit(*self._encode_pair(*req.args), kind="loglikelihood") for req in requests]
        self._warn_truncated("loglikelihood", before, len(requests))
        results = self._score(items, desc="loglikelihood")
        for req, result in zip(requests, results, strict=True):
            self.cache_hook.add_partial("loglikelihood", req.args, result)
        return results

    def loglikelihood_rolling(self, requests: list[Any]) -> list[float]:
        """Whole-document log-likelihood in disjoint windows of ``max_length`` (lm-eval's rolling scheme)."""
        start = self.prefix_ids[-1] if self.prefix_ids else self._fallback_start_token()
        items: list[_Scored] = []
        owners: list[int] = []
        for index, req in enumerate(requests):
            windows = get_rolling_token_windows(self._encode(req.args[0]), start, self.max_length, 1)
            for context, continuation in map(make_disjoint_window, windows):
                items.append(_Scored(context + continuation, len(continuation)))
                owners.append(index)
        totals = [0.0] * len(requests)
        for owner, (logprob, _) in zip(owners, self._score(items, desc="loglikelihood_rolling"), strict=True):
            totals[owner] += logprob
        for req, total in zip(requests, totals, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    @torch.no_grad()
    def generate_until(self, requests: list[Any]) -> list[str]:
        """Decode until a stop string, EOS or ``max_gen_toks``; requests with equal settings share padded batches."""
        outputs: list[str | None] = [None] * len(requests)
        before = self.truncation["requests"]["generate_until"]
        groups: dict[str, list[int]] = defaultdict(list)
        prompts: list[list[int]] = []
        plans: list[_GenerationPlan] = []
        for index, req in enumerate(requests):
            context, gen_kwargs = req.args
            plan = self._generation_plan(gen_kwargs)
            room = self.max_length - plan.max_new
            if room < 1:
                raise ValueError(f"max_gen_toks={plan.max_new} leaves no room for context in "
                                 f"max_length={self.max_length}")
            prompts.append(self._truncate_left(self._context_ids(context), room, kind="generate_until"))
            plans.append(plan)
            groups[repr(plan)].append(index)
        progress = tqdm(total=len(requests), desc=f"generate_until {self.name}", disable=not self.progress)
        batch_number = 0
        for indices in groups.values():
            indices.sort(key=lambda i: -len(prompts[i]))
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start : start + self.batch_size]
                texts = self._generate([prompts[i] for i in batch], plans[batch[0]], batch_number)
                batch_number += 1
                for index, text in zip(batch, texts, strict=True):
                    outputs[index] = text
                    self.cache_hook.add_partial("generate_until", requests[index].args, text)
                progress.update(len(batch))
        progress.close()
        self._warn_truncated("generate_until", before, len(requests))
        return outputs  # type: ignore[return-value]

    # ------------------------------------------------------------------ tokenization
    def _encode_uncached(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _encode(self, text: str) -> list[int]:
        return list(self._encode_cached(text))

    def _prefix_tokens(self, add_bos_token: bool | None) -> list[int]:
        """The special tokens the tokenizer puts before a text (or BOS forced on/off)."""
        if add_bos_token is False:
            return []
        if add_bos_token:
            if self.tokenizer.bos_token_id is None:
                raise ValueError("add_bos_token=True but the tokenizer has no BOS token")
            return [self.tokenizer.bos_token_id]
        plain = list(self.tokenizer("a", add_special_tokens=False)["input_ids"])
        full = list(self.tokenizer("a")["input_ids"])
        for start in range(len(full) - len(plain) + 1):
            if full[start : start + len(plain)] == plain:
                return full[:start]
        return []

    def _fallback_start_token(self) -> int:
        """What an empty context starts with when the tokenizer adds no prefix: BOS, else EOS (as lm-eval)."""
        for token in (self.tokenizer.bos_token_id, self.tokenizer.eos_token_id):
            if token is not None:
                return token
        raise ValueError("the tokenizer has neither BOS nor EOS: cannot score a continuation without context")

    def _context_ids(self, context: str) -> list[int]:
        if not context:
            return list(self.prefix_ids) or [self._fallback_start_token()]
        return list(self.prefix_ids) + self._encode(context)

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        stripped = context.rstrip()
        if stripped != context:
            continuation = context[len(stripped):] + continuation
            context = stripped
        if not context:
            return self._context_ids(""), self._encode(continuation)
        context_tokens = self._encode(context)
        whole = self._encode(context + continuation)
        continuation_tokens = whole[len(context_tokens):] or self._encode(continuation)
        return list(self.prefix_ids) + context_tokens, continuation_tokens

    # ------------------------------------------------------------------ truncation
    def _fit(self, context: list[int], continuation: list[int], kind: str) -> _Scored:
        """Context + continuation cut to ``max_length`` inputs (+1 predicted token), context first."""
        if not continuation:
            return _Scored(context, 0)
        room = self.max_length + 1 - len(continuation)
        if room < 1:
            raise ValueError(
                f"a continuation of {len(continuation)} tokens does not fit max_length={self.max_length}"
            )
        return _Scored(self._truncate_left(context, room, kind) + continuation, len(continuation))

    def _truncate_left(self, context: list[int], room: int, kind: str) -> list[int]:
        """Keep the prefix (BOS) and the last tokens of the context so that ``room`` tokens remain; count it."""
        if len(context) <= room:
            return context
        keep_prefix = self.prefix_ids if self.prefix_ids and context[: len(self.prefix_ids)] == self.prefix_ids else []
        body_room = room - len(keep_prefix)
        if body_room < 1:
            keep_prefix, body_room = [], room
        body = context[len(keep_prefix):]
        dropped = len(body) - body_room
        self.truncation["requests"][kind] += 1
        self.truncation["max_tokens_dropped"] = max(self.truncation["max_tokens_dropped"], dropped)
        return keep_prefix + body[-body_room:]

    def _warn_truncated(self, kind: str, before: int, total: int) -> None:
        count = self.truncation["requests"][kind] - before
        if count:
            log.warning("%s: left-truncated the context of %d of %d %s requests to fit max_length=%d "
                        "(up to %d tokens dropped; counted in the records' details)", self.name, count, total, kind,
                        self.max_length, self.truncation["max_tokens_dropped"])

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def _score(self, items: list[_Scored], desc: str) -> list[tuple[float, bool]]:
        """(summed log-probability, greedy?) for each item, in order; batches of neighbouring lengths."""
        results: list[tuple[float, bool] | None] = [None] * len(items)
        pending = []
        for index, item in enumerate(items):
            if item.n_scored == 0:
                results[index] = (0.0, True)
            else:
                pending.append(index)
        pending.sort(key=lambda i: -len(items[i].tokens))  # longest first: out-of-memory shows up at once
        progress = tqdm(total=len(items), desc=f"{desc} {self.name}", disable=not self.progress)
        progress.update(len(items) - len(pending))
        for start in range(0, len(pending), self.batch_size):
            batch = pending[start : start + self.batch_size]
            for index, result in zip(batch, self._score_batch([items[i] for i in batch]), strict=True):
                results[index] = result
            progress.update(len(batch))
        progress.close()
        return results  # type: ignore[return-value]

    def _score_batch(self, batch: list[_Scored]) -> list[tuple[float, bool]]:
        inputs = _left_padded([item.tokens[:-1] for item in batch], self._pad_id(), self._device)
        keep = max(item.n_scored for item in batch)
        logprobs = torch.log_softmax(self._last_logits(inputs, keep).float(), dim=-1)
        scored: list[tuple[float, bool]] = []
        for row, item in enumerate(batch):
            rows = logprobs[row, keep - item.n_scored :]
            target = torch.tensor(item.tokens[-item.n_scored :], device=rows.device)
            total = rows.gather(-1, target[:, None]).sum().item()
            greedy = bool((rows.argmax(dim=-1) == target).all().item())
            scored.append((total, greedy))
        return scored

    def _last_logits(self, inputs: dict[str, torch.Tensor], keep: int) -> torch.Tensor:
        """Logits of the last ``keep`` positions (only those are computed when the model allows it)."""
        if self._keeps_logits:
            return self.model(**inputs, logits_to_keep=keep, use_cache=False).logits[:, -keep:]
        return self.model(**inputs, use_cache=False).logits[:, -keep:]

    def _pad_id(self) -> int:
        """What fills pad positions (never read: masked); the tokenizer's pad token, else EOS, else 0."""
        for token in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id):
            if token is not None:
                return token
        return 0

    # ------------------------------------------------------------------ generation
    def _generation_plan(self, gen_kwargs: dict[str, Any]) -> _GenerationPlan:
        """lm-eval's generation settings, checked: greedy unless ``do_sample`` or a temperature above 0."""
        settings = dict(gen_kwargs or {})
        until = settings.pop("until", None) or []
        until = [until] if isinstance(until, str) else list(until)
        max_new = int(settings.pop("max_gen_toks", self.max_gen_toks))
        unknown = sorted(set(settings) - set(SAMPLING_KEYS))
        if unknown:
            raise ValueError(f"unsupported generation settings {unknown} (supported: until, max_gen_toks, "
                             f"{', '.join(SAMPLING_KEYS)})")
        do_sample = settings.get("do_sample")
        temperature = float(settings.get("temperature") if settings.get("temperature") is not None
                            else (1.0 if do_sample else 0.0))
        do_sample = bool(do_sample) if do_sample is not None else temperature > 0.0
        if do_sample and temperature <= 0.0:
            raise ValueError(f"do_sample needs a temperature above 0, got {gen_kwargs!r}")
        sampling = (("temperature", temperature), ("top_p", float(settings.get("top_p") or 1.0)),
                    ("top_k", int(settings.get("top_k") or 0))) if do_sample else ()
        return _GenerationPlan(tuple(until), max_new, sampling)

    def _generate(self, prompts: list[list[int]], plan: _GenerationPlan, batch_number: int) -> list[str]:
        inputs = _left_padded(prompts, self._pad_id(), self._device)
        input_ids = inputs["input_ids"]
        mask = inputs.get("attention_mask", torch.ones_like(input_ids))
        eos = self.tokenizer.eos_token_id
        config = GenerationConfig(do_sample=bool(plan.sampling), num_beams=1, max_new_tokens=plan.max_new,
                                  eos_token_id=eos, pad_token_id=self._pad_id(), **dict(plan.sampling))
        until = list(plan.until)
        stop = StoppingCriteriaList([_StopOnText(self.tokenizer, until, input_ids.shape[1])]) if until else None
        devices = [self._device] if self._device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, enabled=bool(plan.sampling)):
            if plan.sampling:
                torch.manual_seed(self.seed + batch_number)
            output = self.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config,
                                         stopping_criteria=stop)
        texts = self.tokenizer.batch_decode(output[:, input_ids.shape[1]:], skip_special_tokens=True)
        return [_cut_at_stop(text, until) for text in texts]


@dataclass(frozen=True)
class _GenerationPlan:
    """One request's generation settings; requests with equal plans can share a batch."""

    until: tuple[str, ...]
    max_new: int
    sampling: tuple[tuple[str, float | int], ...]  # () = greedy


def _left_padded(rows: list[list[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Model inputs for ``rows``: unpadded when they are of one length, else left-padded with a mask and
    position ids counting real tokens (what transformers' generate computes, so scores match unpadded ones)."""
    length = max(map(len, rows))
    ids = torch.tensor([[pad_id] * (length - len(row)) + row for row in rows], device=device)
    if all(len(row) == length for row in rows):
        return {"input_ids": ids}
    mask = torch.tensor([[0] * (length - len(row)) + [1] * len(row) for row in rows], device=device)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": (mask.cumsum(dim=1) - 1).clamp_min(0)}


class _StopOnText(StoppingCriteria):
    """Stops generation once the decoded new text contains one of the stop strings."""

    def __init__(self, tokenizer: Any, until: list[str], prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.until = until
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length:], skip_special_tokens=True)
        done = [any(stop in text for stop in self.until) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _cut_at_stop(text: str, until: list[str]) -> str:
    cut = min((text.index(stop) for stop in until if stop and stop in text), default=len(text))
    return text[:cut]


def _model_max_length(model: torch.nn.Module, tokenizer: Any) -> int:
    """The model's trained context (max_position_embeddings), else the tokenizer's, else 2048."""
    config = getattr(model, "config", None)
    for value in (getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)):
        if isinstance(value, int) and 0 < value < 1_000_000:
            return value
    return DEFAULT_MAX_LENGTH
