"""Test-session setup: run Triton kernels through Triton's CPU interpreter when there is no GPU.

``@triton.jit`` decides between compiling and interpreting when a kernel module is imported,
by reading ``TRITON_INTERPRET``; pytest imports this file before any test module, so setting
the variable here covers every test that imports ``lizard_bench.kernels.triton_backend``.
A value already set by the user is kept, and nothing changes on a machine with CUDA.
"""

import atexit
import os
import shutil
import tempfile

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Tests never reach the Hugging Face hub (and `datasets` would otherwise try to): offline unless told otherwise.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# Converted copies of GGUF models (models/gguf_cache.py) go to a directory of this session's own, not the
# user's cache: the session's first load of the embedded model converts it, later loads read the copy.
if "LIZARD_BENCH_CACHE" not in os.environ:
    _session_cache = tempfile.mkdtemp(prefix="lizard-bench-tests-")
    os.environ["LIZARD_BENCH_CACHE"] = _session_cache
    atexit.register(shutil.rmtree, _session_cache, True)
