"""A run killed midway (SIGKILL, no clean-up) resumes: no finished record lost, none duplicated."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lizard_bench.results import RunStore
from tests.tiny_models import save_tiny_llama

pytestmark = pytest.mark.slow


def run_command(model_dir: Path, corpus: Path, results: Path) -> list[str]:
    return [
        sys.executable, "-m", "lizard_bench.cli", "run", "--model", str(model_dir), "--corpus", str(corpus),
        "--task", "corpus_perplexity", "--task", "prefill", "--results-dir", str(results), "--run-id", "killed",
        "--device", "cpu", "--seq-len", "32", "--max-tokens", "256",
    ]


def test_killed_run_resumes_without_losing_or_duplicating_records(tmp_path):
    model_dir = save_tiny_llama(tmp_path / "model")
    corpus = tmp_path / "corpus.jsonl"  # fixture text
    corpus.write_text("".join(json.dumps({"id": i, "text": "lorem ipsum dolor sit amet. " * 10}) + "\n"
                              for i in range(30)))
    suite = tmp_path / "suite.yaml"  # a prefill sweep long enough to be killed in the middle of
    suite.write_text("task_options:\n  prefill: {lengths: [512, 1024, 2048, 4096], repeats: 20}\n")
    command = [*run_command(model_dir, corpus, tmp_path / "results"), "--config", str(suite)]
    store = RunStore(tmp_path / "results" / "killed")
    first_unit = store.unit_path(str(model_dir), "softmax", "corpus_perplexity")

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not first_unit.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # inside the second unit (the prefill sweep takes several seconds)
    assert process.poll() is None, "the run finished before it could be killed: make the second unit longer"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = first_unit.read_text()
    assert not store.unit_done(str(model_dir), "softmax", "prefill")

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "1 units run, 1 already done" in rerun.stdout
    assert first_unit.read_text() == finished, "the finished unit was rewritten"
    records = store.read_records()
    keys = [r.key for r in records]
    assert len(keys) == len(set(keys)), "duplicated records"
    assert {r.task for r in records} == {"corpus_perplexity", "prefill"}
    assert all(r.status == "ok" for r in records)
    assert not list(store.run_dir.rglob("*.tmp")), "a half-written temporary file was left behind"
