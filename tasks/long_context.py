"""Long-context probes: passkey retrieval, needle in a haystack, associative recall, length extrapolation.

The paper's long-context claim is that Lizard keeps retrieving a passkey far past its
training length while a LoLCATs-style hybrid fails beyond its window. These tasks measure
that and its neighbours on any model, offline: prompts are built at exact token lengths
(configurable up to 32K and beyond) from a seed, answered greedily one at a time, and
scored by :mod:`lizard_bench.long_context.scoring`. Prompt building and scoring live in
:mod:`lizard_bench.long_context`; this module only reads options and reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tqdm.auto import tqdm

from lizard_bench import long_context as probes  # names load on first use: listing tasks stays fast
from lizard_bench.tasks import MetricValue, ModelHandle, Task, TaskContext, TaskUnavailable, register_task
from lizard_bench.typed_config import at_least, distinct, rule

if TYPE_CHECKING:
    from lizard_bench.long_context import Filler, Outcome, WindowPlan
    from lizard_bench.long_context.summary import Grouping

DEFAULT_LENGTHS = [1024, 2048, 4096, 8192]
DEFAULT_DEPTHS = [0.0, 0.25, 0.5, 0.75, 1.0]


@dataclass(frozen=True)
class GridOptions:
    """What every length × depth retrieval probe takes."""

    lengths: list[int] = field(default_factory=lambda: list(DEFAULT_LENGTHS), metadata=distinct(1))
    depths: list[float] = field(default_factory=lambda: list(DEFAULT_DEPTHS), metadata=distinct(0, 1))  # 0.5: middle
    trials: int = field(default=5, metadata=at_least(1))  # prompts per (length, depth) cell
    max_new_tokens: int = field(default=12, metadata=at_least(1))


@dataclass(frozen=True)
class PasskeyOptions(GridOptions):
    # passkey length in tokens of the model's tokenizer, inclusive range
    key_tokens: tuple[int, int] = field(default=(5, 8), metadata=rule(
        lambda pair: 1 <= pair[0] <= pair[1], "must be [low, high] with 1 <= low <= high"))
    filler: Literal["repeat", "corpus"] = "repeat"  # 'repeat': 'The grass is green. ...' cycled; 'corpus': held-out
    # passkeys starting within this many tokens of the prompt's end count as 'within the window';
    # null: the variant's own softmax window (128 for the teacher, Lizard's default)
    window: int | None = field(default=None, metadata=at_least(1))


@dataclass(frozen=True)
class NeedleOptions(GridOptions):
    number_digits: int = field(default=7, metadata=at_least(1))
    # read in order, wrapping around when a context is longer
    haystack_splits: list[Literal["heldout", "train"]] = field(default_factory=lambda: ["heldout"],
                                                                metadata=distinct())


@dataclass(frozen=True)
class AssocRecallOptions:
    pairs: list[int] = field(default_factory=lambda: [4, 16, 64], metadata=distinct(1))
    # empty: the pairs alone; otherwise pairs spread evenly through filler to each length
    lengths: list[int] = field(default_factory=list, metadata=distinct(1, empty=True))
    trials: int = field(default=10, metadata=at_least(1))
    value_digits: int = field(default=4, metadata=at_least(1))
    max_new_tokens: int = field(default=8, metadata=at_least(1))


DEFAULT_REFERENCE_LENGTH = 512


@dataclass(frozen=True)
class LengthExtrapolationOptions:
    lengths: list[int] = field(default_factory=lambda: [512, 1024, 2048, 4096, 8192], metadata=distinct(2))
    # tokens scored at the end of every window; null scores all but the first
    tail_tokens: int | None = field(default=256, metadata=at_least(1))
    windows: int = field(default=4, metadata=at_least(1))  # per length (capped by the suite's limit and the text)
    # context_gain@L compares each other length with this one on the same targets; must be one
    # of the lengths, except that the default (512) means the shortest when 512 is not swept
    reference_length: int = DEFAULT_REFERENCE_LENGTH

    def __post_init__(self) -> None:
        if self.reference_length != DEFAULT_REFERENCE_LENGTH and self.reference_length not in self.lengths:
            raise ValueError(f"reference_length must be one of the lengths {self.lengths}, "
                             f"got {self.reference_length}")

    @property
    def reference(self) -> int:
        """The length every context gain is measured against."""
        return self.reference_length if self.reference_length in self.lengths else min(self.lengths)


@register_task
class Passkey(Task):
    name = "passkey"
    label = "Passkey"
    suite = "long_context"
    metrics = {"exact_match": "higher", "exact_match_within_window": "higher", "exact_match_beyond_window": "higher"}
    data_source = "generated (repeated filler sentences, or the suite's held-out corpus text); no download"
    description = "Retrieve a 5-8 token passkey hidden at several depths in contexts of several lengths"
    Options = PasskeyOptions

    def reads_corpus(self, options: PasskeyOptions) -> bool:
        return options.filler == "corpus"

    def run(self, handle: ModelHandle, context: TaskContext) -> list[MetricValue]:
        options = context.options(self)
        filler = (probes.repeated_filler(handle.tokenizer) if options.filler == "repeat"
                  else _corpus_filler(handle, context, ["heldout"]))
        prompts = probes.passkey_prompts(
            handle.tokenizer, filler, lengths=options.lengths, depths=options.depths,
            trials=probes.trials_per_cell(options.trials, context.limit), seed=context.seed,
            key_tokens=options.key_tokens,
        )
        outcomes = probes.answer_prompts(handle, prompts, desc=self.name, max_new_tokens=options.max_new_tokens)
        groupings = [*_length_depth_grid({"filler": filler.source}),
                     _window_split(options.window or _variant_window(handle))]
        return _scored(self.name, handle, context, outcomes, groupings)


@register_task
class Needle(Task):
    name = "needle"
    label = "Needle"
    suite = "long_context"
    metrics = {"exact_match": "higher"}
    data_source = "the suite's corpus (default: CPython docs, embedded) as haystack, held-out split"
    description = "Find a 'special magic number' sentence at several depths of corpus text of several lengths"
    Options = NeedleOptions

    def reads_corpus(self, options: NeedleOptions) -> bool:
        return True

    def run(self, handle: ModelHandle, context: TaskContext) -> list[MetricValue]:
        options = context.options(self)
        haystack = _corpus_filler(handle, context, options.haystack_splits)
        prompts = probes.needle_prompts(
            handle.tokenizer, haystack, lengths=options.lengths, depths=options.depths,
            trials=probes.trials_per_cell(options.trials, context.limit), seed=context.seed,
            number_digits=options.number_digits,
        )
        outcomes = probes.answer_prompts(handle, prompts, desc=self.name, max_new_tokens=options.max_new_tokens)
        groupings = _length_depth_grid({"haystack": haystack.source, "haystack_tokens": haystack.total_tokens})
        return _scored(self.name, handle, context, outcomes, groupings)


@register_task
class AssocRecall(Task):
    name = "assoc_recall"
    label = "Associative recall"
    suite = "long_context"
    metrics = {"exact_match": "higher"}
    data_source = "generated key-value pairs; no download"
    description = "Recall the value of one key among many 'key: value' lines, per number of pairs (and length)"
    Options = AssocRecallOptions

    def run(self, handle: ModelHandle, context: TaskContext) -> list[MetricValue]:
        options = context.options(self)
        prompts = probes.assoc_recall_prompts(
            handle.tokenizer, probes.repeated_filler(handle.tokenizer), pairs=options.pairs,
            lengths=options.lengths or [None], trials=probes.trials_per_cell(options.trials, context.limit),
            seed=context.seed, value_digits=options.value_digits,
        )
        outcomes = probes.answer_prompts(handle, prompts, desc=self.name, max_new_tokens=options.max_new_tokens)

        def per_pairs(o: Outcome) -> tuple[str, dict[str, Any]]:
            pairs, _ = o.prompt.cell
            return f"exact_match@{pairs}pairs", {"pairs": pairs}

        def per_cell(o: Outcome) -> tuple[str, dict[str, Any]] | None:
            pairs, length = o.prompt.cell
            if length is None:
                return None  # the same group as per_pairs
            return f"exact_match@{length}:{pairs}pairs", {"pairs": pairs, "context_length": length}

        return _scored(self.name, handle, context, outcomes, [lambda o: ("exact_match", {}), per_pairs, per_cell])


@register_task
class LengthExtrapolation(Task):
    name = "length_extrapolation"
    label = "Length extrapolation"
    suite = "long_context"
    # context_gain first: the headline, since it answers whether context beyond the reference was used
    metrics = {"context_gain": "lower", "perplexity": "lower"}
    data_source = "the suite's corpus (default: CPython docs, embedded), held-out split"
    description = ("Held-out perplexity of the same final tokens read with longer and longer context, "
                   "and its paired ratio to the reference length")
    Options = LengthExtrapolationOptions

    def reads_corpus(self, options: LengthExtrapolationOptions) -> bool:
        return True

    def run(self, handle: ModelHandle, context: TaskContext) -> list[MetricValue]:
        options = context.options(self)
        windows = probes.trials_per_cell(options.windows, context.limit)
        corpus = context.readable_corpus()
        stream = handle.tokenizer(corpus.text("heldout"), add_special_tokens=False)["input_ids"]
        plan = probes.plan_windows(len(stream), options.lengths, options.tail_tokens, windows)
        fitting = [length for length in options.lengths if length <= len(stream)]
        progress = tqdm(total=len(plan.ends) * len(fitting), unit="win",
                        desc=f"{self.name} {handle.model_name}/{handle.variant}")
        scored = {length: _window_token_nll(handle, stream, plan, length, progress) for length in fitting}
        progress.close()
        held_out = _HeldOut(corpus.name, len(stream))
        rows = _window_rows(scored, plan, options.reference, held_out)
        context.save_items(handle, self.name, rows)
        others = [length for length in options.lengths if length != options.reference]
        return [*(_perplexity(length, rows, scored, plan, held_out, context.seed) for length in options.lengths),
                *(_context_gain(length, options.reference, rows, scored, held_out, context.seed)
                  for length in others)]


@dataclass(frozen=True)
class _HeldOut:
    """The text the windows come from: named in every record, and why a length did not fit."""

    corpus: str
    tokens: int

    def details(self, length: int) -> dict[str, Any]:
        return {"context_length": length, "corpus": self.corpus, "heldout_tokens_available": self.tokens}

    def shortfall(self, length: int) -> str:
        return f"the held-out split of {self.corpus!r} has {self.tokens} tokens, fewer than {length}"


def _window_token_nll(handle: ModelHandle, stream: list[int], plan: WindowPlan, length: int,
                      progress: tqdm) -> list[list[float]]:
    """Per-target NLLs of every planned window read with ``length`` tokens of context: kept per
    token so that lengths can be compared on the same targets (``context_gain``)."""
    import torch

    windows = []
    for end in plan.ends:
        start, stop = plan.window(end, length)
        ids = torch.tensor([stream[start:stop]], device=handle.device)
        windows.append(probes.token_nll(handle.model, ids, plan.scored(length))[0].tolist())
        progress.update(1)
    return windows


def _window_rows(scored: dict[int, list[list[float]]], plan: WindowPlan, reference: int,
                 held_out: _HeldOut) -> list[dict[str, Any]]:
    """One item per window: its per-target NLL at every length, its mean NLL per length (perplexity@L) and
    its mean paired NLL difference to the reference (context_gain@L). Windows, not tokens, are the items:
    the tokens of one window share their context and are not independent."""
    rows = []
    for index, end in enumerate(plan.ends):
        nll = {length: windows[index] for length, windows in scored.items()}
        scores = {probes.point("perplexity", length): sum(v) / len(v) for length, v in nll.items()}
        if reference in nll:
            for length in nll:
                if length != reference:
                    gain = probes.context_gain([nll[length]], [nll[reference]])
                    scores[probes.point("context_gain", length)] = gain.mean_nll_difference
        rows.append({"item": f"{held_out.corpus}:window ending at {end}", "scores": scores, "weight": 1.0,
                     "window_end": end, "targets": {str(length): len(v) for length, v in nll.items()},
                     "token_nll": {str(length): [round(x, 6) for x in v] for length, v in nll.items()}})
    return rows


def _perplexity(length: int, rows: list[dict[str, Any]], scored: dict[int, list[list[float]]], plan: WindowPlan,
                held_out: _HeldOut, seed: int) -> MetricValue:
    """perplexity@L over the window means, windows as the independent items."""
    if length not in scored:
        return MetricValue(metric=probes.point("perplexity", length), value=None, status="unavailable",
                           details=held_out.details(length), reason=held_out.shortfall(length))
    details = {**held_out.details(length), "windows": len(plan.ends), "scored_tokens_per_window": plan.scored(length),
               "window_ends": plan.ends}
    value = probes.item_value(probes.point("perplexity", length), rows, "exp_mean", seed, details)
    value.details["nll"] = math.log(value.value)
    return value


def _context_gain(length: int, reference: int, rows: list[dict[str, Any]], scored: dict[int, list[list[float]]],
                  held_out: _HeldOut, seed: int) -> MetricValue:
    """context_gain@L = ppl(L)/ppl(reference) on the shared targets; unavailable when either did not fit.

    Its interval is a bootstrap over windows; the per-token standard error (tokens as if
    independent, narrower) is kept in the details beside it."""
    details = {**held_out.details(length), "reference_length": reference}
    missing = next((n for n in (length, reference) if n not in scored), None)
    if missing is not None:
        which = "" if missing == length else " (the reference length)"
        return MetricValue(metric=probes.point("context_gain", length), value=None, status="unavailable",
                           details=details, reason=held_out.shortfall(missing) + which)
    gain = probes.context_gain(scored[length], scored[reference])
    return probes.item_value(probes.point("context_gain", length), rows, "exp_mean", seed,
                             {**details, **gain.details()})


def _scored(task: str, handle: ModelHandle, context: TaskContext, outcomes: list[Outcome],
            groupings: list[Grouping]) -> list[MetricValue]:
    """The groupings' accuracies; every prompt's outcome kept beside the run's records."""
    values, rows = probes.score_outcomes(outcomes, groupings, item_prefix=f"seed {context.seed}")
    context.save_items(handle, task, rows)
    return values


