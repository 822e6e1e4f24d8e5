"""Linearization methods as data: one preset per method, every field overridable.

Each method the paper reports (Lizard, the LoLCATs-style baseline, the ablations) is a
preset of the same few switches, so a config names a method with one key and an ablation
differs from Lizard in exactly the switch it ablates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from lizard_bench.typed_config import build, rule

AT_LEAST_ZERO = rule(lambda n: n >= 0, "must be >= 0")
# How the two branches combine (``combine``; see docs/design.md, "Combination"):
# - 'separate': ŷ = ŷ_gla + α ŷ_win, each branch normalised on its own (the paper's parallel form)
# - 'unnormalised': ŷ = s · q̃ᵀS + α ŷ_win, GLA without its denominator (the paper's recurrent and §4
#   form) and a learned per-head scale s so that it starts at a sensible size
# - 'convex': ŷ = ŷ_win + (sinks' share) · ŷ_gla; the meta-memory sinks' share of the window's
#   softmax goes to the normalised GLA, so a row's weights sum to 1
# - 'shared': LoLCATs-style, one normaliser over window scores and linear-attention scores


@dataclass
class LinearizeConfig:
    """Switches of one linearized attention layer (paper defaults, docs/design.md §2)."""

    method: str = "lizard"
    # total Hedgehog feature size: softmax(xW) ⊕ softmax(−xW), 64 each
    feature_dim: int = field(default=128, metadata=rule(lambda n: n >= 2 and not n % 2, "must be an even number >= 2"))
    # how log γ_i is computed; 'none' = no decay (plain linear attention)
    gate: Literal["sigmoid", "mamba2", "lowrank", "pooling", "none"] = "sigmoid"
    gate_rank: int = 16  # low-rank gate only
    gate_temperature: float = 16.0  # low-rank gate only: log γ = logsigmoid(·) / temperature (GLA)
    # softmax window w (the query's own token included); 0 = no window branch
    window: int = field(default=128, metadata=AT_LEAST_ZERO)
    num_sinks: int = field(default=4, metadata=AT_LEAST_ZERO)  # meta-memory logits m per head
    # starting value of every sink logit t_r, or 'teacher': per head, so that the sinks start with the
    # teacher's attention share outside the window (and anchors), from one teacher forward
    sink_init: float | Literal["teacher"] = 0.0
    # extension: sinks that carry a learned value u_r per head ('zeros': start at 0; 'teacher': start at
    # the teacher's mean value at position 0, where it puts most of its attention). 'none' is the paper's
    sink_values: Literal["none", "zeros", "teacher"] = "none"
    # extension: the first m real tokens stay visible to every query beside the window (a cache of
    # w + m tokens); they share the window's softmax normaliser
    num_anchors: int = field(default=0, metadata=AT_LEAST_ZERO)
    window_rope: bool = False  # paper form: no RoPE in the window branch (LoLCATs applies it)
    combine: Literal["separate", "unnormalised", "convex", "shared"] = "separate"
    gla_scale_init: float = 0.05  # 'unnormalised' only: starting value of the per-head scale s
    # sigmoid/pooling gate bias, spread over heads
    gate_bias: list[float] = field(default_factory=lambda: [3.0, 6.0], metadata=rule(
        lambda bias: len(bias) == 2, "must be two numbers [low, high]"))
    # the same, as the heads' starting memory half-lives in tokens [shortest, longest] (sigmoid/pooling gates,
    # before the input-dependent part); overrides gate_bias. [14, 10000] spans what gate_bias [3.0, 9.6] does
    gate_half_lives: list[float] | None = field(default=None, metadata=rule(
        lambda lives: lives is None or (len(lives) == 2 and 0 < lives[0] <= lives[1]),
        "must be two half-lives in tokens [shortest, longest], both > 0"))
    # Hedgehog W: 'identity' (when feature_dim / 2 = head_dim) or 'random'
    feature_init: Literal["identity", "random"] = "identity"
    linear_branch: bool = True  # off only for the exactness anchor test
    # α's starting value (not fixed by the paper). Each branch is a normalised average of values,
    # about the teacher's output in size, so α = 1 starts at ~2x the teacher's output: on SmolLM2 the
    # layer MSE at α = 1 (11.4) is worse than a zero output (6.8), and α, a per-head scalar, moves only
    # ~0.02 in a CPU-sized stage 1. 0.25 starts at MSE 3.7 and keeps the window branch contributing.
    alpha_init: float = 0.25
    eps: float = 1e-6
    softmax_layers: list[int] = field(default_factory=list)  # layers kept as softmax (hybrids)

    def to_dict(self) -> dict[str, Any]:
        """The switches as data; ``gate_half_lives`` only when set, so older checkpoints keep their fingerprint."""
        data = dataclasses.asdict(self)
        if data["gate_half_lives"] is None:
            del data["gate_half_lives"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearizeConfig:
        """The switches as data (a suite's options, a checkpoint's config.json), every value checked."""
        config = build(cls, data, noun="linearization option")
        config.validate()
        return config

    def validate(self) -> None:
        """The checks across switches (each switch's own type and range are checked by :meth:`from_dict`)."""
        if self.combine == "convex" and not (self.window and self.num_sinks and self.linear_branch):
            raise ValueError("combine 'convex' gives the sinks' share to the linear branch: it needs a window, "
                             "num_sinks >= 1 and the linear branch")
        if self.sink_values != "none" and (self.combine in ("convex", "shared") or not self.num_sinks):
            raise ValueError("sink_values need num_sinks >= 1 and combine 'separate' or 'unnormalised' "
                             "(under 'convex' the sinks' value is the linear branch)")
        if self.num_anchors and (self.combine == "shared" or not self.window):
            raise ValueError("num_anchors needs a window and a combine other than 'shared'")
        if self.combine == "unnormalised" and self.gla_scale_init <= 0:
            raise ValueError(f"gla_scale_init must be > 0, got {self.gla_scale_init}")
        if self.combine == "shared" and (self.window < 1 or not self.linear_branch):
            raise ValueError("a shared normaliser needs both a window (>= 1) and the linear branch")
        if self.gate_half_lives is not None and (self.gate not in ("sigmoid", "pooling") or not self.linear_branch):
            raise ValueError(f"gate_half_lives set the bias of the sigmoid and pooling gates; gate {self.gate!r}"
                             f"{'' if self.linear_branch else ' without the linear branch'} has none to set")
        if not self.linear_branch and self.window < 1:
            raise ValueError("with the linear branch off, a window is needed (otherwise the layer attends to nothing)")

    def gate_bias_range(self) -> tuple[float, float]:
        """The gate's starting bias range: ``gate_bias``, or the logits whose half-lives are ``gate_half_lives``."""
        if self.gate_half_lives is None:
            return tuple(self.gate_bias)
        from lizard_bench.linearize.gates import bias_for_half_life

        return tuple(bias_for_half_life(life) for life in self.gate_half_lives)

    def adds_parameters(self) -> bool:
        """Whether the layer has anything of its own to learn (stage 1 trains exactly this).

        The linear branch brings feature maps and a gate (and α or a scale); a window brings sink logits
        (and values). A window without sinks and without the linear branch (``swa``) brings nothing: it is
        the teacher's own attention, restricted.
        """
        return self.linear_branch or bool(self.window and self.num_sinks)


# Lizard as this project reads the paper: the 'convex' combination, the one of the three readings that
# measured best (held-out perplexity on the CPU budget: convex 99.9, separate 115.2, unnormalised 158.2;
# README, "Which reading of the paper"), with the sinks started at the teacher's distant share.
LIZARD: dict[str, Any] = {"combine": "convex", "sink_init": "teacher"}

# The training-free control: the teacher's own attention (its RoPE) over the last ``window`` tokens, the query's own
# token included, plus the first ``num_anchors`` tokens (StreamingLLM's sink tokens), w + m keys at most. Nothing is
# added, so stage 1 has nothing to train; ``swa`` skips stage 2 too (variants.py), ``swa_lora`` runs it.
SWA: dict[str, Any] = {"linear_branch": False, "num_sinks": 0, "window_rope": True, "num_anchors": 4,
                       "combine": "separate"}

METHOD_PRESETS: dict[str, dict[str, Any]] = {
    "lizard": LIZARD,
    # the three readings of the paper's combination, each its own ablation row (starting values are
    # choices: the paper gives none; docs/design.md, "Starting values")
    "lizard_separate": {"combine": "separate"},  # the first implementation's form (α 0.25, sinks at 0)
    "lizard_unnormalised": {"combine": "unnormalised", "alpha_init": 1.0, "gla_scale_init": 0.01,
                            "sink_init": "teacher"},
    "lizard_convex": LIZARD,  # = lizard, under the name of its reading
    # extension beyond the paper: RoPE in the window and the first 4 tokens kept as anchors
    "lizard_plus": {**LIZARD, "window_rope": True, "num_anchors": 4},
    # the controls: what a linearized variant must beat to show its linear branch remembers anything
    "swa": SWA,
    "swa_lora": SWA,  # the same layer with the suite's stage 2 (LoRA): the domain adaptation alone
    # Hedgehog linear attention over keys outside a sliding window, one normaliser, no gate, no sinks
    "lolcats": {"gate": "none", "window": 64, "num_sinks": 0, "combine": "shared", "window_rope": True},
    # the paper's ablations: Lizard with one part removed or swapped
    "no_window": {"window": 0, "num_sinks": 0},  # the normalised GLA alone
    "no_gate": {**LIZARD, "gate": "none"},
    "window_rope": {**LIZARD, "window_rope": True},  # extension: the teacher's RoPE in the window (as LoLCATs)
    "gate_mamba2": {**LIZARD, "gate": "mamba2"},
    "gate_lowrank": {**LIZARD, "gate": "lowrank"},
    "gate_pooling": {**LIZARD, "gate": "pooling"},
}
METHODS = tuple(METHOD_PRESETS)


def method_config(method: str = "lizard", **options: Any) -> LinearizeConfig:
    """The preset for ``method`` with ``options`` applied on top; unknown names and bad values are errors."""
    if method not in METHOD_PRESETS:
        raise ValueError(f"unknown linearization method {method!r}: choose one of {', '.join(METHODS)}")
    return LinearizeConfig.from_dict({**METHOD_PRESETS[method], **options, "method": method})
