"""Time the attention kernels against PyTorch's causal ``scaled_dot_product_attention``.

Prints one table: backend, op, shape, median time and speed-up against SDPA on the same
q, k, v (the teacher's cost at that length). Ops:

- ``softmax``: full causal attention through our kernel API (the teacher path);
- ``window+sinks``: Lizard's local branch (window w, m sink logits per head);
- ``gla``: gated linear attention on feature-mapped queries/keys (feature size F, V = D);
- ``lizard``: the whole Lizard attention, gla(...) + alpha * window+sinks(...).

Feature maps and gates are computed once outside the timed region: they are per-token
projections whose cost does not depend on context length, and the kernels are what this
script measures. On CUDA it also reports TFLOP/s and GB/s (see ``flops`` and ``bytes_moved``
for the models) and, when flash-linear-attention (``fla``) imports, its chunked GLA
kernels as extra rows. Defaults are SmolLM2-135M's attention shapes.

    python benchmarks/kernel_ops.py                       # CPU, torch backend, T = 1K, 4K, 16K
    python benchmarks/kernel_ops.py --device cuda --backend all --dtype bfloat16
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from lizard_bench.kernels import gated_linear_attention, softmax_attention, triton_available

OPS = ("softmax", "window+sinks", "gla", "lizard")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["torch", "triton", "all"], default="torch")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default=None,
                        help="default: float32 on CPU, bfloat16 on CUDA")
    parser.add_argument("--T", type=int, nargs="+", default=[1024, 4096, 16384], help="sequence lengths")
    parser.add_argument("--B", type=int, default=1)
    parser.add_argument("--H", type=int, default=9, help="heads (query and key/value)")
    parser.add_argument("--D", type=int, default=64, help="head dimension (and GLA value size)")
    parser.add_argument("--feature-size", type=int, default=128, help="GLA query/key feature size per head")
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--sinks", type=int, default=4, help="sink logits per head")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per op (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--ops", nargs="+", choices=OPS, default=list(OPS))
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def make_inputs(args: argparse.Namespace, T: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Random but realistic inputs: Hedgehog-like positive features, gates in (0, 1)."""
    g = torch.Generator(device="cpu").manual_seed(args.seed + T)
    B, H, D, Fs = args.B, args.H, args.D, args.feature_size

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(args.device, dtype)

    half = Fs // 2
    x_q, x_k = torch.randn(B, T, H, half, generator=g), torch.randn(B, T, H, half, generator=g)
    features_q = torch.cat([x_q.softmax(-1), (-x_q).softmax(-1)], dim=-1)
    features_k = torch.cat([x_k.softmax(-1), (-x_k).softmax(-1)], dim=-1)
    return {
        "q": randn(B, T, H, D),
        "k": randn(B, T, H, D),
        "v": randn(B, T, H, D),
        "fq": features_q.to(args.device, dtype),
        "fk": features_k.to(args.device, dtype),
        "log_gate": F.logsigmoid(torch.randn(B, T, H, generator=g) + 3.0).to(args.device),
        "sinks": torch.randn(H, args.sinks, generator=g).to(args.device),
        "alpha": torch.full((H,), 0.5).to(args.device, dtype),
    }


def op_callable(op: str, backend: str, x: dict[str, torch.Tensor], window: int) -> Callable[[], torch.Tensor]:
    """A no-argument closure running one op through the public kernel API."""

    def local() -> torch.Tensor:
        return softmax_attention(x["q"], x["k"], x["v"], window=window, sink_logits=x["sinks"], backend=backend)

    def gla() -> torch.Tensor:
        return gated_linear_attention(x["fq"], x["fk"], x["v"], x["log_gate"], backend=backend)[0]

    if op == "softmax":
        return lambda: softmax_attention(x["q"], x["k"], x["v"], backend=backend)
    if op == "window+sinks":
        return local
    if op == "gla":
        return gla
    if op == "lizard":
        # Combined in place, as inference code would: one fused pass, no third [B, T, H, D] buffer.
        return lambda: gla().addcmul_(x["alpha"].view(1, 1, -1, 1), local())
    raise ValueError(op)


def sdpa_callable(x: dict[str, torch.Tensor]) -> Callable[[], torch.Tensor]:
    """The baseline: causal SDPA on the same q, k, v, in SDPA's own [B, H, T, D] layout."""
    q, k, v = (x[name].transpose(1, 2).contiguous() for name in ("q", "k", "v"))
    return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)


def fla_callables(x: dict[str, torch.Tensor]) -> dict[str, Callable[[], torch.Tensor]]:
    """flash-linear-attention's chunked GLA kernels, when the optional package imports and runs.

    A reference point for speed only: fla's GLA has no normaliser, so its outputs differ
    from ours. Its API has changed across releases (layout, argument names); a kernel that
    fails on these inputs is reported and skipped rather than stopping the benchmark.
    """
    try:
        from fla.ops.gla import chunk_gla
        from fla.ops.simple_gla import chunk_simple_gla
    except ImportError:
        return {}
    fq, fk, v, g = x["fq"], x["fk"], x["v"], x["log_gate"]
    g_per_feature = g.unsqueeze(-1).expand_as(fk).to(fq.dtype).contiguous()  # [B, T, H, F]
    candidates = {
        "fla chunk_simple_gla": lambda: chunk_simple_gla(fq, fk, v, g=g.to(fq.dtype))[0],
        "fla chunk_gla": lambda: chunk_gla(fq, fk, v, g=g_per_feature)[0],
    }
    usable = {}
    for name, fn in candidates.items():
        try:
            out = fn()
        except Exception as error:  # any failure of the optional package is a skip, not a crash
            print(f"note: {name} skipped ({type(error).__name__}: {error})")
            continue
        if out.shape != v.shape:
            print(f"note: {name} skipped (output {tuple(out.shape)}, expected {tuple(v.shape)})")
            continue
        usable[name] = fn
    return usable


