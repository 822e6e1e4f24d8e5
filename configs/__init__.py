"""Suite and training configs shipped with lizard-bench (installed as the ``lizard_bench_configs`` package)."""
