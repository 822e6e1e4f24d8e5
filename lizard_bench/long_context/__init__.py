"""Long-context probes: prompt builders at exact token lengths, greedy answering, and scoring.

The task plugins in ``tasks/long_context.py`` are thin: they read options and hand over to
these builders (passkey, needle, associative recall) and to the windowed-NLL code
(length-extrapolation perplexity and its paired context gain). Builders are pure functions of
a tokenizer, options and a seed, so prompts can be checked without a model. Names are
imported on first use (the modules pull in torch), so a task plugin that imports this
package stays cheap to list.
"""

from lizard_bench.lazy import lazy_attributes

_EXPORTS = {
    "ContextGain": "paired",
    "Filler": "haystack",
    "Outcome": "generation",
    "ProbePrompt": "prompt",
    "WindowPlan": "extrapolation",
    "accuracy_by": "summary",
    "answer_prompts": "generation",
    "assemble": "haystack",
    "assoc_recall_prompts": "assoc_recall",
    "context_gain": "paired",
    "exact_match": "scoring",
    "first_number": "scoring",
    "greedy_continuation": "generation",
    "item_value": "summary",
    "mean_stderr": "summary",
    "needle_prompts": "needle",
    "passkey_prompts": "passkey",
    "plan_windows": "extrapolation",
    "point": "summary",
    "prompt_rng": "prompt",
    "repeated_filler": "haystack",
    "score_outcomes": "summary",
    "text_filler": "haystack",
    "token_nll": "nll",
    "trials_per_cell": "prompt",
    "wilson_interval": "summary",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_attributes(__name__, _EXPORTS)
