"""A linearized model saves as an ordinary Hugging Face model directory and loads back exactly.

The Lizard parameters are perturbed away from their initial values first: a loader that
re-initialised them (or ignored them) would then give different logits, not equal ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from lizard_bench.cli import main as cli_main
from lizard_bench.linearize import LizardDirectoryError, LizardLlamaForCausalLM, linearize, lizard_parameters
from lizard_bench.linearize.checkpoint import base_model_hash, save_linearized
from lizard_bench.linearize.remote_code import AUTO_MAP, model_code
from lizard_bench.linearize.training import LoraSettings
from lizard_bench.linearize.training.lora import attach_lora, lora_parameters
from tests.tiny_models import linearized_tiny_llama, perturb, save_tiny_llama, tiny_llama

FRESH_PROCESS = Path(__file__).resolve().parents[1] / "fresh_process.py"
TOKENS = torch.randint(2, 90, (1, 48), generator=torch.Generator().manual_seed(0))  # longer than the window (16)
CONFIGS = {  # name: (method, options)
    "lizard": ("lizard", {"window": 16}),
    "lizard_plus": ("lizard_plus", {"window": 16}),  # anchors and RoPE in the window
    "lolcats": ("lolcats", {"window": 16}),  # the shared normaliser, no gate
}


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=TOKENS, use_cache=False).logits


def save_with_reference(model: torch.nn.Module, directory: Path) -> Path:
    """Save ``model`` and, beside the directory, the inputs and the logits it gives in this process."""
    model.save_pretrained(directory)
    reference = directory.with_suffix(".pt")
    torch.save({"input_ids": TOKENS, "logits": logits(model)}, reference)
    return reference


def fresh_load(directories: dict[str, Path], tmp_path: Path) -> dict[str, dict]:
    """Load each directory in one fresh ``python -I`` process where lizard_bench cannot be imported."""
    arguments = [str(part) for directory in directories.values() for part in (directory, directory.with_suffix(".pt"))]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               TRANSFORMERS_VERBOSITY="error")
    done = subprocess.run([sys.executable, "-I", str(FRESH_PROCESS), *arguments], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return dict(zip(directories, results, strict=True))


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """One directory per config, a bfloat16 one, and one whose weights lack a Lizard tensor."""
    root = tmp_path_factory.mktemp("directories")
    directories = {}
    for name, (method, options) in CONFIGS.items():
        directories[name] = root / name
        save_with_reference(linearized_tiny_llama(method, **options), directories[name])
    directories["lizard_bf16"] = root / "lizard_bf16"
    save_with_reference(linearized_tiny_llama("lizard", window=16).to(torch.bfloat16), directories["lizard_bf16"])
    directories["missing_tensor"] = root / "missing_tensor"
    save_with_reference(linearized_tiny_llama("lizard", window=16), directories["missing_tensor"])
    edit_weights(directories["missing_tensor"], lambda tensors: tensors.pop("model.layers.1.self_attn.sink_logits"))
    return directories


@pytest.fixture(scope="module")
def fresh(saved, tmp_path_factory) -> dict[str, dict]:
    return fresh_load(saved, tmp_path_factory.mktemp("fresh"))


def edit_weights(directory: Path, change) -> None:
    path = directory / "model.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


@pytest.mark.parametrize("name", [*CONFIGS, "lizard_bf16"])
def test_a_fresh_process_without_lizard_bench_loads_identical_logits(fresh, name):
    result = fresh[name]
    assert "error" not in result, result["error"]
    assert result["class"].startswith("transformers_modules.") and result["class"].endswith("LizardLlamaForCausalLM")
    assert result["blocked_imported"] == []
    assert result["dtype"] == ("torch.bfloat16" if name.endswith("bf16") else "torch.float32")
    assert result["max_abs_diff"] == 0.0


def test_the_directory_names_its_code_and_carries_it(saved):
    directory = saved["lizard"]
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == "lizard_llama" and config["auto_map"] == AUTO_MAP
    assert config["lizard"]["method"] == "lizard" and config["lizard"]["window"] == 16
    shipped = sorted(path.name for path in directory.glob("*.py"))
    assert shipped == sorted(model_code())
    for path in directory.glob("*.py"):  # only torch, transformers and the standard library remain
        assert "from lizard_bench" not in path.read_text() and "triton" not in path.name


def test_the_shipped_code_is_what_transformers_copies(saved):
    """transformers copies only the files the entry module reaches through ``from .x import``."""
    from transformers.dynamic_module_utils import get_imports, get_relative_import_files

    directory = saved["lizard"]
    entry = directory / f"{AUTO_MAP['AutoModelForCausalLM'].split('.')[0]}.py"
    reached = {Path(path).name for path in get_relative_import_files(str(entry))} | {entry.name}
    assert reached == set(model_code())
    packages = set().union(*(get_imports(str(directory / name)) for name in reached))
    assert packages <= {"torch", "transformers", "math", "os", "typing", "dataclasses", "functools", "importlib",
                        "collections", "__future__"}


def test_a_missing_tensor_is_refused_in_one_line_by_the_shipped_code(fresh):
    error = fresh["missing_tensor"]["error"]
    assert error.startswith("LizardDirectoryError: ") and "\n" not in error
    assert "model.layers.1.self_attn.sink_logits is missing" in error and "refusing" in error


def test_the_directory_loads_natively_once_lizard_bench_is_imported(saved):
    model = AutoModelForCausalLM.from_pretrained(saved["lolcats"])  # no trust_remote_code: the registered class
    assert type(model) is LizardLlamaForCausalLM
    reference = torch.load(saved["lolcats"].with_suffix(".pt"))
    assert torch.equal(logits(model), reference["logits"])
    prompt = TOKENS[:, :20]  # greedy decoding through the reloaded decode state is the same too
    original = linearized_tiny_llama("lolcats", window=16)
    assert torch.equal(model.generate(prompt, max_new_tokens=8, do_sample=False),
                       original.generate(prompt, max_new_tokens=8, do_sample=False))
    bf16 = AutoModelForCausalLM.from_pretrained(saved["lizard_bf16"])
    assert bf16.dtype == torch.bfloat16
    assert torch.equal(logits(bf16), torch.load(saved["lizard_bf16"].with_suffix(".pt"))["logits"])


def test_a_reloaded_model_saves_again_to_a_directory_that_loads(saved, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(saved["lizard_plus"])
    model.save_pretrained(tmp_path / "again")
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "again")
    assert torch.equal(logits(again), torch.load(saved["lizard_plus"].with_suffix(".pt"))["logits"])


@pytest.mark.parametrize("damage", ["unexpected", "shape", "config"])
def test_mismatched_directories_are_refused_in_one_line(damage, tmp_path):
    directory = tmp_path / damage
    linearized_tiny_llama("lizard", window=16).save_pretrained(directory)
    if damage == "unexpected":
        edit_weights(directory, lambda t: t.update({"model.layers.0.self_attn.extra": torch.ones(3)}))
        expected = "model.layers.0.self_attn.extra is not part of the model"
    elif damage == "shape":
        edit_weights(directory, lambda t: t.update({"model.layers.0.self_attn.sink_logits": torch.ones(4, 2)}))
        expected = "model.layers.0.self_attn.sink_logits has shape (4, 2), the config needs (4, 4)"
    else:  # a config that asks for parameters the weights do not have
        config = json.loads((directory / "config.json").read_text())
        config["lizard"]["sink_values"] = "zeros"
        config["lizard"]["combine"] = "separate"
        (directory / "config.json").write_text(json.dumps(config))
        expected = "model.layers.0.self_attn.alpha is missing"
    with pytest.raises(LizardDirectoryError) as refused:
        AutoModelForCausalLM.from_pretrained(directory)
    assert expected in str(refused.value) and "\n" not in str(refused.value)


def test_export_writes_a_checkpoint_and_its_base_as_a_model_directory(tmp_path, capsys):
    base = save_tiny_llama(tmp_path / "base")
    model = tiny_llama(0)
    base_hash = base_model_hash(model)
    config = linearize(model, "lizard", window=16)
    perturb(lizard_parameters(model), 3)
    lora = LoraSettings()
    attach_lora(model, lora, seed=0)
    perturb(lora_parameters(model), 4)  # the adapters start as zeros: make the merge matter
    save_linearized(model, tmp_path / "ckpt", base_name=str(base), base_hash=base_hash, config=config,
                    train_config={"lora": vars(lora)}, train_fingerprint=None, stages=["stage1", "stage2"])
    expected = logits(model.eval())

    assert cli_main(["export", "--checkpoint", str(tmp_path / "ckpt"), "--out", str(tmp_path / "out")]) == 0
    assert "trust_remote_code=True" in capsys.readouterr().out
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert (logits(exported) - expected).abs().max() < 1e-5  # LoRA merged into the projections
    assert (tmp_path / "out" / "tokenizer.json").exists()  # the tokenizer travels with the model

    # another base model, and an occupied --out, are user errors: one line, exit status 2
    other = save_tiny_llama(tmp_path / "other", seed=1)
    assert cli_main(["export", "--checkpoint", str(tmp_path / "ckpt"), "--out", str(tmp_path / "o2"),
                     "--model", str(other)]) == 2
    assert "trained on base model" in capsys.readouterr().err
    assert cli_main(["export", "--checkpoint", str(tmp_path / "ckpt"), "--out", str(tmp_path / "out")]) == 2
    assert "not an empty directory" in capsys.readouterr().err
