"""Where one decode step's time goes: the teacher against linearized variants, per part of attention.

Prefills a random context of each length, then times ``--steps`` greedy decode steps and,
with forward hooks on each attention module and its sub-modules, splits the step into
projections (q/k/v/o), feature maps, gate and the rest of attention (GLA step, window
softmax, ring buffer, Python). Untrained conversions suffice: a step's cost does not depend
on the weights' values.

    python benchmarks/decode_profile.py                          # SmolLM2-135M, 512 and 8192
    python benchmarks/decode_profile.py --variants softmax lizard --lengths 512
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict

import torch

from lizard_bench.efficiency import workloads
from lizard_bench.linearize import linearize, lizard_modules
from lizard_bench.linearize.prefill import DEFAULT_PREFILL_CHUNK
from lizard_bench.models.kernel_attention import use_kernel_attention
from lizard_bench.models.loading import load_model

PARTS = {"q_proj": "projections", "k_proj": "projections", "v_proj": "projections", "o_proj": "projections",
         "feature_q": "feature maps", "feature_k": "feature maps", "gate": "gate"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--variants", nargs="+", default=["softmax", "lizard", "lizard_plus"])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 8192])
    parser.add_argument("--steps", type=int, default=24, help="timed decode steps per length")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (median reported)")
    return parser.parse_args(argv)


class PartTimer:
    """Wall time spent inside modules, by part; the attention module's own total as 'attention'."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._starts: dict[int, float] = {}
        self.handles = []

    def watch(self, module: torch.nn.Module, part: str) -> None:
        def before(mod, args, kwargs=None):
            self._starts[id(mod)] = time.perf_counter()

        def after(mod, args, output, kwargs=None):
            self.seconds[part] += time.perf_counter() - self._starts.pop(id(mod))

        self.handles.append(module.register_forward_pre_hook(before))
        self.handles.append(module.register_forward_hook(after))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def attention_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [layer.self_attn for layer in model.model.layers]


def watch_parts(model: torch.nn.Module, timer: PartTimer) -> None:
    for attention in attention_modules(model):
        timer.watch(attention, "attention")
        base = getattr(attention, "base", attention)
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            timer.watch(getattr(base, name), PARTS[name])
        for name in ("feature_q", "feature_k", "gate"):
            if hasattr(attention, name):
                timer.watch(getattr(attention, name), PARTS[name])


def profile(model: torch.nn.Module, length: int, steps: int, rounds: int) -> dict[str, float]:
    """Milliseconds per decode step: 'step' (whole, timed without hooks), and each part summed over layers
    (timed in a second run with hooks, which add a few microseconds per module call)."""
    ids = workloads.context_ids(model.config.vocab_size, 1, length, seed=0, device=torch.device("cpu"))
    chunk = workloads.prefill_chunk_for(model, DEFAULT_PREFILL_CHUNK)
    totals, parts = [], defaultdict(list)
    for _ in range(rounds):
        cache, token = workloads.prefill(model, ids, chunk)
        workloads.decode(model, cache, token, 2)  # warm-up (and the ring buffer's first step)
        start = time.perf_counter()
        workloads.decode(model, cache, token, steps)  # the step's own time: no hooks
        totals.append((time.perf_counter() - start) / steps * 1e3)
        timer = PartTimer()
        watch_parts(model, timer)
        workloads.decode(model, cache, token, steps)
        timer.remove()
        for part, seconds in timer.seconds.items():
            parts[part].append(seconds / steps * 1e3)
    result = {"step": statistics.median(totals)}
    result.update({part: statistics.median(values) for part, values in parts.items()})
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_start = os.getloadavg()[0]
    rows = []
    for variant in args.variants:
        loaded = load_model(args.model, device="cpu", dtype="float32")
        model = loaded.model.eval()
        use_kernel_attention(model, "torch")
        if variant != "softmax":
            linearize(model, variant, kernel_backend="torch")
            assert lizard_modules(model)
        for length in args.lengths:
            rows.append((variant, length, profile(model, length, args.steps, args.rounds)))
    columns = ["step", "attention", "projections", "feature maps", "gate"]
    print(f"# python benchmarks/decode_profile.py {' '.join(argv or [])}".rstrip())
    print(f"# threads={torch.get_num_threads()} steps={args.steps} rounds={args.rounds} (median) "
          f"load average {load_start:.2f} -> {os.getloadavg()[0]:.2f} (includes this benchmark's own threads)")
    print("# ms per decode step, parts summed over all layers; 'rest' = attention minus its listed parts")
    header = ["variant", "context", *columns, "rest", "tokens/s"]
    print(" | ".join(header))
    for variant, length, result in rows:
        listed = sum(result.get(part, 0.0) for part in columns[2:])
        rest = result["attention"] - listed
        cells = [variant, str(length)] + [f"{result.get(part, 0.0):.1f}" for part in columns] + \
            [f"{rest:.1f}", f"{1e3 / result['step']:.1f}"]
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
