"""Suite configuration: YAML files under ``configs/`` with CLI overrides.

A suite names the models, variants and tasks to run, the budgets, and the seed. Typos must
not pass silently (a misspelled ``limt:`` would otherwise run a full, hours-long suite), so
unknown keys and malformed YAML raise :class:`ConfigError` naming the file, line and key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lizard_bench.errors import InputError


class ConfigError(InputError, ValueError):
    """A suite configuration problem, phrased as one line that says where and what to fix."""


@dataclass
class PerplexityBudget:
    """How much held-out text the perplexity task reads, and in what windows."""

    seq_len: int = 512
    max_tokens: int = 16384
    batch_size: int = 1


@dataclass
class SuiteConfig:
    """One benchmark suite. Field defaults are the built-in defaults; YAML overrides them."""

    name: str = "default"
    models: list[str] = field(default_factory=lambda: ["smollm2-135m"])
    variants: list[str] = field(default_factory=lambda: ["softmax"])
    tasks: list[str] = field(default_factory=lambda: ["corpus_perplexity"])
    corpus: str = "pydoc"
    seed: int = 0
    limit: int | None = None
    device: str = "auto"
    dtype: str = "float32"
    kernel_backend: str = "auto"
    results_dir: str = "results"
    run_id: str | None = None
    data_dir: str | None = None  # local task data: DATA_DIR/<task>/<split>.jsonl (offline runs)
    perplexity: PerplexityBudget = field(default_factory=PerplexityBudget)
    # per-task settings, e.g. {"passkey": {"lengths": [1024, 2048]}}; each task declares and checks its keys
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # linearization options per variant, e.g. {"lizard": {"window": 64}, "hybrid": {"method": "lizard", ...}}
    variant_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # a training recipe file (a shipped name such as train_paper, or a path) that `training` then overrides
    training_recipe: str | None = None
    # training recipe for linearized variants (TrainConfig fields); empty = the offline CPU budget
    training: dict[str, Any] = field(default_factory=dict)
    # tasks that run on some variants only, e.g. {"prefill": ["softmax", "lizard_plus"]}; others run on all
    task_variants: dict[str, list[str]] = field(default_factory=dict)
    # folder of the user's own lm-eval task YAMLs: their names become tasks of the run
    lm_eval_include_path: str | None = None
    # settings for every lm-eval task of the run (num_fewshot, batch_size, log_samples, ...), over task_options
    lm_eval: dict[str, Any] = field(default_factory=dict)

    def runs(self, task: str, variant: str) -> bool:
        """Whether ``task`` runs on ``variant`` in this suite."""
        return task not in self.task_variants or variant in self.task_variants[task]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        """A short content hash of the settings that change results (not where they are written)."""
        relevant = {k: v for k, v in self.to_dict().items() if k not in ("results_dir", "run_id")}
        blob = json.dumps(relevant, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


_NESTED = {"perplexity": PerplexityBudget}
# what the run-wide ``lm_eval`` section may set (each lm-eval task's own option of that name, for all of them)
LM_EVAL_SETTINGS = ("num_fewshot", "batch_size", "max_length", "max_gen_toks", "add_bos_token", "bootstrap_iters",
                    "log_samples")
# a run id names one folder under results_dir: no separators, no '..', nothing hidden
PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def shipped_config(name: str) -> Path | None:
    """``configs/<name>.yaml`` as installed (the ``lizard_bench_configs`` package), or None."""
    import importlib.resources

    candidate = Path(str(importlib.resources.files("lizard_bench_configs") / f"{name}.yaml"))
    return candidate if candidate.is_file() else None


def shipped_suites() -> dict[str, str]:
    """Every shipped suite by name, with the first line of its header (what it is for)."""
    import importlib.resources

    folder = Path(str(importlib.resources.files("lizard_bench_configs")))
    suites = {}
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        if "stage1" in (yaml.safe_load(text) or {}):  # a training recipe, not a suite
            continue
        header = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), "")
        suites[path.stem] = header
    return suites


def resolve_suite(name_or_path: str | Path) -> Path:
    """A suite YAML path, or the name of a shipped suite (``paper-table9`` -> configs/paper-table9.yaml)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    shipped = shipped_config(str(name_or_path)) if path.suffix == "" and len(path.parts) == 1 else None
    if shipped is not None:
        return shipped
    raise ConfigError(f"{name_or_path}: config file not found (pass a YAML path or a shipped suite: "
                      f"{', '.join(shipped_suites())})")


def recipe_path(name_or_path: str) -> Path:
    """A training recipe file: a path, or the name of a shipped one (``train_paper``)."""
    path = Path(name_or_path).expanduser()
    found = path if path.is_file() else shipped_config(name_or_path)
    if found is None:
        raise ConfigError(f"training_recipe {name_or_path!r}: no such file or shipped recipe (train_cpu, train_paper)")
    return found


