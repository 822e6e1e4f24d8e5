"""A run made with --limit is labelled a smoke run in its report and on its leaderboard (FIXTURE records)."""

from lizard_bench.report.build import write_reports
from lizard_bench.results import Record, RunStore


def fixture_run(root, limit):
    store = RunStore(root / f"limit-{limit}")
    store.write_manifest({"run_id": store.run_dir.name, "config_hash": "fixture",
                          "config": {"name": "fixture", "limit": limit}})
    store.write_unit("m", "softmax", "corpus_perplexity", [
        Record(model="m", variant="softmax", task="corpus_perplexity", metric="perplexity", value=12.0,
               direction="lower", n=3, ci_low=11.0, ci_high=13.5)])
    return store.run_dir


def test_a_limited_run_is_labelled_a_smoke_run(tmp_path):
    written = write_reports([fixture_run(tmp_path, 2)], tmp_path / "report")
    report, page = written["report"].read_text(), written["leaderboard"].read_text()
    assert report.startswith("# lizard-bench report (smoke run)")
    assert "Smoke run: limit-2 (limit 2)" in report and "Smoke run: limit-2 (limit 2)" in page
    assert "leaderboard (smoke run)</h1>" in page


def test_a_full_run_is_not(tmp_path):
    written = write_reports([fixture_run(tmp_path, None)], tmp_path / "report")
    assert "smoke" not in written["report"].read_text().lower()
    assert "smoke" not in written["leaderboard"].read_text().lower()
