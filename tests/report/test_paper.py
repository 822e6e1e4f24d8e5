"""The packaged paper numbers and the "paper vs this run" table."""

import pytest

from lizard_bench.report.loading import records_frame
from lizard_bench.report.paper import paper_model, paper_row, paper_tables, paper_vs_run_table
from lizard_bench.report.runs import read_runs
from tests.report.fixtures import FIXTURE_MODEL, write_fixture_run

# The paper's Table 1 (v4), as published, checked against the packaged data file.
PAPER_TABLE = {
    "LLaMA-3-8B": (79.9, 80.1, 53.3, 79.1, 73.1, 66.6),
    "LLaMA-3-8B-Lizard": (82.0, 83.5, 56.7, 79.3, 71.7, 61.2),
    "LLaMA-3-8B-LoLCATs": (80.9, 81.7, 54.9, 79.7, 74.1, 52.8),
    "Mistral-7B": (82.1, 80.9, 53.8, 81.0, 74.0, 62.4),
    "Mistral-7B-Lizard": (81.8, 83.2, 55.8, 79.8, 72.0, 60.8),
    "Llama-3.2-1B": (74.1, 65.4, 36.4, 63.8, 60.0, 31.0),
    "Llama-3.2-1B-Lizard": (74.8, 65.6, 36.5, 64.1, 59.7, 29.8),
}


def test_packaged_numbers_match_the_published_table():
    tables = paper_tables().set_index("model")
    assert len(tables) == 25
    for model, values in PAPER_TABLE.items():
        row = tables.loc[model, ["piqa", "arc_easy", "arc_challenge", "hellaswag", "winogrande", "mmlu"]]
        assert tuple(row) == pytest.approx(values), model
    assert tables.loc["RWKV-6-v2.1-7B", "mmlu"] != tables.loc["RWKV-6-v2.1-7B", "mmlu"]  # not reported: NaN


@pytest.mark.parametrize(("model", "expected"), [
    ("meta-llama/Meta-Llama-3-8B", "LLaMA-3-8B"),
    ("unsloth/Llama-3.2-1B", "Llama-3.2-1B"),
    ("meta-llama/Llama-3.2-3B", "Llama-3.2-3B"),
    ("mistralai/Mistral-7B-v0.1", "Mistral-7B"),
    ("/models/llama-3.2-1b/", "Llama-3.2-1B"),
    ("meta-llama/Llama-3.2-1B-Instruct", None),  # the paper's teachers are base models
    ("smollm2-135m", None),
])
def test_model_aliases(model, expected):
    assert paper_model(model) == expected


def test_variants_map_to_paper_rows():
    assert paper_row("meta-llama/Meta-Llama-3-8B", "softmax")["model"] == "LLaMA-3-8B"
    assert paper_row("meta-llama/Meta-Llama-3-8B", "lizard")["mmlu"] == pytest.approx(61.2)
    assert paper_row("mistralai/Mistral-7B-v0.1", "lolcats")["model"] == "Mistral-7B-LoLCATs"
    assert paper_row("meta-llama/Llama-3.2-3B", "lolcats") is None  # not published
    assert paper_row("unsloth/Llama-3.2-1B", "some-ablation") is None


def test_paper_vs_run_table(fixture_run):
    table = paper_vs_run_table(records_frame(read_runs([fixture_run])))
    display = table.display
    assert len(display) == 18  # 3 variants x 6 tasks, all published for Llama-3.2-1B
    lizard_arc = display[(display["variant"] == "lizard") & (display["task"] == "ARC-c")].iloc[0]
    assert (lizard_arc["metric"], lizard_arc["paper (%)"], lizard_arc["this run (%)"]) == ("acc_norm", "36.5", "36.5")
    assert lizard_arc["Δ (points)"] == "+0.0"
    failed = display[(display["variant"] == "lolcats") & (display["task"] == "MMLU")].iloc[0]
    assert (failed["paper (%)"], failed["this run (%)"], failed["Δ (points)"]) == ("27.3", "error", "—")
    assert FIXTURE_MODEL in set(display["model"])


def test_no_table_without_a_published_match(tmp_path):
    run = write_fixture_run(tmp_path, "r", variants=("softmax",), with_training=False)
    frame = records_frame(read_runs([run]))
    assert paper_vs_run_table(frame.assign(model="smollm2-135m")) is None
