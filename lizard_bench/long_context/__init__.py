"""Long-context probes: prompt builders at exact token lengths, greedy answering, and scoring.

The task plugins in ``tasks/long_context.py`` are thin: they read options and hand over to
these builders (passkey, needle, associative recall) and to the windowed-NLL code
(length-extrapolation perplexity). Builders are pure functions of a tokenizer, options and
a seed, so prompts can be checked without a model.
"""

from lizard_bench.long_context.assoc_recall import assoc_recall_prompts
from lizard_bench.long_context.extrapolation import WindowPlan, plan_windows
from lizard_bench.long_context.generation import Outcome, answer_prompts, greedy_continuation
from lizard_bench.long_context.haystack import Filler, assemble, repeated_filler, text_filler
from lizard_bench.long_context.needle import needle_prompts
from lizard_bench.long_context.nll import token_nll
from lizard_bench.long_context.passkey import passkey_prompts
from lizard_bench.long_context.prompt import ProbePrompt, prompt_rng, trials_per_cell
from lizard_bench.long_context.scoring import exact_match, first_number
from lizard_bench.long_context.summary import accuracy_by, mean_stderr, point

__all__ = [
    "Filler",
    "Outcome",
    "ProbePrompt",
    "WindowPlan",
    "accuracy_by",
    "answer_prompts",
    "assemble",
    "assoc_recall_prompts",
    "exact_match",
    "first_number",
    "greedy_continuation",
    "mean_stderr",
    "needle_prompts",
    "passkey_prompts",
    "plan_windows",
    "point",
    "prompt_rng",
    "repeated_filler",
    "text_filler",
    "token_nll",
    "trials_per_cell",
]
