"""Suite config: YAML parsing, CLI overrides, and errors that name file, line and key."""

from pathlib import Path

import pytest

from lizard_bench.config import ConfigError, SuiteConfig, load_config

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_default_suite_compares_teacher_lizard_extension_and_lolcats_and_is_the_cli_default():
    from lizard_bench.cli import default_suite_path

    assert default_suite_path().resolve() == (REPO / "configs" / "default.yaml").resolve()
    config = load_config(default_suite_path())
    assert config.variants == ["softmax", "swa", "swa_equal_memory", "swa_lora", "lizard", "lizard_plus", "lolcats"]
    assert config.models == ["smollm2-135m"]
    assert {"corpus_perplexity", "length_extrapolation", "passkey", "prefill", "decode", "memory"} <= set(config.tasks)
    # at least 10 passkey prompts per length beyond the window, at 1K and 2K
    passkey = config.task_options["passkey"]
    assert passkey["lengths"] == [1024, 2048] and len(passkey["depths"]) * passkey["trials"] >= 10
    # quality and long-range metrics on every variant (controls included), efficiency on the teacher and the best
    quality = ("corpus_perplexity", "length_extrapolation", "passkey")
    assert all(config.runs(task, variant) for task in quality for variant in config.variants)
    assert [v for v in config.variants if config.runs("decode", v)] == ["softmax", "lizard_plus"]


def test_yaml_values_are_applied(tmp_path):
    config = load_config(write(tmp_path, "models: [a/b, c]\nseed: 7\nperplexity:\n  seq_len: 64\n  max_tokens: 640\n"))
    assert config.models == ["a/b", "c"]
    assert config.seed == 7
    assert (config.perplexity.seq_len, config.perplexity.max_tokens) == (64, 640)
    assert config.perplexity.batch_size == SuiteConfig().perplexity.batch_size


def test_cli_overrides_win_and_none_is_ignored(tmp_path):
    path = write(tmp_path, "seed: 7\nlimit: 3\n")
    config = load_config(path, {"seed": 11, "limit": None, "perplexity.seq_len": 32, "tasks": ["x"]})
    assert (config.seed, config.limit, config.perplexity.seq_len, config.tasks) == (11, 3, 32, ["x"])


def test_unknown_key_names_file_line_and_key(tmp_path):
    path = write(tmp_path, "seed: 1\n\nlimt: 5\n")
    with pytest.raises(ConfigError, match=r"suite\.yaml:3: unknown key 'limt'"):
        load_config(path)


def test_unknown_nested_key_is_qualified(tmp_path):
    path = write(tmp_path, "perplexity:\n  seq_len: 64\n  windw: 3\n")
    with pytest.raises(ConfigError, match=r":3: unknown key 'perplexity\.windw'"):
        load_config(path)


def test_malformed_yaml_names_line(tmp_path):
    path = write(tmp_path, "seed: 1\nmodels: [a, b\ntasks: x\n")
    with pytest.raises(ConfigError, match=r"suite\.yaml:\d+: malformed YAML"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed: abc\n", "'seed' must be an integer"),
        ("limit: 0\n", "'limit' must be a positive integer"),
        ("models: []\n", "'models' must name at least one"),
        ("dtype: float64\n", "'dtype' must be"),
        ("- a\n- b\n", "top level must be a mapping"),
    ],
)
def test_bad_values_are_rejected(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_unknown_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'perplexity.nope'"):
        load_config(None, {"perplexity.nope": 1})
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_config_hash_ignores_output_location_only():
    base = SuiteConfig()
    moved = SuiteConfig(results_dir="elsewhere", run_id="x")
    reseeded = SuiteConfig(seed=1)
    assert base.config_hash() == moved.config_hash()
    assert base.config_hash() != reseeded.config_hash()


def test_task_options_must_be_mappings(tmp_path):
    config = load_config(write(tmp_path, "task_options:\n  passkey:\n    lengths: [1024]\n"))
    assert config.task_options == {"passkey": {"lengths": [1024]}}
    with pytest.raises(ConfigError, match="'task_options.passkey' must be a mapping"):
        load_config(write(tmp_path, "task_options:\n  passkey: 3\n"))


def test_a_relative_include_path_is_recorded_absolute(tmp_path, monkeypatch):
    tasks = tmp_path / "my-tasks"
    tasks.mkdir()
    monkeypatch.chdir(tasks)
    from_flag = load_config(None, {"lm_eval_include_path": "."})
    from_yaml = load_config(write(tmp_path, "lm_eval_include_path: ../my-tasks\n"))
    assert from_flag.lm_eval_include_path == from_yaml.lm_eval_include_path == str(tasks.resolve())
    assert from_flag.to_dict()["lm_eval_include_path"] == str(tasks.resolve())  # what the manifest keeps
    assert load_config(None).lm_eval_include_path is None