def median_times(
    fns: dict[str, Callable[[], torch.Tensor]], repeats: int, warmup: int, device: str
) -> dict[str, float]:
    """Median wall time of each function in milliseconds, synchronising CUDA around each run.

    The functions are timed round-robin (one run of each, ``repeats`` times), so a burst
    of load from another process on a shared machine hits every op alike instead of
    skewing the ratio between two of them.
    """
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times: dict[str, list[float]] = {name: [] for name in fns}
    with torch.inference_mode():
        for fn in fns.values():
            for _ in range(warmup):
                fn()
        for _ in range(repeats):
            for name, fn in fns.items():
                sync()
                start = time.perf_counter()
                fn()
                sync()
                times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(samples) for name, samples in times.items()}


def flops(op: str, args: argparse.Namespace, T: int) -> float:
    """Useful floating-point operations (multiply-add = 2), not counting masked or padded work.

    causal softmax: QKᵀ and PV over the lower triangle, 2·2·(T²/2)·D per head;
    window: the same over w keys per query, 2·2·T·w·D; GLA per token: state update and
    read-out 2·2·F·V, plus the intra-chunk products over C/2 keys on average,
    2·(C/2)·(F + V), with C = 64 (flash-linear-attention's chunk) whatever chunk a backend
    uses, so that rows stay comparable.
    """
    B, H, D, Fs, w, C = args.B, args.H, args.D, args.feature_size, args.window, 64
    softmax = 2.0 * T * T * D
    window = 4.0 * T * min(w, T) * D
    gla = T * (4.0 * Fs * D + C * (Fs + D))
    per_head = {"softmax": softmax, "sdpa": softmax, "window+sinks": window, "gla": gla, "lizard": gla + window}
    return B * H * per_head[op]


def bytes_moved(op: str, args: argparse.Namespace, T: int, element_size: int) -> float:
    """Compulsory memory traffic: every input read once and the output written once.

    softmax/window: q, k, v, o of D each; GLA: q, k features of F, v and o of D, and a
    float32 gate; lizard reads both input sets and writes one output.
    """
    B, H, D, Fs = args.B, args.H, args.D, args.feature_size
    attention = 4 * D * element_size
    gla = (2 * Fs + 2 * D) * element_size + 4
    per_token = {"softmax": attention, "sdpa": attention, "window+sinks": attention, "gla": gla,
                 "lizard": gla + 3 * D * element_size}
    return B * H * T * per_token[op]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    on_cuda = args.device.startswith("cuda")
    dtype = getattr(torch, args.dtype or ("bfloat16" if on_cuda else "float32"))
    backends = ["torch", "triton"] if args.backend == "all" else [args.backend]
    if "triton" in backends and not (on_cuda and triton_available()):
        if args.backend == "triton":
            raise SystemExit("the triton backend is timed on CUDA only (its CPU interpreter is for tests)")
        backends.remove("triton")
        print("note: triton skipped (needs CUDA and the triton package)")
    torch.manual_seed(args.seed)

    header = ["backend", "op", "B", "H", "D", "T", "median ms", "vs SDPA"]
    if on_cuda:
        header += ["TFLOP/s", "GB/s"]
    rows: list[list[str]] = []
    lizard_ms: dict[tuple[str, int], float] = {}
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    for T in args.T:
        x = make_inputs(args, T, dtype)
        # (backend, op, FLOP/byte model, callable); SDPA first: it is every row's baseline.
        timed = [("sdpa", "sdpa", "sdpa", sdpa_callable(x))]
        timed += [(b, op, op, op_callable(op, b, x, args.window)) for b in backends for op in args.ops]
        if on_cuda:
            timed += [("fla", name, "gla", fn) for name, fn in fla_callables(x).items()]
        ms = median_times({f"{b}/{op}": fn for b, op, _, fn in timed}, args.repeats, args.warmup, args.device)
        base = ms["sdpa/sdpa"]
        for backend, op, model, _ in timed:
            t = ms[f"{backend}/{op}"]
            if op == "lizard":
                lizard_ms[(backend, T)] = t
            row = [backend, op, str(args.B), str(args.H), str(args.D), str(T), f"{t:.2f}", f"{base / t:.2f}x"]
            if on_cuda:
                moved = bytes_moved(model, args, T, dtype.itemsize)
                row += [f"{flops(model, args, T) / t / 1e9:.2f}", f"{moved / t / 1e6:.1f}"]
            rows.append(row)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    print(f"device={args.device} dtype={str(dtype).removeprefix('torch.')} threads={torch.get_num_threads()} "
          f"window={args.window} sinks={args.sinks} feature_size={args.feature_size} repeats={args.repeats} "
          f"load average {load_before:.1f} -> {load_after:.1f} (other processes distort CPU timings)")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.rjust(width) if i >= 2 else cell.ljust(width) for i, (cell, width) in
                        enumerate(zip(row, widths, strict=True))))
    for backend in backends:
        if (backend, 16384) in lizard_ms and (backend, 4096) in lizard_ms:
            ratio = lizard_ms[(backend, 16384)] / lizard_ms[(backend, 4096)]
            print(f"{backend} lizard time(16K)/time(4K) = {ratio:.2f} (linear scaling: 4.0)")


if __name__ == "__main__":
    main()
