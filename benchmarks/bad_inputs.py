"""The bad-input battery as a new user meets it: each case in its own ``lizard-bench`` process.

For every case of ``tests/bad_inputs.py`` this prints the exit status, the seconds until the
error, and the outcome: ``clean`` (exit 2, one line on stderr, no traceback, nothing created
or changed), ``traceback``, ``silent`` (exit 0: a mistake that passed), ``noisy`` (exit 2 but
more than one line), or ``data-loss`` (a fixture file changed or vanished). It ends with the
counts. Run from the repository root:

    python benchmarks/bad_inputs.py            # all cases (about 6 s each on 2 cores: each process imports torch)
    python benchmarks/bad_inputs.py corpus     # only cases whose name contains 'corpus'
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bad_inputs import CASES, expand, write_fixtures  # noqa: E402
from tests.test_bad_inputs import snapshot  # noqa: E402


def outcome(status: int, stderr: str, created: bool, changed: bool) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    if changed:
        return "data-loss"
    if "Traceback" in stderr:
        return "traceback"
    if status == 0:
        return "silent"
    if status != 2 or len(lines) != 1 or created:
        return "noisy"
    return "clean"


def main() -> int:
    pattern = sys.argv[1] if len(sys.argv) > 1 else ""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    counts: collections.Counter[str] = collections.Counter()
    with tempfile.TemporaryDirectory() as root:
        places = write_fixtures(Path(root))
        print(f"{'case':40s} {'exit':>4s} {'s':>6s}  outcome    first line of stderr")
        for case in (case for case in CASES if pattern in case.name):
            work = Path(root) / "work"
            work.mkdir()
            before = snapshot(Path(places["fixtures"]).parent)
            clock = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "lizard_bench.cli", *expand(case.argv, places)],
                                    cwd=work, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - clock
            created = any(work.iterdir())
            changed = snapshot(Path(places["fixtures"]).parent) != before
            result_kind = outcome(result.returncode, result.stderr, created, changed)
            counts[result_kind] += 1
            first = (result.stderr.strip().splitlines() or [""])[-1 if result_kind == "traceback" else 0]
            print(f"{case.name:40s} {result.returncode:4d} {seconds:6.1f}  {result_kind:10s} {first[:110]}")
            shutil.rmtree(work)
    print("\n" + ", ".join(f"{kind}: {counts.get(kind, 0)}"
                           for kind in ("clean", "traceback", "silent", "noisy", "data-loss")))
    print(f"{sum(counts.values())} cases; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return 0 if counts["clean"] == sum(counts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