def _length_depth_grid(extra: dict[str, Any]) -> list[Grouping]:
    """Overall, per-length and per-(length, depth) exact match, named ``exact_match[@L[:d]]``."""

    def per_length(o: Outcome) -> tuple[str, dict[str, Any]]:
        length, _ = o.prompt.cell
        return probes.point("exact_match", length), {"context_length": length}

    def per_cell(o: Outcome) -> tuple[str, dict[str, Any]]:
        length, depth = o.prompt.cell
        return probes.point("exact_match", length, depth), {"context_length": length, "depth": depth}

    return [lambda o: ("exact_match", dict(extra)), per_length, per_cell]


DEFAULT_SPLIT_WINDOW = 128  # Lizard's window: the split the teacher's passkeys are reported with


def _variant_window(handle: ModelHandle) -> int:
    """The variant's own softmax window: what separates 'within the window' from 'beyond it' by default."""
    lizard = getattr(getattr(handle.model, "config", None), "lizard", None) or {}
    return int(lizard.get("window") or DEFAULT_SPLIT_WINDOW)


def _window_split(window: int) -> Grouping:
    """Exact match per length for passkeys inside the last ``window`` tokens and for those beyond.

    A passkey inside the window is a test of the exact softmax branch; one beyond it can only be
    retrieved through the linear branch (or anchors), which is the long-context claim.
    """

    def split(o: Outcome) -> tuple[str, dict[str, Any]]:
        distance = o.prompt.details["prompt_tokens"] - o.prompt.details["needle_position"]
        where = "within_window" if distance <= window else "beyond_window"
        length, _ = o.prompt.cell
        return probes.point(f"exact_match_{where}", length), {"context_length": length, "window": window}

    return split



def _corpus_filler(handle: ModelHandle, context: TaskContext, splits: list[str]) -> Filler:
    corpus = context.readable_corpus()
    text = "\n\n".join(corpus.text(split) for split in splits)
    if not text.strip():
        raise TaskUnavailable(f"the {'+'.join(splits)} split of corpus {corpus.name!r} is empty")
    return probes.text_filler(handle.tokenizer, text, source=f"{corpus.name}:{'+'.join(splits)}")
