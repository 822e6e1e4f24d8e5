"""Bad input is refused before any work: exit 2, one line, no traceback, no run directory, no file changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lizard_bench.cli import main
from tests.bad_inputs import CASES, expand, write_fixtures


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    return write_fixtures(tmp_path_factory.mktemp("bad-inputs"))


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``roots`` with its size and modification time."""
    files = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                stat = path.stat()
                files[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return files


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case, places, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    fixtures_root = Path(places["fixtures"]).parent
    before = snapshot(fixtures_root)
    try:
        status = main(expand(case.argv, places))
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    captured = capsys.readouterr()
    error_lines = [line for line in captured.err.splitlines() if line.strip()]
    assert status == 2, f"exit status {status}; stderr: {captured.err[-2000:]}"
    assert len(error_lines) == 1, f"expected one line on stderr, got: {captured.err[-2000:]}"
    assert "Traceback" not in captured.err
    assert case.message in error_lines[0].lower(), error_lines[0]
    assert list(work.iterdir()) == [], "a refused command creates nothing (no run directory)"
    assert snapshot(fixtures_root) == before, "a refused command changes no file"


def test_the_battery_is_large_and_names_are_unique():
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


def test_a_missing_corpus_is_refused_before_the_model_loads(places, tmp_path, monkeypatch, capsys):
    """With lizard in the suite, the run used to load the model and train before reading the corpus."""
    import lizard_bench.runner as runner

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    status = main(["run", "--model", places["tiny"], "--variant", "lizard", "--corpus", "nope.txt", "--device", "cpu"])
    assert status == 2 and "does not exist" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_a_damaged_checkpoint_is_no_obstacle_to_retrain(places):
    """--retrain rebuilds the checkpoint, so preflight lets it through (the message tells users to pass it)."""
    from lizard_bench.config import load_config
    from lizard_bench.preflight import preflight

    fixtures = Path(places["fixtures"])
    config = load_config(fixtures / "checkpoint_suite.yaml", {
        "models": [places["tiny"]], "variants": ["lizard"], "corpus": places["corpus"], "device": "cpu",
        "results_dir": str(fixtures / "checkpoint_results"), "perplexity.seq_len": 32, "perplexity.max_tokens": 256})
    with pytest.raises(Exception, match="lizard.safetensors is truncated.*--retrain"):
        preflight(config)
    preflight(config, retrain=True)


def test_loading_a_damaged_checkpoint_is_an_input_error(places):
    """Past preflight (a checkpoint damaged mid-run, say) the load is one line too, not a SafetensorError."""
    from lizard_bench.linearize.checkpoint import CheckpointError, load_linearized
    from lizard_bench.models.loading import load_model

    loaded = load_model(places["tiny"], device="cpu", dtype="float32")
    with pytest.raises(CheckpointError, match="lizard.safetensors is truncated"):
        load_linearized(loaded.model, Path(places["checkpoint"]))


def test_log_samples_without_lm_eval_tasks_warns_naming_the_tasks():
    """The run is valid (exit 0), so a warning, not an error: which of its tasks write samples (none here)."""
    from lizard_bench.config import load_config
    from lizard_bench.preflight import check_settings, log_samples_warning, selected_tasks

    config = load_config(None, {"tasks": ["corpus_perplexity", "passkey"], "lm_eval.log_samples": True,
                                "device": "cpu"})
    warning = log_samples_warning(config, selected_tasks(config))
    assert warning is not None and "--log-samples" in warning and "lm-eval" in warning
    assert "corpus_perplexity" in warning and "passkey" in warning and "\n" not in warning
    assert check_settings(config).warnings == [warning]
    assert log_samples_warning(load_config(None, {"tasks": ["corpus_perplexity"]}), selected_tasks(config)) is None
    with_copa = load_config(None, {"tasks": ["corpus_perplexity", "copa"], "lm_eval.log_samples": True})
    assert log_samples_warning(with_copa, selected_tasks(with_copa)) is None


def test_dry_run_shows_the_log_samples_warning(places, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["run", "--model", places["tiny"], "--corpus", places["corpus"], "--task", "corpus_perplexity,passkey",
          "--seq-len", "32", "--max-tokens", "256", "--device", "cpu", "--log-samples", "--dry-run"])
    assert "--log-samples" in capsys.readouterr().out


def test_a_rope_model_beyond_its_trained_positions_is_a_warning(places):
    """Learned absolute positions are a hard limit (refused); RoPE's max_position_embeddings only a training length."""
    from lizard_bench.config import ConfigError
    from lizard_bench.models.inspect import inspect_model
    from lizard_bench.models.locate import locate_model
    from lizard_bench.preflight import check_model

    tiny = inspect_model(locate_model(places["tiny"]))
    assert tiny.max_positions is None and tiny.trained_positions == 512
    assert check_model("tiny", tiny, linearize=False, lengths={"perplexity.seq_len": 512}) == []
    warnings = check_model("tiny", tiny, linearize=False, lengths={"perplexity.seq_len": 1024, "passkey.lengths": 4096})
    assert len(warnings) == 1 and "512 positions" in warnings[0] and "perplexity.seq_len" in warnings[0]
    with pytest.raises(ConfigError, match="64 positions"):
        check_model("gpt2", inspect_model(locate_model(places["gpt2"])), linearize=False,
                    lengths={"perplexity.seq_len": 100})


@pytest.mark.parametrize("options, lengths", [
    ({}, {"perplexity.seq_len": 32, "training.seq_len": 32}),  # the default window alone covers short test inputs
    ({"num_anchors": 4}, {"perplexity.seq_len": 512, "training.seq_len": 2048}),  # lizard_plus-like, long inputs
    ({"window": 16, "num_anchors": 100000}, {"perplexity.seq_len": 32, "training.seq_len": 200_000}),
    ({"window": 16, "num_anchors": 100000, "linear_branch": False, "combine": "separate"},
     {"perplexity.seq_len": 32, "training.seq_len": 512}),  # no linear branch: a softmax layer by design
])
def test_anchors_that_do_not_cover_every_input_are_accepted(options, lengths):
    from lizard_bench.config import SuiteConfig
    from lizard_bench.preflight import check_anchor_coverage
    from lizard_bench.variants import resolve_variant

    spec = resolve_variant("lizard", SuiteConfig(variants=["lizard"], variant_options={"lizard": options}))
    check_anchor_coverage(spec, lengths)


def test_a_run_manifest_of_another_shape_is_refused(tmp_path):
    from lizard_bench.results import RunStore
    from lizard_bench.results.store import RecordError

    for content in ('{"hello": [1, 2, 3]}', "[1, 2]", '"text"'):
        (tmp_path / "manifest.json").write_text(content)
        with pytest.raises(RecordError, match="manifest.json is not a lizard-bench manifest"):
            RunStore(tmp_path).read_manifest()
