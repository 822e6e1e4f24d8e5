"""Attention reach: where each layer's attention weight lands by key distance, per variant.

A diagnostic beside the long-context probes: a linearized variant whose linear branch reaches
past its softmax window puts weight on keys at distance d >= w; the teacher's own softmax mass
beyond the same window shows how much there is to reach for. The arithmetic is in
:mod:`lizard_bench.long_context.reach`; this module picks the held-out windows and reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lizard_bench.tasks import MetricValue, ModelHandle, Task, TaskContext, register_task
from lizard_bench.typed_config import at_least

DEFAULT_WINDOW = 128  # Lizard's window: the teacher's bins when no option sets another
DEFAULT_ANCHORS = 4  # StreamingLLM's sink tokens, as lizard_plus and swa keep them


@dataclass(frozen=True)
class AttentionReachOptions:
    windows: int = field(default=2, metadata=at_least(1))  # held-out windows (capped by the suite's limit)
    length: int = field(default=1024, metadata=at_least(2))  # tokens per window
    # the bins of layers without a window of their own (the teacher, a hybrid's softmax layers, no_window);
    # a Lizard layer with a window always bins by its own w and num_anchors
    window: int = field(default=DEFAULT_WINDOW, metadata=at_least(1))
    anchors: int = field(default=DEFAULT_ANCHORS, metadata=at_least(0))


@register_task
class AttentionReach(Task):
    name = "attention_reach"
    label = "Attention reach"
    suite = "long_context"
    metrics = {"mass_beyond_window": "higher"}
    data_source = "the suite's corpus (default: CPython docs, embedded), held-out split"
    description = ("Share of each layer's attention weight on keys beyond the softmax window "
                   "(mean over layers), beside the window and the anchor tokens")
    Options = AttentionReachOptions

    def reads_corpus(self, options: AttentionReachOptions) -> bool:
        return True

    def run(self, handle: ModelHandle, context: TaskContext) -> list[MetricValue]:
        import torch

        from lizard_bench.long_context import reach
        from lizard_bench.long_context.prompt import trials_per_cell

        options = context.options(self)
        corpus = context.readable_corpus()
        stream = handle.tokenizer(corpus.text("heldout"), add_special_tokens=False)["input_ids"]
        count = min(trials_per_cell(options.windows, context.limit), len(stream) // options.length)
        base = {"corpus": corpus.name, "context_length": options.length, "heldout_tokens_available": len(stream)}
        if count < 1:
            return [MetricValue(metric="mass_beyond_window", value=None, status="unavailable", details=base,
                                reason=f"the held-out split of {corpus.name!r} has {len(stream)} tokens, "
                                       f"fewer than {options.length} (or the limit is 0)")]
        default = reach.Bins(options.window, options.anchors)
        per_window = []
        for n in range(count):
            ids = torch.tensor([stream[n * options.length:(n + 1) * options.length]], device=handle.device)
            per_window.append(reach.window_reach(handle.model, ids, default))
        rows = _window_rows(per_window, corpus.name, options.length)
        value = _summary(per_window, rows, {**base, "windows": count}, context.seed)
        if value.status == "ok":
            context.save_items(handle, self.name, rows)
        return [value]


def _window_rows(per_window: list, corpus: str, length: int) -> list[dict[str, Any]]:
    """One item per window: its mean over layers beyond the window, and each layer's."""
    from lizard_bench.long_context import reach

    return [{"item": f"{corpus}:tokens {n * length}+{length}", "weight": 1.0,
             "scores": {"mass_beyond_window": reach.mean_over_layers(layers, "beyond")},
             "layer_mass_beyond_window": [layer.mass.get("beyond") if layer.mass else None for layer in layers]}
            for n, layers in enumerate(per_window)]


def _summary(per_window: list, rows: list[dict[str, Any]], base: dict[str, Any], seed: int) -> MetricValue:
    """mass_beyond_window: the mean over layers, averaged over windows; per-layer bins in the details."""
    from lizard_bench.long_context import reach
    from lizard_bench.long_context.summary import item_value

    first = per_window[0]
    beyond = [reach.mean_over_layers(layers, "beyond") for layers in per_window]
    layers = []
    for index, layer in enumerate(first):
        entry: dict[str, Any] = {"layer": index, "kind": layer.kind, "window": layer.bins.window,
                                 "anchors": layer.bins.anchors}
        if layer.mass:
            for name in (*reach.BINS, "unassigned"):
                entry[f"mass_{name}"] = sum(w[index].mass[name] for w in per_window) / len(per_window)
        if layer.reason:
            entry["reason"] = layer.reason
        if layer.note:
            entry["note"] = layer.note
        layers.append(entry)
    details = {**base, "layers": layers, "window_mass_beyond_window": beyond,
               **{f"mass_{name}": _mean([reach.mean_over_layers(w, name) for w in per_window])
                  for name in ("within", "anchors", "unassigned")}}
    if any(value is None for value in beyond):
        reasons = sorted({layer.reason for layer in first if layer.reason})
        return MetricValue(metric="mass_beyond_window", value=None, status="unavailable", details=details,
                           reason="; ".join(reasons))
    return item_value("mass_beyond_window", rows, "mean", seed, details)


def _mean(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None

