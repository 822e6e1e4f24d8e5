"""Does `lizard-bench compare` tell noise from change on a real run? Two changed copies of it, compared.

1. One prompt flipped: the first passkey prompt of VARIANT answered the other way, in every
   metric it counts in (its cell, its length, the overall score, its window split). A rerun
   could do that by chance; the check should list it as "within noise" and pass.
2. Every perplexity window of VARIANT 20 % worse (each window's mean NLL + ln 1.2): a real
   change however few windows there are; the check should fail on it.

The copies' records are recomputed from their changed items (``results/rescore.py``), as a
rerun would write them. Nothing under RUN is modified.

    python benchmarks/noise_or_change.py results/baseline --variant lizard_plus
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from lizard_bench.report.compare import compare_runs
from lizard_bench.results import RunStore
from lizard_bench.results.rescore import changed_copy, flip_first_prompt, perplexity_scaled


def moved_rows(comparison) -> str:
    """The comparison's headline and its rows that moved, as the CLI prints them."""
    table = comparison.text_table().splitlines()
    kept = table[:2] + [line for line in table[2:] if not line.startswith("ok ")]
    return "\n".join([comparison.headline(), *kept])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run directory with per-item outcomes (results/<run-id>)")
    parser.add_argument("--variant", default="lizard_plus", help="whose items are changed (default lizard_plus)")
    args = parser.parse_args(argv)
    model = RunStore(args.run).read_records()[0].model
    with tempfile.TemporaryDirectory() as scratch:
        cases = [("one passkey prompt flipped", "passkey", flip_first_prompt),
                 ("every perplexity window 20 % worse", "corpus_perplexity", perplexity_scaled(1.2))]
        for title, task, change in cases:
            copy = changed_copy(args.run, Path(scratch) / task, (model, args.variant, task), change)
            comparison = compare_runs(args.run, copy)
            print(f"## {title} ({args.variant}, {task}): exit status {1 if comparison.failed else 0}\n")
            print(moved_rows(comparison), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
