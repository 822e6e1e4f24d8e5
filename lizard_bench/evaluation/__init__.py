"""The bridge to lm-evaluation-harness: a model wrapper, task plugins' machinery, local data, export.

- :mod:`lm` — ``LizardLM``, lm-eval's model interface over any variant, in length-sorted padded batches;
- :mod:`catalog` — which lm-eval tasks run, their suites and the paper's metrics;
- :mod:`definitions`, :mod:`data_sources`, :mod:`task_configs` — where the data comes from and
  the generated task configs that point lm-eval's definitions at it;
- :mod:`harness` — one task through ``lm_eval.evaluator.evaluate`` into metric values;
- :mod:`export` and :mod:`commands` — ``lizard-bench export-data`` for offline machines.

Nothing here imports lm-eval at package import, so listing tasks stays fast.
"""
