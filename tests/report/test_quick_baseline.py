"""Regression gate: a fresh run of the quick suite must match the committed results/baseline-quick/.

The quick suite (configs/quick.yaml) scores the embedded teacher on a small slice of the
embedded corpus, so it runs in well under a minute and CI catches any change that moves the
numbers (model loading, kernels, tokenization, the perplexity task) past the default
tolerances. After an intended change, refresh the baseline as the README says.
"""

import pytest

from lizard_bench.config import load_config
from lizard_bench.report.compare import compare_runs
from tests.report.conftest import REPO

pytestmark = pytest.mark.slow

BASELINE = REPO / "results" / "baseline-quick"


def test_fresh_quick_run_matches_the_committed_baseline(tmp_path):
    from lizard_bench.runner import run_suite

    assert (BASELINE / "manifest.json").is_file(), "results/baseline-quick/ must be committed"
    config = load_config(REPO / "configs" / "quick.yaml", {"results_dir": str(tmp_path), "run_id": "fresh"})
    summary = run_suite(config)
    comparison = compare_runs(BASELINE, summary.run_dir)
    assert not comparison.failed, comparison.headline() + "\n" + comparison.text_table()
    assert comparison.counts()["ok"] == len(comparison.changes) >= 2
