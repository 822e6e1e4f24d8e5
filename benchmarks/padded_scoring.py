"""Time lm-eval scoring at batch 1 against a larger, padded batch, and check the scores agree.

Runs one lm-eval task (local data via ``--data-dir``) through ``LizardLM`` for the teacher
(through the shared kernels) and an untrained Lizard (speed does not depend on training),
once per batch size, and prints wall time, the speed-up over batch 1 and the largest
|Δ loglikelihood| against batch 1 over every request. The machine load is printed too:
on a shared machine the ratio is only as good as the load was steady.

    python benchmarks/padded_scoring.py --task boolq --data-dir tests/fixtures/task_data
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from lizard_bench.evaluation.data_sources import plan_data
from lizard_bench.evaluation.harness import evaluate_task
from lizard_bench.evaluation.lm import LizardLM
from lizard_bench.linearize import linearize
from lizard_bench.models.kernel_attention import use_kernel_attention
from lizard_bench.models.loading import load_model
from lizard_bench.tasks import get_task


def scored(model: torch.nn.Module, tokenizer, task: str, data_dir: str, batch_size: int) -> tuple[float, list]:
    """(seconds, loglikelihood results in request order) for one evaluation of ``task``."""
    spec = get_task(task).spec
    plan = plan_data(spec, data_dir, spec.num_fewshot)
    lm = LizardLM(model, tokenizer, "cpu", batch_size=batch_size, progress=False)
    results: list = []
    original = lm.loglikelihood

    def recording(requests):
        out = original(requests)
        results.extend(out)
        return out

    lm.loglikelihood = recording
    start = time.perf_counter()
    evaluate_task(lm, spec, plan, num_fewshot=spec.num_fewshot, limit=None, seed=0, bootstrap_iters=0)
    return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="boolq")
    parser.add_argument("--data-dir", default="tests/fixtures/task_data")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}  torch threads: {torch.get_num_threads()}")
    for variant in ("teacher", "lizard"):
        loaded = load_model(args.model, device="cpu")
        model = loaded.model
        if variant == "teacher":
            use_kernel_attention(model, "torch")
        else:
            linearize(model, "lizard", kernel_backend="torch")
        scored(model, loaded.tokenizer, args.task, args.data_dir, 1)  # warm-up
        one, base = scored(model, loaded.tokenizer, args.task, args.data_dir, 1)
        many, batched = scored(model, loaded.tokenizer, args.task, args.data_dir, args.batch_size)
        delta = max(abs(a[0] - b[0]) for a, b in zip(base, batched, strict=True))
        flips = sum(a[1] != b[1] for a, b in zip(base, batched, strict=True))
        print(f"{variant}: {len(base)} requests, batch 1 {one:.2f} s, batch {args.batch_size} {many:.2f} s, "
              f"speed-up {one / many:.2f}x, max |Δ loglik| {delta:.2e}, greedy flips {flips}")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
