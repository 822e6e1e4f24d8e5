"""Long-context probes: prompt builders at exact token lengths, greedy answering, and scoring.

The task plugins in ``tasks/long_context.py`` are thin: they read options and hand over to
these builders (passkey, needle, associative recall) and to the windowed-NLL code
(length-extrapolation perplexity). Builders are pure functions of a tokenizer, options and
a seed, so prompts can be checked without a model.
"""

from lizard_bench.probes.assoc_recall import assoc_recall_prompts
from lizard_bench.probes.extrapolation import WindowPlan, plan_windows
from lizard_bench.probes.generation import Outcome, answer_prompts, greedy_continuation
from lizard_bench.probes.haystack import Filler, assemble, repeated_filler, text_filler
from lizard_bench.probes.needle import needle_prompts
from lizard_bench.probes.nll import token_nll
from lizard_bench.probes.passkey import passkey_prompts
from lizard_bench.probes.prompt import ProbePrompt, prompt_rng, trials_per_cell
from lizard_bench.probes.scoring import exact_match, first_number
from lizard_bench.probes.summary import accuracy_by, mean_stderr, point

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
