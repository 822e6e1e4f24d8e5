"""FIXTURE run directories with synthetic numbers, for testing reports without running models.

Nothing here was measured. The values are made up to exercise every view: the paper's six
tasks and a SuperGLUE task for three variants of a model the paper reports (so the paper
comparison has rows to match), perplexity, prefill/decode/memory sweeps where the teacher
runs out of memory at the longest context, passkey and needle grids, failed records of each
kind, and linearization training logs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from lizard_bench.results import Record, RunStore
from lizard_bench.results.store import safe_name
from lizard_bench.tasks import get_task

FIXTURE_MODEL = "unsloth/Llama-3.2-1B"  # maps to the paper's Llama-3.2-1B rows
VARIANTS = ("softmax", "lizard", "lolcats")
LENGTHS = (512, 1024, 2048, 4096, 8192)
PROBE_LENGTHS = (1024, 2048, 4096, 8192)
DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)

# Synthetic accuracies (fractions) per variant, task -> {metric: value}.
ACCURACY = {
    "softmax": {"piqa": 0.741, "arc_easy": 0.654, "arc_challenge": 0.364, "hellaswag": 0.638, "winogrande": 0.600,
                "mmlu": 0.310, "boolq": 0.640},
    "lizard": {"piqa": 0.748, "arc_easy": 0.656, "arc_challenge": 0.365, "hellaswag": 0.641, "winogrande": 0.597,
               "mmlu": 0.298, "boolq": 0.652},
    "lolcats": {"piqa": 0.746, "arc_easy": 0.630, "arc_challenge": 0.351, "hellaswag": 0.637, "winogrande": 0.615,
                "mmlu": None, "boolq": 0.611},
}
PERPLEXITY = {"softmax": 11.5, "lizard": 12.9, "lolcats": 13.6}

PROVENANCE = {
    "git_commit": "0123456789abcdef0123456789abcdef01234567",
    "versions": {"lizard_bench": "0.1.0", "torch": "2.13.0+cpu", "transformers": "5.24.0"},
    "python": "3.11.7",
    "device": "cpu",
    "device_name": "cpu (fixture)",
    "kernel_backend": "torch",
    "seed": 0,
    "config_hash": "fixture000000000",
    "started": "2026-01-02T03:04:05+00:00",
    "ended": "2026-01-02T03:05:05+00:00",
    "wall_time_s": 60.0,
}


def record(variant: str, task: str, metric: str, value: float | None, *, status: str = "ok",
           direction: str = "higher", stderr: float | None = None, details: dict | None = None,
           model: str = FIXTURE_MODEL) -> Record:
    declared = get_task(task)  # label and headline as the runner records them
    return Record(model=model, variant=variant, task=task, metric=metric, value=value, status=status,
                  direction=direction, task_label=declared.label,
                  headline=metric.split("@")[0] == declared.headline_metric, stderr=stderr, details=details or {},
                  reason=None if status == "ok" else f"fixture: {status}", provenance=dict(PROVENANCE))


def fixture_records(variant: str) -> dict[str, list[Record]]:
    """All synthetic records of one variant, grouped by task."""
    units: dict[str, list[Record]] = {}
    for task, value in ACCURACY[variant].items():
        if value is None:
            units[task] = [record(variant, task, "acc", None, status="error")]
            continue
        if task in ("arc_challenge", "hellaswag"):  # the paper reports acc_norm for these
            units[task] = [record(variant, task, "acc", value - 0.012, stderr=0.011),
                           record(variant, task, "acc_norm", value, stderr=0.011)]
        else:
            units[task] = [record(variant, task, "acc", value, stderr=0.011)]
    ppl = PERPLEXITY[variant]
    units["corpus_perplexity"] = [
        record(variant, "corpus_perplexity", "perplexity", ppl, direction="lower", stderr=0.6),
        record(variant, "corpus_perplexity", "nll", math.log(ppl), direction="lower", stderr=0.05),
    ]
    units["prefill"], units["decode"], units["memory"] = [], [], []
    for length in LENGTHS:
        details = {"context_length": length, "batch_size": 1}
        teacher = variant == "softmax"
        if teacher and length == LENGTHS[-1]:
            for task, metric in (("prefill", "tokens_per_s"), ("decode", "tokens_per_s"),
                                 ("memory", "peak_memory_bytes")):
                units[task].append(record(variant, task, f"{metric}@{length}", None, status="oom",
                                          direction="lower" if metric.endswith("bytes") else "higher",
                                          details=details))
            continue
        prefill = 9000.0 / (1 + length / 4096) if teacher else {"lizard": 7000.0, "lolcats": 7600.0}[variant]
        decode = 60.0 / (1 + length / 2048) if teacher else {"lizard": 48.0, "lolcats": 52.0}[variant]
        units["prefill"].append(record(variant, "prefill", f"tokens_per_s@{length}", prefill,
                                       details={**details, "min": 0.95 * prefill, "max": 1.05 * prefill}))
        units["decode"].append(record(variant, "decode", f"tokens_per_s@{length}", decode,
                                      details={**details, "min": 0.9 * decode, "max": 1.1 * decode}))
        units["decode"].append(record(variant, "decode", f"latency_s@{length}", 1 / decode, direction="lower",
                                      details=details))
        window = {"lizard": 128, "lolcats": 64}.get(variant, length)
        cache = (length * 16 * 2 * 8 * 64 * 4) if teacher else (16 * 8 * 64 * 64 * 4 + window * 16 * 2 * 8 * 64 * 4)
        memory_details = {**details, "method": "torch.cuda.max_memory_allocated (fixture)"}
        units["memory"].append(record(variant, "memory", f"peak_memory_bytes@{length}", 2.5e9 + 3 * cache,
                                      direction="lower", details=memory_details))
        units["memory"].append(record(variant, "memory", f"cache_bytes@{length}", float(cache), direction="lower",
                                      details=memory_details))
    for task in ("passkey", "needle"):
        if task == "needle" and variant == "lolcats":
            units[task] = [record(variant, task, "exact_match", None, status="unavailable")]
            continue
        probes = []
        for length in PROBE_LENGTHS:
            for depth in DEPTHS:
                if variant == "lolcats":
                    value = 1.0 if length <= 1024 or depth >= 0.75 else 0.2
                else:
                    value = 1.0 if variant == "lizard" or length <= 4096 else 0.8
                probes.append(record(variant, task, f"exact_match@{length}:{depth}", value,
                                     details={"context_length": length, "depth": depth}))
        if variant == "softmax" and task == "passkey":  # a timed-out cell must show in the heatmap
            probes[-1] = record(variant, task, f"exact_match@{PROBE_LENGTHS[-1]}:{DEPTHS[-1]}", None,
                                status="timeout", details={"context_length": PROBE_LENGTHS[-1], "depth": 1.0})
        ok = [p.value for p in probes if p.status == "ok"]
        splits = []
        if task == "passkey":  # within the window every variant retrieves; beyond it, they differ
            for length in PROBE_LENGTHS:
                splits += [record(variant, task, f"exact_match_within_window@{length}", 1.0,
                                  details={"context_length": length, "window": 128, "trials": 1}),
                           record(variant, task, f"exact_match_beyond_window@{length}",
                                  {"softmax": 1.0, "lizard": 0.75, "lolcats": 0.25}[variant],
                                  details={"context_length": length, "window": 128, "trials": 4})]
        units[task] = [*probes, *splits, record(variant, task, "exact_match", sum(ok) / len(ok))]
    return units


def write_fixture_run(results_dir: Path, run_id: str = "fixture", variants: tuple[str, ...] = VARIANTS,
                      with_training: bool = True) -> Path:
    """A complete FIXTURE run directory (manifest, records, training logs) under ``results_dir/run_id``."""
    store = RunStore(Path(results_dir) / run_id)
    store.write_manifest({"run_id": run_id, "config_hash": PROVENANCE["config_hash"],
                          "started": PROVENANCE["started"], "provenance": PROVENANCE,
                          "config": {"name": "fixture", "note": "synthetic numbers for tests"}})
    for variant in variants:
        for task, records in fixture_records(variant).items():
            store.write_unit(FIXTURE_MODEL, variant, task, records)
        if with_training and variant != "softmax":
            write_training_logs(store.run_dir, FIXTURE_MODEL, variant)
    return store.run_dir


def write_training_logs(run_dir: Path, model: str, variant: str, steps: int = 120) -> None:
    folder = run_dir / "training" / safe_name(model) / variant
    folder.mkdir(parents=True, exist_ok=True)
    offset = 0.0 if variant == "lizard" else 0.15
    for stage, start, floor in (("stage1", 0.8, 0.004), ("stage2", 3.2, 2.1)):
        lines = []
        for step in range(1, steps + 1):
            wiggle = 0.03 * math.sin(step * 1.7)
            loss = floor * (1 + offset) + (start - floor) * math.exp(-step / 25) + wiggle * floor
            lines.append(json.dumps({"step": step, "loss": loss, "lr": 1e-3 * min(1.0, step / 12),
                                     "tokens": step * 8192, "time_s": step * 0.5}))
        (folder / f"{stage}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    stages = {"stage1": {"metric": "attention_mse", "start": 0.8, "end": 0.004 * (1 + offset)},
              "stage2": {"metric": "lm_loss", "start": 3.2, "end": 2.1 * (1 + offset)}}
    summary = {"stages": stages, "teacher_lm_loss": 2.05, "from_checkpoint": False}
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
