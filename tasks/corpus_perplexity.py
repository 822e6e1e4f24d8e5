"""Held-out perplexity on the suite's corpus (the embedded Python docs by default).

The held-out text is tokenized once, cut into non-overlapping windows of ``seq_len`` tokens,
and every token after the first of each window is scored. Windows are independent (no
carried state), so teacher and linearized variants see identical inputs.
"""

from __future__ import annotations

import math

from tqdm.auto import tqdm

from lizard_bench import long_context as probes  # names load on first use: listing tasks stays fast
from lizard_bench.tasks import MetricValue, ModelHandle, Task, TaskContext, register_task


@register_task
class CorpusPerplexity(Task):
    name = "corpus_perplexity"
    label = "Corpus"
    suite = "language_modeling"
    metrics = {"perplexity": "lower", "nll": "lower"}
    data_source = "the suite's corpus, held-out split (default: CPython docs, embedded)"
    description = "Held-out token perplexity in non-overlapping windows of perplexity.seq_len tokens"

    def reads_corpus(self, options: object) -> bool:
        return True

    def run(self, handle: ModelHandle, context: TaskContext) -> list[MetricValue]:
        budget = context.config.perplexity
        corpus = context.corpus()
        token_ids = handle.tokenizer(corpus.text("heldout"), add_special_tokens=False)["input_ids"]
        windows = _windows(token_ids, budget.seq_len, budget.max_tokens, context.limit)
        if not windows:
            raise ValueError(f"held-out split of {corpus.name!r} has fewer than {budget.seq_len} tokens")
        window_nll = _score_windows(handle, windows, budget.batch_size)
        scored_per_window = budget.seq_len - 1
        rows = [{"item": f"{corpus.name}:tokens {index * budget.seq_len}+{budget.seq_len}",
                 "scores": dict.fromkeys(("perplexity", "nll"), total / scored_per_window),
                 "weight": float(scored_per_window), "start_token": index * budget.seq_len,
                 "tokens": scored_per_window, "nll_sum": total}
                for index, total in enumerate(window_nll)]
        context.save_items(handle, self.name, rows)
        details = {
            "corpus": corpus.name,
            "seq_len": budget.seq_len,
            "windows": len(windows),
            "scored_tokens": len(windows) * scored_per_window,
            "heldout_tokens_available": len(token_ids),
        }
        # windows as the independent items, resampled by the bootstrap; tokens of one window are not independent
        return [probes.item_value("perplexity", rows, "exp_mean", context.seed, details),
                probes.item_value("nll", rows, "mean", context.seed, details)]


def _windows(token_ids: list[int], seq_len: int, max_tokens: int, limit: int | None) -> list[list[int]]:
    count = min(len(token_ids), max_tokens) // seq_len
    if limit is not None:
        count = min(count, limit)
    return [token_ids[i * seq_len : (i + 1) * seq_len] for i in range(count)]


def _score_windows(handle: ModelHandle, windows: list[list[int]], batch_size: int) -> list[float]:
    """Summed next-token NLL per window (nats)."""
    import torch

    totals: list[float] = []
    progress = tqdm(total=len(windows), desc=f"perplexity {handle.model_name}/{handle.variant}", unit="win")
    for start in range(0, len(windows), batch_size):
        batch = torch.tensor(windows[start : start + batch_size], device=handle.device)
        with torch.no_grad():
            totals.extend(probes.token_nll(handle.model, batch).sum(dim=1).tolist())
        progress.update(batch.shape[0])
        progress.set_postfix(ppl=f"{math.exp(sum(totals) / (len(totals) * (batch.shape[1] - 1))):.3f}")
    progress.close()
    return totals
