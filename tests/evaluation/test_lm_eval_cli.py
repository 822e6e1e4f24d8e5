"""lm-eval's own CLI on a saved model directory scores exactly as lizard-bench's bridge (LizardLM).

``lm_eval --model hf --model_args pretrained=DIR,trust_remote_code=True`` runs as a subprocess,
offline, with batch size 1, on the fixture task of tests/fixtures/lm_eval_task; the bridge
runs the same task in this process on the in-memory model the directory was saved from. Both
the accuracy and every per-choice log-likelihood must agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager

from lizard_bench.evaluation.lm import LizardLM
from lizard_bench.models.kernel_attention import use_kernel_attention
from tests.tiny_models import character_tokenizer, linearized_tiny_llama, tiny_llama

TASK_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "lm_eval_task"
TASK = "lizard_fixture_choice"


def cli_scores(directory: Path, output: Path, home: Path) -> tuple[float, list[list[float]]]:
    """Run lm-eval's CLI on ``directory``: (accuracy, per document the log-likelihood of each choice)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false")
    command = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
               f"pretrained={directory},trust_remote_code=True,dtype=float32", "--tasks", TASK,
               "--include_path", str(TASK_DIR), "--batch_size", "1", "--device", "cpu",
               "--output_path", str(output), "--log_samples"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=TASK_DIR, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(next(output.rglob("results_*.json")).read_text())
    samples = [json.loads(line) for line in next(output.rglob(f"samples_{TASK}_*.jsonl")).read_text().splitlines()]
    return results["results"][TASK]["acc,none"], per_choice(samples)


def bridge_scores(model: torch.nn.Module, monkeypatch) -> tuple[float, list[list[float]]]:
    monkeypatch.chdir(TASK_DIR)  # the task's data_files path is relative
    lm = LizardLM(model, character_tokenizer(), "cpu", progress=False)
    out = simple_evaluate(model=lm, tasks=[TASK], task_manager=TaskManager(include_path=str(TASK_DIR)),
                          log_samples=True, bootstrap_iters=0)
    return out["results"][TASK]["acc,none"], per_choice(out["samples"][TASK])


def per_choice(samples: list[dict]) -> list[list[float]]:
    ordered = sorted(samples, key=lambda sample: sample["doc_id"])
    return [[float(response[0]) for response in sample["filtered_resps"]] for sample in ordered]


@pytest.mark.parametrize("variant", ["softmax", "lizard"])
def test_lm_eval_cli_on_the_directory_equals_the_bridge(variant, tmp_path, monkeypatch):
    if variant == "softmax":
        model = tiny_llama(0)  # the teacher, saved as the plain Llama it is
        model.save_pretrained(tmp_path / "model")
        use_kernel_attention(model, "torch")  # the bridge runs the teacher through the shared kernels
    else:
        model = linearized_tiny_llama("lizard", window=16)
        model.save_pretrained(tmp_path / "model")
    character_tokenizer().save_pretrained(tmp_path / "model")

    cli_accuracy, cli_loglikelihoods = cli_scores(tmp_path / "model", tmp_path / "out", tmp_path / "hf-home")
    accuracy, loglikelihoods = bridge_scores(model, monkeypatch)
    assert len(loglikelihoods) == 24
    assert cli_accuracy == accuracy
    assert torch.allclose(torch.tensor(cli_loglikelihoods), torch.tensor(loglikelihoods), atol=1e-4, rtol=0)
