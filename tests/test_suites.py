"""Every shipped suite loads by name and plans offline (`--dry-run`), so none can rot unnoticed."""

from __future__ import annotations

from pathlib import Path

import pytest

from lizard_bench.cli import main
from lizard_bench.config import ConfigError, load_config, resolve_suite, shipped_suites
from lizard_bench.plan import plan_run
from lizard_bench.variants import resolve_variant
from tests.tiny_models import save_tiny_llama

REPO = Path(__file__).resolve().parent.parent
SUITES = sorted(shipped_suites())
EXPECTED = {"default", "quick", "paper-table9", "paper-table1", "paper-ablations", "glue", "superglue",
            "long-context", "leaderboard"}


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory) -> str:
    """A tiny random Llama standing in for the suites' hub models (which this machine cannot download)."""
    return str(save_tiny_llama(tmp_path_factory.mktemp("stand-in")))


def test_the_issue_s_suites_are_shipped_with_a_header():
    assert EXPECTED <= set(SUITES)
    for name in SUITES:
        text = resolve_suite(name).read_text()
        assert text.startswith("#"), f"{name} has no header saying what it is for"


@pytest.mark.parametrize("name", SUITES)
def test_every_shipped_suite_plans_offline_with_stand_in_models(name, stand_in, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = load_config(name, {"models": [stand_in], "results_dir": str(tmp_path / "results")})
    plan = plan_run(config)
    assert plan.units, f"{name} plans no unit"
    assert {unit.model for unit in plan.units} == {stand_in}
    assert all(status.startswith("ok") for status in plan.models.values()), plan.models
    assert any("total" in line for line in plan.estimate)
    stored = [v for v in config.variants if v != "softmax" and resolve_variant(v, config).train_stages != ()]
    assert [variant for _, variant, _ in plan.checkpoints] == stored, "swa trains nothing and stores nothing"
    assert all(found is None for *_, found in plan.checkpoints)
    # data that needs the hub is reported missing offline (and only that)
    for unit in plan.units:
        assert unit.available or "offline" in unit.data, unit
    assert not list(tmp_path.iterdir()), "a plan writes nothing"


def test_dry_run_exits_1_when_something_is_missing_and_0_when_not(stand_in, tmp_path, capsys):
    results = str(tmp_path / "results")
    assert main(["run", "--config", "glue", "--model", stand_in, "--dry-run", "--results-dir", results]) == 1
    assert "missing (9)" in capsys.readouterr().out
    assert main(["run", "--config", "glue", "--model", stand_in, "--dry-run", "--results-dir", results,
                 "--data-dir", "tests/fixtures/task_data"]) == 0
    out = capsys.readouterr().out
    assert "nothing missing" in out and "will be trained" in out and "stage1: 80 optimizer steps" in out
    assert not (tmp_path / "results").exists()


def test_a_suite_names_a_training_recipe_and_overrides_a_few_fields():
    from lizard_bench.variants import training_config

    config = load_config("paper-table9", {})
    config.training = {"stage1": {"tokens": 1000}}
    train = training_config(config)
    assert train.stage1.tokens == 1000 and train.stage1.lr == 1e-3  # the recipe's lr kept
    assert train.corpus == "hf:yahma/alpaca-cleaned" and train.seq_len == 2048


@pytest.mark.parametrize("recipe", ["train_paper", "configs/train_paper.yaml"])
def test_training_may_name_a_recipe_file(tmp_path, recipe, monkeypatch):
    from lizard_bench.variants import training_config

    monkeypatch.chdir(REPO)
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"training: {recipe}\n")
    config = load_config(suite)
    assert (config.training_recipe, config.training) == (recipe, {})
    assert training_config(config).corpus == "hf:yahma/alpaca-cleaned"
    suite.write_text(f"training: {recipe}\ntraining_recipe: train_cpu\n")
    with pytest.raises(ConfigError, match="keep one"):
        load_config(suite)
    suite.write_text("training: 5\n")
    with pytest.raises(ConfigError, match=r"suite\.yaml:1: 'training' must be a mapping or a string, got 5"):
        load_config(suite)


def test_a_model_not_downloaded_gets_its_size_from_its_name():
    from lizard_bench.plan import size_from_name

    assert size_from_name("meta-llama/Llama-3.2-1B") == 1e9
    assert size_from_name("Qwen/Qwen2.5-0.5B-Instruct") == 5e8
    assert size_from_name("HuggingFaceTB/SmolLM2-360M-Instruct") == 3.6e8
    assert size_from_name("gpt2") is None
