"""Everything about a run that can be checked before a model loads, checked in one place.

A mistake found after loading costs minutes (and, before this check existed, could train a
variant first, then write an 'error' record per task). So before any model time is spent,
:func:`preflight` checks the suite's names and every selected task's option values, the
devices, kernel backend and paths, each model's files (GGUF header, config.json,
safetensors headers) and whether its architecture can be linearized, and it reads and splits
the corpora the run will use. Each problem is one :class:`ConfigError` (or another
:class:`~lizard_bench.errors.InputError`) line saying what was wrong and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lizard_bench.config import ConfigError, SuiteConfig
from lizard_bench.data.corpus import Corpus, CorpusError, load_corpus
from lizard_bench.errors import UnknownNameError
from lizard_bench.linearize.convert import SUPPORTED_MODEL_TYPES
from lizard_bench.models.inspect import ModelFacts, inspect_model
from lizard_bench.models.loading import load_tokenizer
from lizard_bench.models.locate import locate_model
from lizard_bench.results.store import check_writable_folder
from lizard_bench.tasks import Task, all_tasks, get_task
from lizard_bench.variants import VariantSpec, resolve_variant, training_config

DEVICE_TYPES = ("cpu", "cuda", "mps")


@dataclass
class CheckedRun:
    """What the checks found, handed to the run so nothing is looked up (or read) twice."""

    tasks: list[Task]
    variants: list[VariantSpec]
    device: torch.device
    backend: str
    corpus: Corpus | None  # the suite's corpus, read and split once; None when no selected task reads it


def preflight(config: SuiteConfig, *, evaluate: bool = True) -> CheckedRun:
    """Check ``config`` against this machine and its files; raises an InputError naming the first problem.

    ``evaluate=False`` (``lizard-bench train``) leaves out the tasks and the suite's corpus.
    """
    settings = check_settings(config, evaluate=evaluate)
    tasks, train = settings.tasks, settings.train
    lengths = input_lengths(config, tasks, train)
    for model_name in config.models:
        check_model(model_name, inspect_model(locate_model(model_name)), linearize=train is not None, lengths=lengths)
    corpus = None
    if reads_corpus(config, tasks):
        corpus = checked_corpus(config.corpus, "corpus", split="heldout")
        if any(task.name == "corpus_perplexity" for task in tasks):
            check_enough_tokens(corpus, "heldout", config.perplexity.seq_len, "perplexity.seq_len", config.models)
    # a hub training corpus is read only if a variant must train (its checkpoint may exist): not here
    if train is not None and not isinstance(train.corpus, Corpus) and not train.corpus.startswith("hf:"):
        training_corpus = checked_corpus(train.corpus, "training corpus", split="train")
        check_enough_tokens(training_corpus, "train", train.seq_len, "training seq_len", config.models)
    return CheckedRun(tasks=tasks, variants=settings.variants, device=settings.device, backend=settings.backend,
                   corpus=corpus)


@dataclass
class Settings:
    """The parts of a suite that need no file: tasks, variants, recipe, device and backend, all checked."""

    tasks: list[Task]
    variants: list[VariantSpec]
    train: Any  # TrainConfig, or None when no variant is linearized
    device: torch.device
    backend: str


def check_settings(config: SuiteConfig, *, evaluate: bool = True) -> Settings:
    """Names, option values, training recipe, device, backend and output folders (no model or corpus read)."""
    tasks = selected_tasks(config) if evaluate else []
    variants = [resolve_variant(name, config) for name in config.variants]
    for task_name, names in config.task_variants.items():  # names absent from this run (flags) are fine
        if task_name not in {task.name for task in tasks}:
            resolve_task(task_name, config)
        for name in names:
            resolve_variant(name, config)
    linearized = [spec for spec in variants if spec.method is not None]
    train = training_config(config) if linearized else None  # a bad training section fails here too
    if linearized and config.dtype == "float16":
        raise ConfigError("linearized variants train their added parameters in the model's dtype, and float16 "
                          "training has no loss scaling here: use --dtype bfloat16 or float32")
    device = check_device(config.device)
    backend = check_backend(device, config.kernel_backend)
    check_writable_folder(Path(config.results_dir), "results_dir")
    if config.data_dir is not None and not Path(config.data_dir).expanduser().is_dir():
        raise ConfigError(f"data_dir {config.data_dir} is not a folder: pass the folder 'lizard-bench export-data' "
                          "wrote (DIR/<task>/<split>.jsonl)")
    return Settings(tasks=tasks, variants=variants, train=train, device=device, backend=backend)


def reads_corpus(config: SuiteConfig, tasks: list[Task]) -> bool:
    """Whether any selected task reads the suite's corpus."""
    return any(task.reads_corpus(task.suite_options(config)) for task in tasks)


def selected_tasks(config: SuiteConfig) -> list[Task]:
    """The suite's tasks, with ``task_options`` checked: unknown tasks and keys are refused, values parsed.

    Names may be comma lists and suite names (``glue``, ``long_context``: every registered task of
    that suite); a name the registry does not know runs through lm-eval when lm-eval knows it.
    Options for a known task that this run does not select (``--task`` picked a subset) are ignored.
    """
    tasks = [resolve_task(name, config) for name in expand_task_names(config.tasks)]
    for task_name in [name for name in config.task_options if name not in {task.name for task in tasks}]:
        resolve_task(task_name, config)  # an unknown name is a typo even when unselected
    for task in tasks:
        task.suite_options(config)  # its Options, built strictly: unknown keys and wrong values fail here
    return tasks


