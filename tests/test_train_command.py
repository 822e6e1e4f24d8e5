"""``lizard-bench train``: builds a suite's linearized variants without evaluating; ``run`` then reuses them."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from lizard_bench.cli import main
from lizard_bench.results import RunStore
from tests.tiny_models import save_tiny_llama


@pytest.fixture
def suite_file(tmp_path):
    """A suite on a tiny saved model and a fixture corpus (30 made-up documents), with a 2+2-step recipe."""
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"id": f"d{i}", "text": f"document {i}: " + "the quick brown fox. " * 8} for i in range(30)]
    corpus.write_text("".join(json.dumps(row) + "\n" for row in rows))
    suite = {
        "models": [str(save_tiny_llama(tmp_path / "tiny"))], "variants": ["softmax", "lizard"],
        "tasks": ["corpus_perplexity"], "corpus": str(corpus), "device": "cpu", "results_dir": str(tmp_path / "res"),
        "perplexity": {"seq_len": 32, "max_tokens": 64},
        "training": {"corpus": str(corpus), "seq_len": 32, "eval_windows": 1, "checkpoint_every": 0,
                     "stage1": {"steps": 2}, "stage2": {"steps": 2}},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_train_builds_checkpoints_that_run_reuses(suite_file, tmp_path, capsys):
    assert main(["train", "--config", str(suite_file)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and " lizard  trained  " in out[0] and "stage1 attention_mse" in out[0], out
    checkpoint = tmp_path / "res" / "checkpoints"
    assert len(list(checkpoint.rglob("manifest.json"))) == 1

    assert main(["train", "--config", str(suite_file)]) == 0  # nothing left to train
    assert " lizard  reused  " in capsys.readouterr().out

    assert main(["run", "--config", str(suite_file), "--run-id", "after-train"]) == 0
    records = RunStore(tmp_path / "res" / "after-train").read_records()
    lizard = [r for r in records if r.variant == "lizard"]
    assert lizard and all(r.status == "ok" and r.provenance["variant"]["from_checkpoint"] for r in lizard)


def test_train_without_a_linearized_variant_is_a_one_line_error(suite_file, capsys):
    assert main(["train", "--config", str(suite_file), "--variant", "softmax"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nothing to train" in err


def test_run_refuses_to_evaluate_in_several_processes(suite_file, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["run", "--config", str(suite_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "lizard_bench.cli train" in err


def test_train_under_torchrun_uses_both_processes(suite_file, tmp_path):
    """The real entry point, two CPU processes (accelerate launch runs one process on CPUs; torchrun runs two)."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "lizard_bench.cli", "train", "--config", str(suite_file)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count(" lizard  trained  ") == 1  # one table, from the main process
    manifest = json.loads(next((tmp_path / "res" / "checkpoints").rglob("manifest.json")).read_text())
    assert manifest["summary"]["stages"]["stage2"]["tokens"] == 2 * 2 * 32  # 2 steps x 2 processes x 32 tokens
