"""The long-context tasks end to end: record naming, scores that can be 1 and 0, unavailable lengths."""

import json
import math
import re

import pytest
import torch

from lizard_bench.config import load_config
from lizard_bench.linearize import linearize
from lizard_bench.long_context import plan_windows, token_nll
from lizard_bench.results import Record
from lizard_bench.runner import run_suite
from lizard_bench.tasks import OptionError, get_task
from tests.long_context.helpers import (
    AnsweringModel,
    fused_character_tokenizer,
    make_context,
    make_handle,
    needle_in,
    passkey_in,
    value_in,
)
from tests.tiny_models import save_tiny_llama, tiny_llama

PASSKEY_OPTIONS = {"lengths": [192, 256], "depths": [0.0, 0.5, 1.0], "trials": 2}
NEEDLE_OPTIONS = {"lengths": [320, 448], "depths": [0.0, 1.0], "trials": 2}
ASSOC_OPTIONS = {"pairs": [2, 5], "trials": 3}


def run(task_name, model, options, **context_args):
    tokenizer = fused_character_tokenizer()
    model = model(tokenizer) if callable(model) and not isinstance(model, torch.nn.Module) else model
    handle = make_handle(model, tokenizer)
    values = get_task(task_name).run(handle, make_context({task_name: options}, **context_args))
    return {v.metric: v for v in values}, model