def expand_task_names(names: list[str]) -> list[str]:
    """Comma lists split, suite names replaced by their registered tasks, duplicates dropped (order kept)."""
    registered = all_tasks()
    suites: dict[str, list[str]] = {}
    for name, cls in registered.items():
        suites.setdefault(cls.suite, []).append(name)
    expanded: list[str] = []
    for item in (part.strip() for name in names for part in name.split(",")):
        if item and item not in registered and item in suites:
            expanded.extend(suites[item])
        elif item:
            expanded.append(item)
    return list(dict.fromkeys(expanded))


def resolve_task(name: str, config: SuiteConfig) -> Task:
    """A registered task, or any task, group or tag lm-eval knows (with the suite's ``lm_eval_include_path``)."""
    try:
        return get_task(name)
    except UnknownNameError:
        from lizard_bench.evaluation.passthrough import find_lm_eval_task

        if config.lm_eval_include_path is not None and not Path(config.lm_eval_include_path).is_dir():
            raise ConfigError(f"lm_eval_include_path {config.lm_eval_include_path} is not a folder of lm-eval "
                              "task YAMLs") from None
        found = find_lm_eval_task(name, config.lm_eval_include_path)
        if found is None:
            where = f" or in {config.lm_eval_include_path}" if config.lm_eval_include_path else ""
            raise UnknownNameError(
                f"unknown task {name!r}: neither a lizard-bench task (`lizard-bench list tasks`) nor one lm-eval "
                f"knows{where} (add your own YAML with --include-path DIR)") from None
        return found


def check_device(requested: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` that exists here."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device {requested!r} is not a device name: use auto, cpu, cuda or cuda:N") from None
    if device.type not in DEVICE_TYPES:
        raise ConfigError(f"device {requested!r}: lizard-bench runs on {', '.join(DEVICE_TYPES)} (or auto)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {requested!r}: no CUDA GPU is visible here (torch.cuda.is_available() is "
                              "False); use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {requested!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                              f"numbered from 0")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {requested!r}: MPS is not available here; use --device cpu or auto")
    return device


def check_backend(device: torch.device, requested: str) -> str:
    """The kernel backend that will run: Triton needs a CUDA device and the triton package."""
    from lizard_bench.kernels import select_backend

    if requested not in ("auto", "torch", "triton"):
        raise ConfigError(f"kernel_backend {requested!r}: choose auto, torch or triton")
    if requested == "triton" and device.type != "cuda":
        raise ConfigError(f"kernel backend 'triton' runs on CUDA GPUs, but the device is {device}: use "
                          "--kernel-backend torch (or auto)")
    try:
        return select_backend(device, None if requested == "auto" else requested)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def check_model(name: str, facts: ModelFacts, *, linearize: bool, lengths: dict[str, int]) -> None:
    """Refuse a model the suite cannot use: not linearizable, or too few positions for its inputs."""
    if linearize and facts.model_type is not None and facts.model_type not in SUPPORTED_MODEL_TYPES \
            and not facts.has_kv_heads:
        raise ConfigError(
            f"model {name!r} is a {facts.model_type!r} model, which cannot be linearized (Llama-family only: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}): run it with --variant softmax, or pick a Llama-family model"
        )
    if facts.max_positions is not None:
        too_long = {where: length for where, length in lengths.items() if length > facts.max_positions}
        if too_long:
            where, length = max(too_long.items(), key=lambda item: item[1])
            raise ConfigError(f"model {name!r} has {facts.max_positions} positions, but {where} asks for "
                              f"{length}-token inputs: lower it to at most {facts.max_positions}")


def input_lengths(config: SuiteConfig, tasks: list[Task], train: Any) -> dict[str, int]:
    """The longest input each part of the run feeds the model (for models with a hard position limit)."""
    lengths: dict[str, int] = {}
    names = {task.name for task in tasks}
    if "corpus_perplexity" in names:
        lengths["perplexity.seq_len"] = config.perplexity.seq_len
    if train is not None:
        lengths["training seq_len"] = train.seq_len
    for task in tasks:
        task_lengths = getattr(task.suite_options(config), "lengths", None)
        if task_lengths:
            lengths[f"{task.name}.lengths"] = max(task_lengths)
    return lengths


def checked_corpus(spec: str, label: str, *, split: str) -> Corpus:
    """Read ``spec`` once and check that it has text, and text in ``split``."""
    corpus = load_corpus(spec)
    if not any(document.text.strip() for document in corpus.documents):
        raise CorpusError(f"{label} {spec!r} holds no text: pass a corpus with documents in it")
    if not corpus.text(split).strip():
        raise CorpusError(f"{label} {spec!r} has no {split} text ({len(corpus.documents)} document(s); the held-out "
                          "split takes whole documents): add documents, or split the text into several files/lines")
    return corpus



# A token never covers less than one byte, and text averages about 4 bytes per token: a split
# with fewer bytes than the window is surely too short, one with 16x as many surely long enough;
# only in between is the tokenizer loaded (a few seconds) to count.
_SURELY_ENOUGH_BYTES_PER_TOKEN = 16


def check_enough_tokens(corpus: Corpus, split: str, needed: int, label: str, models: list[str]) -> None:
    """``corpus``'s ``split`` holds at least one window of ``needed`` tokens for every model's tokenizer."""
    size = len(corpus.text(split).encode("utf-8"))
    if size >= _SURELY_ENOUGH_BYTES_PER_TOKEN * needed:
        return
    counts = {"bytes": size} if size < needed else {
        name: len(load_tokenizer(locate_model(name))(corpus.text(split), add_special_tokens=False)["input_ids"])
        for name in models
    }
    short = {name: count for name, count in counts.items() if count < needed}
    if short:
        name, count = next(iter(short.items()))
        unit = "bytes" if name == "bytes" else f"tokens for {name}"
        raise CorpusError(f"the {split} split of corpus {corpus.name!r} has {count} {unit}, fewer than one "
                          f"{label} window of {needed}: pass a longer corpus or a smaller window")