def merge_settings(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` over ``base``, nested mappings merged key by key (``stage1: {tokens: N}`` keeps stage1's lr)."""
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = merge_settings(merged[key], value) if isinstance(value, dict) and isinstance(
            merged.get(key), dict) else value
    return merged


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> SuiteConfig:
    """Read a suite YAML (or the built-in defaults when ``path`` is None) and apply overrides.

    ``overrides`` use dotted keys for nested sections (``{"perplexity.seq_len": 256}``);
    ``None`` values are ignored so that unset CLI flags do not clobber the file.
    """
    config = SuiteConfig()
    if path is not None:
        path = resolve_suite(path)
        _apply_yaml(config, path)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(config, dotted, value, where="command line")
    flags = any(value is not None for value in (overrides or {}).values())
    where = str(path) if path else "defaults"
    _validate(config, where=f"{where} with the command line's flags" if flags else where)
    return config


def _apply_yaml(config: SuiteConfig, path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found (pass --config with an existing YAML file)")
    text = path.read_text()
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{line}: malformed YAML: {problem}") from None
    if root is None:
        return
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{path}:{root.start_mark.line + 1}: the top level must be a mapping of settings")
    _apply_mapping(config, root, path, prefix="")


def _apply_mapping(target: Any, node: yaml.MappingNode, path: Path, prefix: str) -> None:
    known = {f.name for f in dataclasses.fields(target)}
    for key_node, value_node in node.value:
        key = key_node.value
        line = key_node.start_mark.line + 1
        if key not in known:
            raise ConfigError(
                f"{path}:{line}: unknown key '{prefix}{key}' (known keys: {', '.join(sorted(known))})"
            )
        if key in _NESTED and prefix == "":
            if not isinstance(value_node, yaml.MappingNode):
                raise ConfigError(f"{path}:{line}: '{key}' must be a mapping")
            _apply_mapping(getattr(target, key), value_node, path, prefix=f"{key}.")
            continue
        value = yaml.safe_load(yaml.serialize(value_node))
        _set_field(target, key, value, where=f"{path}:{line}", label=f"{prefix}{key}")


def _set_dotted(config: SuiteConfig, dotted: str, value: Any, where: str) -> None:
    target: Any = config
    *parents, leaf = dotted.split(".")
    if parents == ["lm_eval"]:  # one run-wide lm-eval setting (--num-fewshot), beside the file's others
        config.lm_eval = {**config.lm_eval, leaf: value}
        return
    for part in parents:
        if part not in _NESTED:
            raise ConfigError(f"{where}: unknown section '{part}' in override '{dotted}'")
        target = getattr(target, part)
    if leaf not in {f.name for f in dataclasses.fields(target)}:
        raise ConfigError(f"{where}: unknown key '{dotted}'")
    _set_field(target, leaf, value, where=where, label=dotted)


def _set_field(target: Any, key: str, value: Any, where: str, label: str) -> None:
    """Assign with a light type check, so ``seed: abc`` fails here rather than mid-run."""
    current = getattr(target, key)
    expected = type(current)
    if isinstance(current, list):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: '{label}' must be a list of names, got {value!r}")
    elif key == "task_variants":
        if not isinstance(value, dict) or not all(
                isinstance(v, list) and all(isinstance(n, str) for n in v) for v in value.values()):
            raise ConfigError(f"{where}: 'task_variants' must map task names to lists of variant names, got {value!r}")
    elif key in ("training", "lm_eval"):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: '{key}' must be a mapping of settings, got {value!r}")
    elif isinstance(current, dict):
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise ConfigError(f"{where}: '{label}' must map names to mappings of options, got {value!r}")
    elif current is None or value is None:
        pass  # optional fields (limit, run_id, data_dir) accept None or a value of the right kind, checked below
    elif expected is int and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ConfigError(f"{where}: '{label}' must be an integer, got {value!r}")
    elif expected is str and not isinstance(value, str):
        raise ConfigError(f"{where}: '{label}' must be a string, got {value!r}")
    setattr(target, key, value)


def _validate(config: SuiteConfig, where: str) -> None:
    if config.limit is not None and (not isinstance(config.limit, int) or config.limit < 1):
        raise ConfigError(f"{where}: 'limit' must be a positive integer or null, got {config.limit!r}")
    if config.run_id is not None and not (isinstance(config.run_id, str) and PLAIN_NAME.fullmatch(config.run_id)):
        raise ConfigError(f"{where}: 'run_id' must be a plain folder name (letters, digits, '.', '_', '-'; not "
                          f"starting with '.'), got {config.run_id!r}")
    if not 0 <= config.seed < 2**32:
        raise ConfigError(f"{where}: 'seed' must be between 0 and 2**32 - 1 (numpy's range), got {config.seed}")
    if not config.results_dir.strip():
        raise ConfigError(f"{where}: 'results_dir' must name a folder, got {config.results_dir!r}")
    if config.perplexity.batch_size < 1:
        raise ConfigError(f"{where}: 'perplexity.batch_size' must be >= 1, got {config.perplexity.batch_size}")
    for name in ("models", "variants", "tasks"):
        if not getattr(config, name):
            raise ConfigError(f"{where}: '{name}' must name at least one entry")
    if config.perplexity.seq_len < 2 or config.perplexity.max_tokens < config.perplexity.seq_len:
        raise ConfigError(f"{where}: perplexity needs seq_len >= 2 and max_tokens >= seq_len")
    unknown = sorted(set(config.lm_eval) - set(LM_EVAL_SETTINGS))
    if unknown:
        raise ConfigError(f"{where}: unknown lm_eval setting(s) {', '.join(unknown)} "
                          f"(known: {', '.join(LM_EVAL_SETTINGS)})")
    if config.data_dir is not None and not isinstance(config.data_dir, str):
        raise ConfigError(f"{where}: 'data_dir' must be a path, got {config.data_dir!r}")
    if config.dtype not in ("float32", "float16", "bfloat16"):
        raise ConfigError(f"{where}: 'dtype' must be float32, float16 or bfloat16, got {config.dtype!r}")
