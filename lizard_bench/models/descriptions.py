"""The built-in variants' names and one-line descriptions, importable without torch (``lizard-bench list variants``).

A description says which form is a reading of the paper, which an ablation and which an
extension (docs/design.md §2); :mod:`lizard_bench.linearize.config` holds their settings.
"""

from __future__ import annotations

TEACHER = "softmax"
DESCRIPTIONS = {
    TEACHER: "the pretrained teacher: causal softmax attention through the shared kernels",
    "lizard": "Lizard as read from the paper: gated linear attention + 128-token window (no RoPE) with 4 sinks, "
              "'convex' combination (the sinks' share goes to the linear branch)",
    "lizard_separate": "reading of the paper: normalised GLA + α × normalised window (the first implementation)",
    "lizard_unnormalised": "reading of the paper: GLA without its denominator (scaled) + α × window",
    "lizard_convex": "reading of the paper: the 'convex' combination (= lizard)",
    "lizard_plus": "extension: lizard + the teacher's RoPE in the window + the first 4 tokens as anchors",
    "swa": "control: the teacher's attention over the last 128 tokens + the first 4 (sink tokens); nothing trained",
    "swa_lora": "control: swa + the suite's stage 2 (LoRA), the domain adaptation alone",
    "lolcats": "LoLCATs-style: Hedgehog linear attention + sliding window under one normaliser, no gate",
    "no_window": "ablation: the normalised GLA alone (no window branch)",
    "no_gate": "ablation: lizard without the gate (plain linear attention + window)",
    "window_rope": "extension: lizard with the teacher's RoPE in the window branch (LoLCATs' form)",
    "gate_mamba2": "ablation: lizard with a Mamba-2 style gate",
    "gate_lowrank": "ablation: lizard with a GLA-style low-rank gate",
    "gate_pooling": "ablation: lizard with a 1-D pooling gate",
}


def describe_variants() -> dict[str, str]:
    return dict(DESCRIPTIONS)
