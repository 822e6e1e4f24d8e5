"""Nothing a user did before is lost: checkpoints, run directories and reports survive changes, retries and kills."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lizard_bench.cli import main
from lizard_bench.config import ConfigError, load_config
from lizard_bench.linearize.checkpoint import CheckpointError
from lizard_bench.linearize.pipeline import prepare_linearized
from lizard_bench.linearize.training.config import TrainConfig
from lizard_bench.preflight import preflight, selected_tasks
from lizard_bench.report import write_reports
from lizard_bench.report.build import STAGING_PREFIX
from lizard_bench.results import RunStore
from lizard_bench.runner import run_suite
from tests.test_bad_inputs import snapshot
from tests.tiny_models import character_tokenizer, save_tiny_llama, tiny_llama

TINY_TRAINING = {"seq_len": 32, "eval_windows": 1, "checkpoint_every": 0,
                 "stage1": {"steps": 2}, "stage2": {"steps": 2}}


@pytest.fixture
def corpus_file(tmp_path) -> Path:
    """A fixture corpus: 30 short documents of made-up text."""
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": f"document {i}: " + "the quick brown fox. " * 8}) + "\n"
                            for i in range(30)))
    return path


def lizard_suite(tmp_path: Path, model_dir: Path, corpus_file: Path, run_id: str, **changes):
    config = load_config(None, {
        "models": [str(model_dir)], "variants": ["lizard"], "corpus": str(corpus_file), "run_id": run_id,
        "results_dir": str(tmp_path / "results"), "perplexity.seq_len": 32, "perplexity.max_tokens": 128,
        "device": "cpu", **changes,
    })
    config.training = {**TINY_TRAINING, "corpus": str(corpus_file)}
    return config


def checkpoint_of(summary) -> Path:
    return Path(summary.records[0].provenance["variant"]["checkpoint_dir"])


def test_a_checkpoint_trained_on_base_a_survives_a_run_on_base_b_under_the_same_name(tmp_path, corpus_file):
    model_dir = save_tiny_llama(tmp_path / "model", seed=0)
    first = checkpoint_of(run_suite(lizard_suite(tmp_path, model_dir, corpus_file, "a")))
    before = snapshot(first)
    shutil.rmtree(model_dir)
    save_tiny_llama(model_dir, seed=1)  # other weights behind the same model name
    second = checkpoint_of(run_suite(lizard_suite(tmp_path, model_dir, corpus_file, "b")))
    assert second != first and second.parent == first.parent
    assert snapshot(first) == before, "base A's checkpoint is untouched"
    shutil.rmtree(model_dir)
    save_tiny_llama(model_dir, seed=0)
    again = run_suite(lizard_suite(tmp_path, model_dir, corpus_file, "c"))
    assert checkpoint_of(again) == first and again.records[0].provenance["variant"]["from_checkpoint"]


def test_bfloat16_trains_into_its_own_checkpoint_and_keeps_the_float32_one(tmp_path, corpus_file):
    model_dir = save_tiny_llama(tmp_path / "model")
    float32 = checkpoint_of(run_suite(lizard_suite(tmp_path, model_dir, corpus_file, "f32")))
    before = snapshot(float32)
    summary = run_suite(lizard_suite(tmp_path, model_dir, corpus_file, "bf16", dtype="bfloat16"))
    assert all(record.status == "ok" for record in summary.records), [r.reason for r in summary.records]
    assert checkpoint_of(summary) != float32
    assert snapshot(float32) == before, "the float32 checkpoint and its training logs are untouched"


def test_retrain_replaces_only_the_matching_checkpoint(tmp_path, corpus_file):
    model_dir = save_tiny_llama(tmp_path / "model")
    other = checkpoint_of(run_suite(lizard_suite(tmp_path, model_dir, corpus_file, "default-window")))
    config = lizard_suite(tmp_path, model_dir, corpus_file, "window-4")
    config.variant_options = {"lizard": {"window": 4}}
    matching = checkpoint_of(run_suite(config))
    other_files, matching_files = snapshot(other), snapshot(matching)
    config.run_id = "window-4-again"
    retrained = run_suite(config, retrain=True)
    assert checkpoint_of(retrained) == matching and not retrained.records[0].provenance["variant"]["from_checkpoint"]
    assert snapshot(matching) != matching_files, "the matching checkpoint was written again"
    assert snapshot(other) == other_files, "the other checkpoint is untouched"


def test_a_folder_holding_another_checkpoint_is_refused_not_replaced(tmp_path, corpus_file):
    train = TrainConfig.from_dict({**TINY_TRAINING, "corpus": str(corpus_file)}, where="test")
    folder = tmp_path / "ckpt"

    def prepare(window: int):
        return prepare_linearized(tiny_llama(), character_tokenizer(), model_name="tiny", method="lizard",
                                  options={"window": window}, train=train, corpus=None, checkpoint_dir=folder,
                                  log_dir=None, progress=False)

    prepare(4)
    before = snapshot(folder)
    with pytest.raises(CheckpointError, match="never replaced implicitly"):
        prepare(8)
    assert snapshot(folder) == before


def test_float16_training_is_refused_up_front(tmp_path, corpus_file):
    model_dir = save_tiny_llama(tmp_path / "model")
    with pytest.raises(ConfigError, match="float16"):
        preflight(lizard_suite(tmp_path, model_dir, corpus_file, "f16", dtype="float16"))


def test_a_run_id_whose_start_failed_can_be_used_again_with_other_settings(tmp_path, corpus_file):
    model_dir = save_tiny_llama(tmp_path / "model")
    config = lizard_suite(tmp_path, model_dir, corpus_file, "retry", variants=["softmax"])
    store = RunStore(tmp_path / "results" / "retry")
    store.write_manifest({"run_id": "retry", "config": {}, "config_hash": "another config"})  # a start that failed
    summary = run_suite(config)
    assert {r.status for r in summary.records} == {"ok"}
    assert store.read_manifest()["config_hash"] == config.config_hash()
    config.seed = 5  # now the directory holds records: other settings are refused
    with pytest.raises(ConfigError, match="different config"):
        run_suite(config)


def test_temporary_files_of_a_killed_write_are_removed_on_resume(tmp_path, corpus_file):
    model_dir = save_tiny_llama(tmp_path / "model")
    config = lizard_suite(tmp_path, model_dir, corpus_file, "tmp", variants=["softmax"])
    run_suite(config)
    leftover = tmp_path / "results" / "tmp" / "records" / "x" / ".unit.json.abc123.tmp"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("[")
    run_suite(config)
    assert not leftover.exists()


def test_a_report_killed_while_writing_leaves_the_previous_files_whole(tmp_path, corpus_file, monkeypatch):
    model_dir = save_tiny_llama(tmp_path / "model")
    run_dir = run_suite(lizard_suite(tmp_path, model_dir, corpus_file, "rep", variants=["softmax"])).run_dir
    out = tmp_path / "report"
    write_reports([run_dir], out)
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    import lizard_bench.report.build as build

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "write_leaderboard", killed)
    with pytest.raises(KeyboardInterrupt):
        write_reports([run_dir], out)
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
    monkeypatch.undo()
    (out / f"{STAGING_PREFIX}killed").mkdir()  # what a kill -9 leaves
    write_reports([run_dir], out)
    assert not list(out.glob(f"{STAGING_PREFIX}*"))


def test_any_task_subset_of_the_default_suite_is_accepted():
    """The default suite sets options for passkey, prefill, decode and memory; --task X picks one of them or none."""
    from lizard_bench.cli import default_suite_path

    for tasks in (["corpus_perplexity"], ["passkey"], ["prefill", "decode"], ["memory"]):
        config = load_config(default_suite_path(), {"tasks": tasks})
        assert [task.name for task in selected_tasks(config)] == tasks


def test_weights_that_fail_to_load_stop_the_run_with_one_line(tmp_path, corpus_file, monkeypatch, capsys):
    from safetensors import SafetensorError

    import lizard_bench.models.loading as loading

    model_dir = save_tiny_llama(tmp_path / "model")
    capsys.readouterr()  # saving the fixture prints progress bars

    def corrupt(*args, **kwargs):
        raise SafetensorError("Error while deserializing header: invalid tensor data")

    monkeypatch.setattr(loading.AutoModelForCausalLM, "from_pretrained", corrupt)
    status = main(["run", "--model", str(model_dir), "--variant", "softmax", "--task", "corpus_perplexity",
                   "--corpus", str(corpus_file), "--seq-len", "32", "--max-tokens", "128",
                   "--results-dir", str(tmp_path / "results"), "--device", "cpu"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and "unreadable weights" in lines[0], lines


def test_a_read_only_results_folder_is_one_line_before_any_work(tmp_path, corpus_file, monkeypatch, capsys):
    import os

    model_dir = save_tiny_llama(tmp_path / "model")
    capsys.readouterr()
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == read_only else real_access(path, mode))
    status = main(["run", "--model", str(model_dir), "--variant", "softmax", "--task", "corpus_perplexity",
                   "--corpus", str(corpus_file), "--results-dir", str(read_only / "results"), "--device", "cpu"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and "not writable" in lines[0], lines


def test_a_write_that_fails_mid_run_is_one_line(tmp_path, corpus_file, monkeypatch, capsys):
    import lizard_bench.results.store as store

    model_dir = save_tiny_llama(tmp_path / "model")
    capsys.readouterr()

    def full_disk(path, text):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(store, "atomic_write_text", full_disk)
    status = main(["run", "--model", str(model_dir), "--variant", "softmax", "--task", "corpus_perplexity",
                   "--corpus", str(corpus_file), "--results-dir", str(tmp_path / "results"), "--device", "cpu",
                   "--seq-len", "32", "--max-tokens", "128"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and "No space left" in lines[0], lines
