"""Fixtures: a table of bad inputs a new user might try, each of which must be refused up front.

Every case is a ``lizard-bench`` command line (with ``{tiny}``, ``{gpt2}``, ``{corpus}``,
``{fixtures}``, ``{checkpoint}`` standing for the fixture models, corpus, folder and a damaged
linearized checkpoint of ``{tiny}``) run from an empty work
folder. Each must exit 2 with one line on stderr naming the problem, print no traceback,
create no run directory and change no file. ``tests/test_bad_inputs.py`` runs them in
process; ``benchmarks/bad_inputs.py`` runs them as separate processes and counts outcomes.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from tests.tiny_models import character_tokenizer, save_tiny_llama


@dataclass(frozen=True)
class BadInput:
    name: str
    argv: tuple[str, ...]
    message: str  # a piece of the expected one-line error (lower case)


# A small suite every case varies in one place; it would run in seconds were it valid.
BASE = ("run", "--model", "{tiny}", "--corpus", "{corpus}", "--variant", "softmax", "--task", "corpus_perplexity",
        "--seq-len", "32", "--max-tokens", "256", "--device", "cpu")
LIZARD = ("--variant", "lizard")


def varied(*changes: str) -> tuple[str, ...]:
    """``BASE`` with each ``--flag value`` pair in ``changes`` set (replacing BASE's own value, or added)."""
    settings = dict(zip(BASE[1::2], BASE[2::2], strict=True))
    settings.update(zip(changes[::2], changes[1::2], strict=True))
    return ("run", *(item for pair in settings.items() for item in pair))


CASES: list[BadInput] = [
    # corpus
    BadInput("corpus missing", varied("--corpus", "missing.txt"), "does not exist"),
    BadInput("corpus missing with lizard", (*varied("--corpus", "missing.jsonl"), *LIZARD), "does not exist"),
    BadInput("corpus empty file", varied("--corpus", "{fixtures}/empty.txt"), "no text"),
    BadInput("corpus shorter than a window", varied("--corpus", "{fixtures}/short.txt"), "fewer than one"),
    BadInput("corpus wrong extension", varied("--corpus", "{fixtures}/corpus.csv"), "cannot read corpus"),
    BadInput("corpus jsonl without text", varied("--corpus", "{fixtures}/notext.jsonl"), "'text' field"),
    BadInput("corpus jsonl text not a string", varied("--corpus", "{fixtures}/numbers.jsonl"), "must be a string"),
    BadInput("corpus binary", varied("--corpus", "{fixtures}/binary.txt"), "not utf-8"),
    BadInput("corpus empty folder", varied("--corpus", "{fixtures}/empty_folder"), "no text"),
    BadInput("corpus hf while offline", varied("--corpus", "hf:nobody/no-such-dataset"), "cannot load dataset"),
    # model files
    BadInput("gguf truncated", varied("--model", "{fixtures}/truncated.gguf"), "truncated"),
    BadInput("gguf garbage", varied("--model", "{fixtures}/garbage.gguf"), "not a valid gguf"),
    BadInput("gguf missing", varied("--model", "{fixtures}/missing.gguf"), "does not exist"),
    BadInput("safetensors file as model", varied("--model", "{tiny}/model.safetensors"), "weights file"),
    BadInput("safetensors truncated", varied("--model", "{fixtures}/truncated_weights"), "truncated"),
    BadInput("config without weights", varied("--model", "{fixtures}/config_only"), "no weights"),
    BadInput("config not json", varied("--model", "{fixtures}/bad_config"), "json"),
    BadInput("folder without config", varied("--model", "{fixtures}/empty_folder"), "without config.json"),
    BadInput("relative path typo", varied("--model", "{fixtures}/tiny-lama"), "does not exist here"),
    BadInput("dot path missing", varied("--model", "./no-such-model"), "does not exist here"),
    BadInput("hub id offline, not cached", varied("--model", "nobody/no-such-model"), "hf_hub_offline"),
    BadInput("alias typo", varied("--model", "smollm2"), "embedded alias"),
    BadInput("gpt2 asked to linearize", (*varied("--model", "{gpt2}"), *LIZARD), "cannot be linearized"),
    BadInput("seq_len beyond gpt2 positions", varied("--model", "{gpt2}", "--seq-len", "100", "--max-tokens", "400"),
             "positions"),
    BadInput("passkey lengths beyond gpt2 positions",
             varied("--model", "{gpt2}", "--config", "{fixtures}/passkey_long.yaml", "--task", "passkey"),
             "passkey.lengths"),
    # linearized checkpoints
    BadInput("checkpoint weights truncated",
             (*varied("--config", "{fixtures}/checkpoint_suite.yaml", "--results-dir", "{fixtures}/checkpoint_results"),
              *LIZARD), "lizard.safetensors is truncated"),
    BadInput("export truncated checkpoint", ("export", "--checkpoint", "{checkpoint}", "--out", "out"),
             "lizard.safetensors is truncated"),
    # run settings
    BadInput("seed negative", varied("--seed", "-1"), "seed"),
    BadInput("seed too large", varied("--seed", str(2**33)), "seed"),
    BadInput("device name", varied("--device", "gpu0"), "not a device"),
    BadInput("device cuda without gpu", varied("--device", "cuda"), "no cuda gpu"),
    BadInput("device cuda index", varied("--device", "cuda:3"), "cuda"),
    BadInput("device meta", varied("--device", "meta"), "runs on"),
    BadInput("triton on cpu", varied("--kernel-backend", "triton"), "triton"),
    BadInput("dtype unknown", varied("--dtype", "float8"), "invalid choice"),
    BadInput("limit zero", varied("--limit", "0"), "limit"),
    BadInput("seq_len one", varied("--seq-len", "1"), "seq_len"),
    BadInput("max_tokens below seq_len", varied("--max-tokens", "8"), "max_tokens"),
    BadInput("variant typo", varied("--variant", "lizzard"), "unknown variant"),
    BadInput("task typo", varied("--task", "passky"), "unknown task"),
    BadInput("include-path yaml syntax error",
             varied("--include-path", "{fixtures}/broken_tasks", "--task", "broken_task"),
             "broken_task.yaml:2: malformed yaml"),
    # paths
    BadInput("run id ..", varied("--run-id", ".."), "run_id"),
    BadInput("run id with separator", varied("--run-id", "a/b"), "run_id"),
    BadInput("run id empty", varied("--run-id", ""), "run_id"),
    BadInput("run id hidden", varied("--run-id", ".hidden"), "run_id"),
    BadInput("results dir is a file", varied("--results-dir", "{fixtures}/empty.txt"), "is a file"),
    BadInput("data dir missing", varied("--data-dir", "no-such-data"), "data_dir"),
    BadInput("data dir is a file", varied("--data-dir", "{fixtures}/empty.txt"), "data_dir"),
    BadInput("config missing", varied("--config", "missing.yaml"), "config file not found"),
    BadInput("config malformed", varied("--config", "{fixtures}/malformed.yaml"), "malformed yaml"),
    BadInput("config unknown key", varied("--config", "{fixtures}/unknown_key.yaml"), "unknown key"),
    BadInput("passkey length negative", varied("--config", "{fixtures}/passkey_negative.yaml", "--task", "passkey"),
             "passkey.lengths"),
    BadInput("passkey depth as percent", varied("--config", "{fixtures}/passkey_percent.yaml", "--task", "passkey"),
             "passkey.depths"),
    BadInput("efficiency repeats zero", varied("--config", "{fixtures}/prefill_zero.yaml", "--task", "prefill"),
             "prefill.repeats"),
    BadInput("task options for an unknown task", varied("--config", "{fixtures}/options_unknown_task.yaml"),
             "unknown task"),
    BadInput("unknown option key", varied("--config", "{fixtures}/options_unknown_key.yaml"), "unknown option"),
    BadInput("training section typo", (*varied("--config", "{fixtures}/training_typo.yaml"), *LIZARD), "training"),
    BadInput("variant option out of range", (*varied("--config", "{fixtures}/window_negative.yaml"), *LIZARD),
             "variant_options.lizard"),
    BadInput("task_variants unknown variant", varied("--config", "{fixtures}/task_variants_typo.yaml"),
             "task_variants.corpus_perplexity"),
    BadInput("anchors cover every token", (*varied("--config", "{fixtures}/anchors_cover.yaml"), *LIZARD),
             "exact softmax"),
    BadInput("lm-eval num_fewshot negative", varied("--config", "{fixtures}/fewshot_negative.yaml", "--task", "copa"),
             "num_fewshot"),
    # other commands
    BadInput("resumed run manifest of another shape", varied("--results-dir", "{fixtures}", "--run-id", "alien_run"),
             "manifest.json is not a lizard-bench manifest"),
    BadInput("report out is a file", ("report", "{fixtures}/run", "--out", "{fixtures}/empty.txt"), "is a file"),
    BadInput("report missing run", ("report", "no-such-run", "--out", "out"), "no such run directory"),
    BadInput("report corrupt manifest", ("report", "{fixtures}/corrupt_run", "--out", "out"), "not valid json"),
    BadInput("compare missing runs", ("compare", "no-such-a", "no-such-b"), "no such run directory"),
    BadInput("train nothing to train", ("train", "--model", "{tiny}", "--variant", "softmax"), "nothing to train"),
    BadInput("train corpus of one document", ("train", "--model", "{tiny}", "--variant", "lizard", "--config",
                                              "{fixtures}/train_one_document.yaml"), "no train text"),
    BadInput("list unknown", ("list", "widgets"), "invalid choice"),
    BadInput("export-data out is a file", ("export-data", "--out", "{fixtures}/empty.txt", "--tasks", "copa"),
             "not a directory"),
]

YAML_FIXTURES = {
    "malformed.yaml": "tasks: [corpus_perplexity\n",
    "unknown_key.yaml": "limt: 3\n",
    "passkey_negative.yaml": "task_options:\n  passkey:\n    lengths: [-1]\n",
    "passkey_percent.yaml": "task_options:\n  passkey:\n    depths: [50]\n",
    "prefill_zero.yaml": "task_options:\n  prefill:\n    repeats: 0\n",
    "options_unknown_task.yaml": "task_options:\n  pasky:\n    lengths: [64]\n",
    "options_unknown_key.yaml": "task_options:\n  corpus_perplexity:\n    windw: 3\n",
    "training_typo.yaml": "training:\n  stage1:\n    stepz: 3\n",
    "window_negative.yaml": "variant_options:\n  lizard:\n    window: -4\n",
    "task_variants_typo.yaml": "task_variants:\n  corpus_perplexity: [softmx]\n",
    "fewshot_negative.yaml": "task_options:\n  copa:\n    num_fewshot: -1\n",
    "passkey_long.yaml": "task_options:\n  passkey:\n    lengths: [32, 128]\n",
    "anchors_cover.yaml": "variant_options:\n  lizard:\n    window: 16\n    num_anchors: 100000\n",
}


def write_fixtures(root: Path) -> dict[str, str]:
    """Write every fixture file under ``root``; returns the placeholder values for :data:`CASES`."""
    fixtures = root / "fixtures"
    fixtures.mkdir(parents=True)
    tiny = save_tiny_llama(root / "tiny-llama")
    corpus = fixtures / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": f"document {i}: " + "a quick brown fox. " * 8}) + "\n"
                              for i in range(30)))
    (fixtures / "empty.txt").write_text("")
    (fixtures / "short.txt").write_text("too short.")
    (fixtures / "corpus.csv").write_text("text\nhello\n")
    (fixtures / "notext.jsonl").write_text(json.dumps({"body": "hello"}) + "\n")
    (fixtures / "numbers.jsonl").write_text(json.dumps({"text": 5}) + "\n")
    (fixtures / "binary.txt").write_bytes(bytes(range(128, 256)) * 8)
    (fixtures / "empty_folder").mkdir()
    (fixtures / "garbage.gguf").write_bytes(os.urandom(512))
    (fixtures / "truncated.gguf").write_bytes(_gguf_header_only())
    for name, text in YAML_FIXTURES.items():
        (fixtures / name).write_text(text)
    (fixtures / "train_one_document.yaml").write_text(f"training:\n  corpus: {fixtures / 'one_document.txt'}\n")
    (fixtures / "one_document.txt").write_text("one document only. " * 100)
    truncated = fixtures / "truncated_weights"
    truncated.mkdir()
    for item in tiny.iterdir():
        data = item.read_bytes()
        (truncated / item.name).write_bytes(data[: len(data) // 2] if item.suffix == ".safetensors" else data)
    (fixtures / "config_only").mkdir()
    (fixtures / "config_only" / "config.json").write_text((tiny / "config.json").read_text())
    (fixtures / "bad_config").mkdir()
    (fixtures / "bad_config" / "config.json").write_text("{not json")
    (fixtures / "bad_config" / "model.safetensors").write_bytes((tiny / "model.safetensors").read_bytes())
    _write_gpt2(root / "tiny-gpt2")
    _write_run(fixtures / "run")
    _write_run(fixtures / "corrupt_run")
    (fixtures / "corrupt_run" / "manifest.json").write_text("{not json")
    _write_run(fixtures / "alien_run")
    (fixtures / "alien_run" / "manifest.json").write_text(json.dumps({"hello": [1, 2, 3]}))
    (fixtures / "broken_tasks").mkdir()
    (fixtures / "broken_tasks" / "broken_task.yaml").write_text("task: broken_task\ndataset_path: a: b\n")
    suite = fixtures / "checkpoint_suite.yaml"
    suite.write_text(f"training:\n  corpus: {corpus}\n  seq_len: 32\n")
    checkpoint = _write_truncated_checkpoint(fixtures / "checkpoint_results", str(tiny), suite)
    return {"tiny": str(tiny), "gpt2": str(root / "tiny-gpt2"), "corpus": str(corpus), "fixtures": str(fixtures),
            "checkpoint": str(checkpoint)}


def expand(argv: tuple[str, ...], places: dict[str, str]) -> list[str]:
    return [item.format(**places) for item in argv]


def _gguf_header_only() -> bytes:
    """A GGUF file that declares one float32 tensor of 1024 values and then ends (a cut download)."""
    def string(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    header = b"GGUF" + struct.pack("<IQQ", 3, 1, 1)
    header += string("general.architecture") + struct.pack("<I", 8) + string("llama")
    header += string("token_embd.weight") + struct.pack("<I", 1) + struct.pack("<Q", 1024) + struct.pack("<IQ", 0, 0)
    return header + b"\0" * 64


def _write_gpt2(directory: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(vocab_size=len(character_tokenizer()), n_positions=64, n_embd=32, n_layer=1,
                               n_head=2)).save_pretrained(directory)
    character_tokenizer().save_pretrained(directory)


def _write_truncated_checkpoint(results_dir: Path, model: str, suite: Path) -> Path:
    """The lizard checkpoint a run of ``suite`` with ``--variant lizard`` would reuse, its weights file cut in half.

    It sits in the very folder the run resolves (the base weights' hash included), so without a check the
    run would load it after the teacher's units ran.
    """
    from lizard_bench.config import load_config
    from lizard_bench.linearize import linearize
    from lizard_bench.linearize.checkpoint import LIZARD_FILE, base_model_hash, save_linearized
    from lizard_bench.linearize.pipeline import checkpoint_fingerprint
    from lizard_bench.models.loading import load_model
    from lizard_bench.variants import checkpoint_folder, resolve_variant, training_config

    config = load_config(suite, {"models": [model], "variants": ["lizard"], "results_dir": str(results_dir)})
    spec, train = resolve_variant("lizard", config), training_config(config)
    loaded = load_model(model, device="cpu", dtype="float32")
    base_hash = base_model_hash(loaded.model)
    folder = checkpoint_folder(results_dir, model, spec, base_hash, train)
    linearize(loaded.model, "lizard")
    fingerprint = checkpoint_fingerprint(base_hash, spec.config, train)
    save_linearized(loaded.model, folder, base_name=model, base_hash=base_hash, config=spec.config,
                    train_config=train.to_dict(), train_fingerprint=fingerprint, stages=[])
    weights = folder / LIZARD_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return folder


def _write_run(directory: Path) -> None:
    """A finished run with one record, for the report cases."""
    from lizard_bench.results import Record, RunStore

    store = RunStore(directory)
    store.write_manifest({"run_id": directory.name, "config": {}, "config_hash": "fixture"})
    store.write_unit("tiny", "softmax", "corpus_perplexity", [
        Record(model="tiny", variant="softmax", task="corpus_perplexity", metric="perplexity", value=50.0,
               direction="lower", provenance={"seed": 0}),
    ])
