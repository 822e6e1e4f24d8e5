"""One-shot GPU check of the Triton kernels: agreement with the PyTorch backend, then timings.

Prepared for a short session on one H100. In order, it

1. compares ``backend="triton"`` with ``backend="torch"`` through the public kernel API in
   bfloat16 at B=16, H=32, D=128, T in {2K, 4K, 8K, 16K}: the causal teacher, the window
   (w=128) + sinks (m=4) branch and gated linear attention (feature size 128, with its
   final state), forward at every T and gradients at the first T;
2. times forward + backward of the same ops per backend (what training costs);
3. prints the forward timing table of ``benchmarks/kernel_ops.py`` for the same shapes.

Everything printed is also written to ``--out``; the exit status is 1 when a check fails.

    python benchmarks/gpu_check.py --out gpu_check.txt              # CUDA machine
    python benchmarks/gpu_check.py --smoke --out /tmp/gpu_check.txt  # CPU: Triton interpreter, tiny shapes

A relative error is ‖triton − torch‖ / ‖torch‖ over the whole tensor; both sides round to
bfloat16, so about 1e-3 to 1e-2 is expected and the limits below leave a margin.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch

FORWARD_LIMIT = 2e-2
GRADIENT_LIMIT = 5e-2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="file the report is written to")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on CPU under the Triton interpreter")
    parser.add_argument("--B", type=int, default=16)
    parser.add_argument("--H", type=int, default=32)
    parser.add_argument("--D", type=int, default=128, help="head dim (and GLA value size)")
    parser.add_argument("--feature-size", type=int, default=128)
    parser.add_argument("--T", type=int, nargs="+", default=[2048, 4096, 8192, 16384])
    parser.add_argument("--grad-T", type=int, nargs="*", default=None, help="lengths with gradient checks (first T)")
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--sinks", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-benchmark", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.B, args.H, args.D, args.feature_size, args.T, args.window, args.repeats = 1, 2, 32, 32, [64, 130], 16, 1
    if args.grad_T is None:
        args.grad_T = args.T[:1]
    return args


class Report:
    """Prints each line and appends it to the output file at once (a crash keeps what came before)."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.file = open(path, "w")  # noqa: SIM115 - closed in close()
        self.failed = False

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def make_inputs(args: argparse.Namespace, T: int, device: str, dtype: torch.dtype, seed: int = 0) -> dict:
    """Random inputs drawn on the device: q, k, v; positive Hedgehog-like features; gates; sinks."""
    g = torch.Generator(device=device).manual_seed(seed + T)
    B, H, D, Fs = args.B, args.H, args.D, args.feature_size

    def randn(*shape):
        return torch.randn(*shape, generator=g, device=device, dtype=torch.float32)

    def features():
        x = 2.0 * randn(B, T, H, Fs // 2)
        return torch.cat([x.softmax(-1), (-x).softmax(-1)], dim=-1).to(dtype)

    return {
        "q": randn(B, T, H, D).to(dtype), "k": randn(B, T, H, D).to(dtype), "v": randn(B, T, H, D).to(dtype),
        "fq": features(), "fk": features(),
        "log_gate": torch.nn.functional.logsigmoid(randn(B, T, H) + 3.0),
        "sinks": randn(H, args.sinks),
    }


def ops(args: argparse.Namespace) -> dict[str, Callable]:
    """name -> fn(inputs, backend) returning the tensors to compare (and differentiate)."""
    from lizard_bench.kernels import gated_linear_attention, softmax_attention

    def teacher(x, backend):
        return [softmax_attention(x["q"], x["k"], x["v"], backend=backend)]

    def window_sinks(x, backend):
        return [softmax_attention(x["q"], x["k"], x["v"], window=args.window, sink_logits=x["sinks"],
                                  backend=backend)]

    def gla(x, backend):
        o, state = gated_linear_attention(x["fq"], x["fk"], x["v"], x["log_gate"], output_final_state=True,
                                          backend=backend)
        return [o, state.S, state.z]

    return {"teacher": teacher, "window+sinks": window_sinks, "gla": gla}


LEAVES = {"teacher": ["q", "k", "v"], "window+sinks": ["q", "k", "v", "sinks"], "gla": ["fq", "fk", "v", "log_gate"]}


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    a, e = actual.double(), expected.double()
    return ((a - e).norm() / e.norm().clamp_min(1e-30)).item()


def check(report: Report, args, device, dtype) -> None:
    report(f"## agreement: triton vs torch backend ({str(dtype).removeprefix('torch.')}, B={args.B} H={args.H} "
           f"D={args.D} F={args.feature_size} w={args.window} m={args.sinks})")
    report(f"{'op':<14}{'T':>7}  {'what':<12}{'rel err':>10}  {'max |diff|':>11}  result")
    for T in args.T:
        x = make_inputs(args, T, device, dtype)
        for name, fn in ops(args).items():
            grads = T in args.grad_T
            try:
                results = {}
                for backend in ("torch", "triton"):
                    inputs = {key: (t.detach().requires_grad_(grads) if key in LEAVES[name] else t)
                              for key, t in x.items()}
                    with torch.set_grad_enabled(grads):
                        outs = fn(inputs, backend)
                    rows = [(f"out{i}", out.detach()) for i, out in enumerate(outs)]
                    if grads:
                        seeds = [torch.randn(o.shape, generator=torch.Generator(device=device).manual_seed(i),
                                             device=device).to(o.dtype) for i, o in enumerate(outs)]
                        dx = torch.autograd.grad(outs, [inputs[key] for key in LEAVES[name]], seeds)
                        rows += [(f"d{key}", d) for key, d in zip(LEAVES[name], dx, strict=True)]
                    results[backend] = rows
                    del outs, inputs
                for (what, expected), (_, actual) in zip(results["torch"], results["triton"], strict=True):
                    err = relative_error(actual, expected)
                    limit = GRADIENT_LIMIT if what.startswith("d") else FORWARD_LIMIT
                    ok = math.isfinite(err) and err <= limit and bool(torch.isfinite(actual).all())
                    report.failed |= not ok
                    diff = (actual.double() - expected.double()).abs().max().item()
                    report(f"{name:<14}{T:>7}  {what:<12}{err:>10.2e}  {diff:>11.2e}  {'ok' if ok else 'FAIL'}")
                del results
            except torch.cuda.OutOfMemoryError as error:
                report(f"{name:<14}{T:>7}  out of memory ({str(error).splitlines()[0][:80]})")
            if device == "cuda":
                torch.cuda.empty_cache()
        del x


def median_ms(fn: Callable[[], object], repeats: int, device: str) -> float:
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    fn()  # warm-up (and compilation)
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def time_training(report: Report, args, device, dtype) -> None:
    report()
    report("## forward + backward, median ms")
    report(f"{'op':<14}{'T':>7}{'torch':>12}{'triton':>12}{'speed-up':>10}")
    for T in args.T:
        x = make_inputs(args, T, device, dtype)
        for name, fn in ops(args).items():
            ms = {}
            for backend in ("torch", "triton"):
                inputs = {key: t.detach().requires_grad_(key in LEAVES[name]) for key, t in x.items()}

                def step(inputs=inputs, backend=backend, fn=fn):
                    outs = fn(inputs, backend)
                    torch.autograd.backward(outs[0], torch.ones_like(outs[0]))

                try:
                    ms[backend] = median_ms(step, args.repeats, device)
                except torch.cuda.OutOfMemoryError:
                    ms[backend] = float("nan")
                del inputs
                if device == "cuda":
                    torch.cuda.empty_cache()
            report(f"{name:<14}{T:>7}{ms['torch']:>12.2f}{ms['triton']:>12.2f}{ms['torch'] / ms['triton']:>9.2f}x")
        del x


def forward_table(report: Report, args, device, dtype) -> None:
    """benchmarks/kernel_ops.py's forward table (SDPA, torch, triton, flash-linear-attention when present)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import kernel_ops as kernel_benchmark

    report()
    report("## forward only (benchmarks/kernel_ops.py), one table per T")
    for T in args.T:
        argv = ["--device", device, "--dtype", str(dtype).removeprefix("torch."), "--B", str(args.B),
                "--H", str(args.H), "--D", str(args.D), "--feature-size", str(args.feature_size),
                "--window", str(args.window), "--sinks", str(args.sinks), "--repeats", str(args.repeats),
                "--T", str(T), "--backend", "all" if device == "cuda" else "torch"]
        buffer = io.StringIO()
        try:
            with contextlib.redirect_stdout(buffer):
                kernel_benchmark.main(argv)
        except Exception as error:  # noqa: BLE001 - one failing length must not lose the others
            buffer.write(f"T={T}: {type(error).__name__}: {str(error).splitlines()[0][:120]}\n")
        for line in buffer.getvalue().splitlines():
            report(line)
        if device == "cuda":
            torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    on_cuda = torch.cuda.is_available() and not args.smoke
    if not on_cuda:
        if not args.smoke:
            raise SystemExit("no CUDA device: run with --smoke for the CPU interpreter check")
        os.environ["TRITON_INTERPRET"] = "1"  # before the Triton kernels are first imported
    device, dtype = ("cuda", torch.bfloat16) if on_cuda else ("cpu", torch.float32)
    import triton

    report = Report(args.out)
    name = torch.cuda.get_device_name() if on_cuda else "cpu (Triton interpreter)"
    report(f"# gpu_check: {name}, torch {torch.__version__}, triton {triton.__version__}")
    torch.manual_seed(0)
    start = time.perf_counter()
    check(report, args, device, dtype)
    time_training(report, args, device, dtype)
    if not args.skip_benchmark:
        forward_table(report, args, device, dtype)
    report()
    report(f"# {'FAILED' if report.failed else 'all checks passed'} in {time.perf_counter() - start:.0f}s")
    report.close()
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
