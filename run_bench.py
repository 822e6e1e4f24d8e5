"""Run the default lizard-bench suite (configs/default.yaml); flags are those of `lizard-bench run`."""

import sys

from lizard_bench.cli import run_default_suite

if __name__ == "__main__":
    sys.exit(run_default_suite())