def run_with_items(task_name, model, options, run_dir):
    """The task's values and the per-item rows it kept in ``run_dir``, by item name."""
    values, _ = run(task_name, model, options, run_dir=run_dir)
    (path,) = run_dir.glob(f"samples/*/*/{task_name}.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return values, {row["item"]: row for row in rows}


def test_passkey_records_are_named_by_length_and_depth_with_details():
    values, _ = run("passkey", tiny_llama(), {**PASSKEY_OPTIONS, "trials": 1})
    expected_cells = {f"exact_match@{length}:{depth:g}" for length in (192, 256) for depth in (0.0, 0.5, 1.0)}
    splits = set(values) - {"exact_match", "exact_match@192", "exact_match@256"} - expected_cells
    for length in (192, 256):  # every passkey counts once, within its window (128 tokens) or beyond it
        parts = [values[name] for name in splits if name.endswith(f"_window@{length}")]
        assert parts and sum(part.details["trials"] for part in parts) == 3
    cell = values["exact_match@256:0.5"]
    assert cell.details["context_length"] == 256 and cell.details["depth"] == 0.5 and cell.details["trials"] == 1
    assert cell.details["prompt_tokens_min"] == cell.details["prompt_tokens_max"] == 256
    assert values["exact_match@192"].details["context_length"] == 192
    assert values["exact_match"].details["trials"] == 6
    for value in values.values():
        assert 0.0 <= value.value <= 1.0 and value.status == "ok"
        Record(model="m", variant="v", task="passkey", metric=value.metric, value=value.value, stderr=value.stderr,
               details=value.details).validate()


@pytest.mark.parametrize(("task_name", "options", "answer_of"), [
    ("passkey", PASSKEY_OPTIONS, passkey_in),
    ("needle", NEEDLE_OPTIONS, needle_in),
    ("assoc_recall", ASSOC_OPTIONS, value_in),
])
def test_a_model_that_knows_the_answer_scores_1_and_one_that_does_not_scores_0(task_name, options, answer_of):
    right, model = run(task_name, lambda tok: AnsweringModel(tok, answer_of), options)
    wrong, _ = run(task_name, lambda tok: AnsweringModel(tok, lambda prompt: "0"), options)
    assert set(right) == set(wrong)
    assert all(v.value == 1.0 for v in right.values()), {k: v.value for k, v in right.items()}
    assert all(v.value == 0.0 for v in wrong.values())
    if task_name == "passkey":
        assert set(model.prompt_lengths) == {192, 256}


def test_limit_caps_trials_per_cell():
    values, model = run("passkey", lambda tok: AnsweringModel(tok, passkey_in), PASSKEY_OPTIONS, limit=1)
    assert values["exact_match@192:0"].details["trials"] == 1
    assert len(model.prompt_lengths) == 6


def test_assoc_recall_with_lengths_reports_cells_and_pair_counts():
    options = {**ASSOC_OPTIONS, "lengths": [300, 400], "trials": 1}
    values, model = run("assoc_recall", lambda tok: AnsweringModel(tok, value_in), options)
    assert set(values) == {"exact_match", "exact_match@2pairs", "exact_match@5pairs", "exact_match@300:2pairs",
                           "exact_match@400:2pairs", "exact_match@300:5pairs", "exact_match@400:5pairs"}
    cell = values["exact_match@400:5pairs"].details
    assert (cell["pairs"], cell["context_length"], cell["trials"]) == (5, 400, 1)
    assert sorted(model.prompt_lengths) == [300, 300, 400, 400]


def test_passkey_runs_on_a_linearized_model_with_its_constant_size_cache():
    model = tiny_llama(seed=3)
    linearize(model, "lizard", window=16)
    values, _ = run("passkey", model.eval(), {**PASSKEY_OPTIONS, "lengths": [192], "depths": [0.5], "trials": 1})
    assert set(values) == {"exact_match", "exact_match@192", "exact_match@192:0.5", "exact_match_beyond_window@192"}
    assert values["exact_match_beyond_window@192"].details["window"] == 16  # the variant's own window


def test_passkeys_split_by_distance_from_the_end_against_the_window():
    """Depth 1 puts the passkey just before the question (inside a 150-token window), depth 0 far before it."""
    options = {"lengths": [256], "depths": [0.0, 1.0], "trials": 2, "window": 150}

    def only_near(prompt: str) -> str:  # one character is one token: answers only what the window sees
        found = re.search(r"The pass key is (\d+)\.", prompt[-150:])
        return found.group(1) if found else "0"

    values, _ = run("passkey", lambda tok: AnsweringModel(tok, only_near), options)
    within, beyond = values["exact_match_within_window@256"], values["exact_match_beyond_window@256"]
    assert within.details["trials"] == beyond.details["trials"] == 2 and within.details["window"] == 150
    assert within.value == 1.0 and beyond.value == 0.0


def test_wrong_option_values_fail_before_any_generation():
    with pytest.raises(OptionError, match="passkey.depths"):
        run("passkey", tiny_llama(), {"depths": [50]})
    with pytest.raises(OptionError, match="needle.haystack_splits"):
        run("needle", tiny_llama(), {"haystack_splits": ["test"]})


def test_length_extrapolation_scores_fitting_lengths_and_marks_longer_ones_unavailable(tmp_path):
    options = {"lengths": [64, 128, 1_000_000], "tail_tokens": 16, "windows": 3}
    values, items = run_with_items("length_extrapolation", tiny_llama(), options, tmp_path)
    assert set(values) == {"perplexity@64", "perplexity@128", "perplexity@1000000",
                           "context_gain@128", "context_gain@1000000"}  # 512 is not swept: 64 is the reference
    for length in (64, 128):
        value = values[f"perplexity@{length}"]
        assert value.status == "ok" and math.isfinite(value.value) and value.value > 1
        assert value.details["context_length"] == length and value.details["windows"] == 3
        assert value.details["scored_tokens_per_window"] == 16
        assert value.n == 3 and [len(row["token_nll"][str(length)]) for row in items.values()] == [16] * 3
        assert value.interval[0] < value.value < value.interval[1]
    for name in ("perplexity@1000000", "context_gain@1000000"):
        too_long = values[name]
        assert too_long.status == "unavailable" and too_long.value is None and "fewer than 1000000" in too_long.reason
    assert get_task("length_extrapolation").metrics == {"context_gain": "lower", "perplexity": "lower"}
    assert get_task("length_extrapolation").headline_metric == "context_gain"


def test_context_gain_is_the_ratio_of_the_perplexities_on_the_same_targets():
    options = {"lengths": [64, 128, 192], "tail_tokens": 16, "windows": 3, "reference_length": 128}
    values, _ = run("length_extrapolation", tiny_llama(seed=1), options)
    assert set(values) == {"perplexity@64", "perplexity@128", "perplexity@192", "context_gain@64", "context_gain@192"}
    reference = values["perplexity@128"].details["nll"]
    for length in (64, 192):
        gain = values[f"context_gain@{length}"]
        assert gain.value == pytest.approx(math.exp(values[f"perplexity@{length}"].details["nll"] - reference))
        assert gain.value == pytest.approx(values[f"perplexity@{length}"].value / values["perplexity@128"].value)
        details = gain.details
        assert (details["reference_length"], details["n_tokens"], details["n_windows"]) == (128, 48, 3)
        assert gain.interval[0] < gain.value < gain.interval[1] and gain.stderr > 0 and gain.n == 3
        assert details["token_ci_low"] < gain.value < details["token_ci_high"]
        assert details["mean_nll_difference_stderr"] > 0 and details["window_stderr"] > 0
        Record(model="m", variant="v", task="length_extrapolation", metric=gain.metric, value=gain.value,
               stderr=gain.stderr, details=details, direction="lower").validate()


def test_without_a_tail_context_gain_pairs_the_final_targets_both_lengths_scored(tmp_path):
    options = {"lengths": [32, 64], "tail_tokens": None, "windows": 2}
    values, items = run_with_items("length_extrapolation", tiny_llama(seed=2), options, tmp_path)
    short, long = ([row["token_nll"][str(n)] for row in items.values()] for n in (32, 64))
    differences = [a - b for longer, shorter in zip(long, short, strict=True)
                   for a, b in zip(longer[-31:], shorter, strict=True)]
    gain = values["context_gain@64"]
    assert gain.details["n_tokens"] == len(differences) == 2 * 31
    assert gain.value == pytest.approx(math.exp(sum(differences) / len(differences)), rel=1e-4)  # records round


def test_a_reference_length_outside_the_lengths_is_refused():
    with pytest.raises(OptionError, match="reference_length must be one of the lengths"):
        run("length_extrapolation", tiny_llama(), {"lengths": [64, 128], "reference_length": 100})


def test_a_cell_of_two_misses_shows_its_wilson_interval():
    values, _ = run("passkey", lambda tok: AnsweringModel(tok, lambda prompt: "0"), PASSKEY_OPTIONS)
    cell = values["exact_match@192:0"]
    assert cell.value == 0.0 and cell.details["trials"] == 2
    assert cell.interval == pytest.approx((0.0, 0.658), abs=5e-4) and cell.n == 2


def test_windows_of_every_length_end_at_the_same_tokens():
    plan = plan_windows(available=1000, lengths=[64, 256, 5000], tail=32, windows=4)
    assert plan.ends == [256, 288, 320, 352]
    assert [plan.window(end, 64)[1] for end in plan.ends] == plan.ends
    assert plan_windows(available=100, lengths=[64], tail=32, windows=9).ends == [64, 96]
    assert plan_windows(available=10, lengths=[64], tail=32, windows=9).ends == []


def test_tail_nll_equals_the_same_positions_of_a_full_window():
    model = tiny_llama(seed=5)
    ids = torch.randint(2, 90, (2, 40), generator=torch.Generator().manual_seed(0))
    full = token_nll(model, ids)
    assert full.shape == (2, 39)
    torch.testing.assert_close(token_nll(model, ids, scored=10), full[:, -10:], atol=1e-5, rtol=1e-5)


def test_the_runner_records_probe_points_with_their_directions(tmp_path):
    model_dir = save_tiny_llama(tmp_path / "model")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"id": f"d{i}", "text": "the quick brown fox jumps. " * 20})
                                for i in range(30)) + "\n")
    config = load_config(None, {
        "models": [str(model_dir)], "corpus": str(corpus), "results_dir": str(tmp_path / "results"), "run_id": "r",
        "device": "cpu", "tasks": ["passkey", "length_extrapolation"],
        "task_options": {"passkey": {"lengths": [192], "depths": [0.5], "trials": 1},
                         "length_extrapolation": {"lengths": [64, 100000], "tail_tokens": 16, "windows": 1}},
    })
    records = {(r.task, r.metric): r for r in run_suite(config).records}
    assert records["passkey", "exact_match@192:0.5"].status == "ok"
    assert records["passkey", "exact_match@192:0.5"].direction == "higher"
    split = [r for (task, metric), r in records.items() if task == "passkey" and "_window@192" in metric]
    assert len(split) == 1 and split[0].status == "ok" and split[0].direction == "higher"
    assert records["length_extrapolation", "perplexity@64"].direction == "lower"
    assert records["length_extrapolation", "perplexity@100000"].status == "unavailable"
    gain = records["length_extrapolation", "context_gain@100000"]
    assert gain.status == "unavailable" and gain.direction == "lower" and gain.headline
