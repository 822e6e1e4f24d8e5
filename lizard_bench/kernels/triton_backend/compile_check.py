"""Compile every Triton kernel for an NVIDIA target ahead of time, on a machine without a GPU.

The interpreter (``TRITON_INTERPRET=1``) checks what the kernels compute but not that they
compile: scoping, loop-carried types and ``tl.dot`` shape rules are only enforced by the
compiler. This runs the real launchers (forward and backward, on tiny CPU tensors) with the
launch intercepted: each kernel is compiled for the target (default sm_90, an H100) down to
a cubin with the bundled ptxas, and nothing is executed. Registers and spills are reported
when ptxas can be asked (``ptxas -v``).

    python -m lizard_bench.kernels.triton_backend.compile_check [--arch 90] [--head-dims 64 128]

Must run with ``TRITON_INTERPRET`` unset (kernels are defined at import time).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time

import torch
import triton
from triton import knobs
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.runtime.jit import JITFunction


def _compile(fn: JITFunction, target: GPUTarget, args: tuple, kwargs: dict):
    """Compile one call the way ``fn[grid](*args, **kwargs)`` would on a GPU of ``target``.

    The launcher's own specialisation logic runs on the actual arguments, so 16-byte aligned
    pointers and sizes divisible by 16 get the same hints (and vectorised loads) as on a GPU.
    """
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    kwargs = dict(kwargs, debug=False, instrumentation_mode=knobs.compilation.instrumentation_mode,
                  fpsan_homomorphic_casts=knobs.compilation.fpsan_homomorphic_casts)
    backend = make_backend(target)
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound_args, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound_args, specialization, options)
    return triton.compile(ASTSource(fn, signature, constexprs, attrs), target=target, options=options.__dict__), {
        fn.arg_names[path[0]]: value for path, value in constexprs.items() if fn.params[path[0]].is_constexpr
    }


def _ptxas_usage(ptx: str, arch: int) -> str:
    """'N registers, M bytes spilled' from ``ptxas -v``, or '' when ptxas is not at hand."""
    from triton.backends.nvidia.compiler import get_ptxas

    try:
        ptxas = get_ptxas(arch).path
    except Exception:  # noqa: BLE001 - the report is optional
        return ""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        suffix = "a" if arch >= 90 else ""
        cmd = [ptxas, "-v", f"--gpu-name=sm_{arch}{suffix}", path, "-o", os.path.join(tmp, "k.cubin")]
        out = subprocess.run(cmd, capture_output=True, text=True).stderr
    regs = re.search(r"Used (\d+) registers", out)
    spills = re.search(r"(\d+) bytes spill stores", out)
    return f"{regs.group(1) if regs else '?'} regs, {spills.group(1) if spills else '?'} B spilled"


# Largest shared memory one block may use, by compute capability (CUDA programming guide).
SHARED_MEMORY_LIMIT = {80: 166912, 86: 101376, 87: 166912, 89: 101376, 90: 232448, 100: 232448, 120: 101376}


@contextlib.contextmanager
def compile_instead_of_launch(arch: int, report: list[str]):
    """Within the block, ``kernel[grid](...)`` compiles for ``arch`` and records a line instead of running."""
    original = JITFunction.run
    target = GPUTarget("cuda", arch, 32)

    def run(self, *args, grid, warmup, **kwargs):
        options = {k: kwargs[k] for k in ("num_warps", "num_stages") if k in kwargs}
        start = time.perf_counter()
        compiled, constexprs = _compile(self, target, args, kwargs)
        shown = ", ".join(f"{k}={v}" for k, v in constexprs.items())
        usage = _ptxas_usage(compiled.asm["ptx"], arch)
        shared = compiled.metadata.shared
        too_big = " EXCEEDS SHARED MEMORY" if shared > SHARED_MEMORY_LIMIT.get(arch, 101376) else ""
        report.append(f"{self.__name__}[{shown}] {options} shared={shared} B{too_big} {usage} "
                      f"({time.perf_counter() - start:.1f}s)")

    JITFunction.run = run
    try:
        yield
    finally:
        JITFunction.run = original


def compile_all(arch: int = 90, head_dims=(64, 128), dtypes=(torch.bfloat16, torch.float32)) -> list[str]:
    """Compile the forward and backward kernels of both mechanisms for every head dim and dtype."""
    from lizard_bench.kernels.triton_backend import gla, softmax

    report: list[str] = []
    with compile_instead_of_launch(arch, report):
        for dtype in dtypes:
            for D in head_dims:
                q = torch.zeros(1, 32, 16, D, dtype=dtype)
                kv = torch.zeros(1, 32, 4, D, dtype=dtype)
                sinks = torch.zeros(16, 4)
                o, lse = softmax.softmax_attention_fwd(q, kv, kv, sinks, window=3)
                softmax.softmax_attention_bwd(o, q, kv, kv, o, lse, sinks, window=3)
                softmax.softmax_attention_fwd(q, kv, kv, causal=True)
                padded = torch.ones(1, 32, dtype=torch.bool)  # padded batches: the key-score variants
                o, lse = softmax.softmax_attention_fwd(q, kv, kv, sinks, window=3, key_mask=padded)
                softmax.softmax_attention_bwd(o, q, kv, kv, o, lse, sinks, window=3, key_mask=padded)
                fq, v = torch.zeros(1, 32, 16, 128, dtype=dtype), torch.zeros(1, 32, 16, D, dtype=dtype)
                g, state = torch.zeros(1, 32, 16), (torch.zeros(1, 16, 128, D), torch.zeros(1, 16, 128))
                num, den, final = gla.chunk_gla_fwd(fq, fq, v, g, state, True)
                gla.chunk_gla_bwd(fq, fq, v, g, state, final, num, den, final)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 80 (A100), 90 (H100)")
    parser.add_argument("--head-dims", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--dtypes", nargs="+", choices=["bfloat16", "float16", "float32"],
                        default=["bfloat16", "float32"])
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("unset TRITON_INTERPRET: the interpreter does not compile", file=sys.stderr)
        return 2
    report = compile_all(args.arch, tuple(args.head_dims), tuple(getattr(torch, name) for name in args.dtypes))
    for line in report:
        print(line)
    return 1 if any("EXCEEDS" in line for line in report) else 0


if __name__ == "__main__":
    sys.exit(main())
