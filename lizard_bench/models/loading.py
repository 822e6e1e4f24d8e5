"""Load a located model and its tokenizer as a transformers causal LM."""

from __future__ import annotations

import contextlib
import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from lizard_bench.errors import InputError, first_line
from lizard_bench.models import gguf_cache
from lizard_bench.models.inspect import ModelFileError
from lizard_bench.models.locate import ModelNotFoundError, ModelSource, locate_model

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class LoadedModel:
    """A causal LM ready for evaluation, with where it came from (for result provenance)."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: ModelSource
    device: torch.device


def resolve_device(requested: str = "auto") -> torch.device:
    """'auto' picks CUDA when present; anything else is passed to ``torch.device``."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def load_model(name: str, *, device: str = "auto", dtype: str = "float32") -> LoadedModel:
    """Locate and load ``name`` (embedded alias, .gguf file, directory or hub id) in eval mode.

    GGUF weights are dequantized by transformers to float32 on the first load (they are stored
    4-bit) and kept as a converted copy that later loads read instead (``models/gguf_cache.py``);
    they are then cast to ``dtype``.
    """
    source = locate_model(name)
    torch_dtype = DTYPES[dtype]
    target = resolve_device(device)
    with _loading_errors(name, source):
        tokenizer = load_tokenizer(source)
        if source.kind == "gguf":
            model = _load_gguf(source, tokenizer).to(torch_dtype)
        else:
            model = AutoModelForCausalLM.from_pretrained(source.location, dtype=torch_dtype)
    model.to(target).eval()
    return LoadedModel(model=model, tokenizer=tokenizer, source=source, device=target)


def _load_gguf(source: ModelSource, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The float32 model of a GGUF file: from its converted copy, or converted now (and the copy kept)."""
    directory, filename = source.gguf_dir_and_file
    converted = gguf_cache.find(Path(source.location))
    if converted is not None:
        try:
            model = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32)
        except (OSError, SafetensorError, ValueError, RuntimeError) as exc:  # damaged since it was written
            gguf_cache.discard(converted, exc)
        else:
            # safetensors maps the file: copy the weights into the process's own memory, as a GGUF load leaves
            # them, or the memory probe would count their pages as they are first read during a prefill
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.data = parameter.data.clone()
            model.name_or_path = model.config._name_or_path = directory  # named as a load from the file would be
            return model
    with _quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=filename, dtype=torch.float32)
    _forget_dequantized_gguf(model)
    if model.hf_quantizer is None:  # fully dequantized: an ordinary model, which saves as one
        gguf_cache.store(model, tokenizer, Path(source.location))
    return model


def load_tokenizer(source: ModelSource) -> PreTrainedTokenizerBase:
    """The tokenizer alone (from a GGUF file's converted copy if there is one; parsing the file takes seconds)."""
    with _loading_errors(source.name, source):
        if source.kind == "gguf":
            converted = gguf_cache.find(Path(source.location))
            if converted is not None:
                try:
                    return AutoTokenizer.from_pretrained(converted)
                except (OSError, ValueError) as exc:  # damaged since it was written
                    gguf_cache.discard(converted, exc)
            directory, filename = source.gguf_dir_and_file
            with _quiet_transformers():
                return AutoTokenizer.from_pretrained(directory, gguf_file=filename)
        return AutoTokenizer.from_pretrained(source.location)


@contextlib.contextmanager
def _loading_errors(name: str, source: ModelSource) -> Iterator[None]:
    """Files that passed the header checks but still fail to load are the user's input: one line, not a traceback.

    transformers and safetensors raise OSError for missing or unreadable files and
    SafetensorError (or ValueError / RuntimeError) for corrupt tensor data.
    """
    try:
        yield
    except OSError as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (HF_HUB_OFFLINE=1 is set: download it on a connected machine first)" if offline else ""
        raise ModelNotFoundError(f"could not load model {name!r} from {source.location}{hint}: "
                                 f"{first_line(exc)}") from None
    except (SafetensorError, ValueError, RuntimeError, EOFError, struct.error) as exc:
        if isinstance(exc, InputError):
            raise
        raise ModelFileError(f"model {name!r} from {source.location} has unreadable weights "
                             f"({type(exc).__name__}: {first_line(exc)}): re-save or re-download it") from None


def _forget_dequantized_gguf(model: PreTrainedModel) -> None:
    """Once transformers has dequantized a GGUF file's weights, the model is an ordinary float model.

    It still carries the GGUF quantizer, though, which makes ``save_pretrained`` refuse it ("not
    serializable") and would write a ``quantization_config`` that no directory can honour; so
    both are dropped, unless some weight really is still quantized.
    """
    if all(parameter.is_floating_point() for parameter in model.parameters()):
        model.hf_quantizer = None
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config


class _quiet_transformers:
    """GGUF loading logs a warning per unrecognised metadata key; keep the console readable."""

    def __enter__(self) -> None:
        self._logger = logging.getLogger("transformers")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)
