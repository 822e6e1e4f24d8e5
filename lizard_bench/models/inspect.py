"""What a model is, read from its headers without loading its weights.

A truncated download or a garbage file otherwise fails minutes later, deep inside
transformers, after other variants have trained; and a model that cannot be linearized (a
GPT-2) would load before being refused. Reading the GGUF header, ``config.json`` and the
safetensors headers takes well under a second and lets the run refuse such input up front.
"""

from __future__ import annotations

import dataclasses
import json
import math
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from lizard_bench.errors import InputError, first_line
from lizard_bench.models.locate import EMBEDDED_MODELS, ModelNotFoundError, ModelSource

# architectures whose learned position table is a hard limit on the sequence length
ABSOLUTE_POSITION_TYPES = ("gpt2", "gpt_neo", "gpt_bigcode", "opt", "biogpt")


class ModelFileError(InputError):
    """A model file that exists but cannot be what it claims to be (truncated, garbage, no weights)."""


@dataclass(frozen=True)
class ModelFacts:
    """The few properties a suite is checked against before the model loads."""

    model_type: str | None  # transformers' model_type ('llama', 'gpt2', ...); None when unknown (hub, offline)
    has_kv_heads: bool  # the config names num_key_value_heads (Llama-family attention)
    max_positions: int | None  # a hard sequence-length limit (learned absolute positions), else None
    parameters: int | None = None  # counted from the weight headers, or estimated from the config (plans only)
    # the sequence length it was trained on (max_position_embeddings, a GGUF's context_length): for RoPE
    # models no limit, but inputs past it score worse; None when the files do not say
    trained_positions: int | None = None


def inspect_model(source: ModelSource) -> ModelFacts:
    """Check ``source``'s files and return its :class:`ModelFacts`; raises :class:`ModelFileError` with advice."""
    if source.kind == "gguf":
        return _gguf_facts(Path(source.location))
    if source.kind == "directory":
        directory = Path(source.location)
        counted = _check_weight_files(directory)
        facts = _config_facts(_read_config(directory / "config.json"))
        return dataclasses.replace(facts, parameters=counted or facts.parameters)
    return _hub_facts(source.location)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path} is not a readable JSON config ({exc}): re-save or re-download it") from None
    if not isinstance(config, dict):
        raise ModelFileError(f"{path} must hold a JSON object: re-save or re-download the model")
    return config


def _config_facts(config: dict[str, Any]) -> ModelFacts:
    model_type = config.get("model_type")
    limit = config.get("n_positions") or config.get("max_position_embeddings")
    limit = int(limit) if isinstance(limit, (int, float)) and limit > 0 else None
    return ModelFacts(model_type=model_type, has_kv_heads="num_key_value_heads" in config,
                      max_positions=limit if model_type in ABSOLUTE_POSITION_TYPES else None,
                      parameters=_estimated_parameters(config), trained_positions=limit)


def _estimated_parameters(config: dict[str, Any]) -> int | None:
    """A decoder's size from its config: embeddings, attention (grouped KV) and a gated MLP per layer."""
    try:
        d, layers, vocab = int(config["hidden_size"]), int(config["num_hidden_layers"]), int(config["vocab_size"])
    except (KeyError, TypeError, ValueError):
        return None
    heads = int(config.get("num_attention_heads") or 1)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    ff = int(config.get("intermediate_size") or 4 * d)
    attention = 2 * d * d + 2 * d * (d * kv_heads // heads)
    embeddings = vocab * d * (1 if config.get("tie_word_embeddings", True) else 2)
    return embeddings + layers * (attention + 3 * d * ff)


def _hub_facts(repo_id: str) -> ModelFacts:
    """The hub model's config from the local cache, or a one-line refusal when offline without it."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.utils import HfHubHTTPError

    cached = try_to_load_from_cache(repo_id, "config.json")
    if isinstance(cached, str):
        return _config_facts(_read_config(Path(cached)))
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelNotFoundError(
            f"model {repo_id!r} is neither a local path nor in the Hugging Face cache, and HF_HUB_OFFLINE=1 is set: "
            "download it on a connected machine first, or pass a local directory, a .gguf file or an embedded "
            f"alias ({', '.join(EMBEDDED_MODELS)})"
        )
    try:
        return _config_facts(_read_config(Path(hf_hub_download(repo_id, "config.json"))))
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelNotFoundError(f"model {repo_id!r} is not a local path and the hub does not serve it: "
                                 f"{first_line(exc)}") from None


def _check_weight_files(directory: Path) -> int | None:
    """Refuse missing or truncated weights; returns the parameter count of the safetensors files (None: .bin)."""
    safetensors = sorted(directory.glob("*.safetensors"))
    if not safetensors and not list(directory.glob("*.bin")) and not list(directory.glob("*.pt")):
        raise ModelFileError(f"{directory} has a config.json but no weights (*.safetensors or *.bin): "
                             "save the model with save_pretrained or download it completely")
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = set((_read_config(index).get("weight_map") or {}).values())
        missing = sorted(name for name in shards if not (directory / name).is_file())
        if missing:
            raise ModelFileError(f"{directory} lacks weight shard(s) {', '.join(missing)} named by {index.name}: "
                                 "download the model completely")
    return sum(check_safetensors(path) for path in safetensors) or None


def check_safetensors(path: Path, advice: str = "re-save or re-download it") -> int:
    """The header parses and every tensor's bytes lie inside the file (a truncated copy fails here).

    Returns the number of values the file holds. ``advice`` ends the error: what rebuilds the file
    depends on who wrote it (a download, or lizard-bench's own training).
    """
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            if header_len > size - 8:
                raise ValueError("header longer than the file")
            header = json.loads(handle.read(header_len))
        tensors = [entry for name, entry in header.items() if name != "__metadata__"]
        end = max((entry["data_offsets"][1] for entry in tensors), default=0)
        values = sum(math.prod(entry["shape"]) for entry in tensors)
    except (struct.error, ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path} is not a valid safetensors file ({exc}): {advice}") from None
    if 8 + header_len + end > size:
        raise ModelFileError(f"{path} is truncated ({size} bytes, its header needs {8 + header_len + end}): {advice}")
    return values


# GGUF metadata value types (the GGUF specification): fixed sizes, 8 = string, 9 = array
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def _gguf_facts(path: Path) -> ModelFacts:
    """Walk the GGUF header (metadata and tensor table) and check the tensor data fits in the file."""
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != b"GGUF":
                raise ValueError("no GGUF magic number")
            _version, tensor_count, kv_count = struct.unpack("<IQQ", _read(handle, 20))
            metadata = {_read_string(handle): _read_value(handle) for _ in range(kv_count)}
            tensors = [_read_tensor_info(handle) for _ in range(tensor_count)]
            alignment = int(metadata.get("general.alignment", 32))
            data_start = -(-handle.tell() // alignment) * alignment
    except (ValueError, struct.error, UnicodeDecodeError, OverflowError, MemoryError) as exc:
        raise ModelFileError(f"{path} is not a valid GGUF file ({exc}): re-download it or pass another model") from None
    needed = data_start + max((offset + nbytes for offset, nbytes, _ in tensors), default=0)
    if needed > path.stat().st_size:
        raise ModelFileError(f"{path} is truncated ({path.stat().st_size} bytes, its header needs {needed}): "
                             "re-download it")
    architecture = metadata.get("general.architecture")
    context = metadata.get(f"{architecture}.context_length")
    return ModelFacts(model_type=architecture, has_kv_heads=f"{architecture}.attention.head_count_kv" in metadata,
                      max_positions=None, parameters=sum(values for _, _, values in tensors),
                      trained_positions=int(context) if isinstance(context, int) and context > 0 else None)


def _read(handle: BinaryIO, count: int) -> bytes:
    data = handle.read(count)
    if len(data) != count:
        raise ValueError("the header ends early")
    return data


def _read_string(handle: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", _read(handle, 8))
    if length > 1 << 24:
        raise ValueError(f"implausible string length {length}")
    return _read(handle, length).decode("utf-8")


def _read_value(handle: BinaryIO, kind: int | None = None) -> Any:
    kind = struct.unpack("<I", _read(handle, 4))[0] if kind is None else kind
    if kind in _GGUF_SCALARS:
        fmt = "<" + _GGUF_SCALARS[kind]
        return struct.unpack(fmt, _read(handle, struct.calcsize(fmt)))[0]
    if kind == _GGUF_STRING:
        return _read_string(handle)
    if kind == _GGUF_ARRAY:
        item_kind, count = struct.unpack("<IQ", _read(handle, 12))
        if item_kind in _GGUF_SCALARS:  # skipped, not decoded: token scores and types are long
            handle.seek(count * struct.calcsize(_GGUF_SCALARS[item_kind]), os.SEEK_CUR)
            return None
        for _ in range(count):
            _read_value(handle, item_kind)
        return None
    raise ValueError(f"unknown metadata type {kind}")


def _read_tensor_info(handle: BinaryIO) -> tuple[int, int, int]:
    """(offset, bytes, values) of one tensor, its size from the quantisation's block size."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    _read_string(handle)
    (dims,) = struct.unpack("<I", _read(handle, 4))
    shape = struct.unpack(f"<{dims}Q", _read(handle, 8 * dims))
    kind, offset = struct.unpack("<IQ", _read(handle, 12))
    try:
        block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
    except (ValueError, KeyError):
        raise ValueError(f"unknown tensor type {kind}") from None
    elements = math.prod(shape)
    return offset, elements // block * block_bytes, elements


def gguf_table_end(path: Path) -> int:
    """Where the GGUF header, metadata and tensor table end (the tensor data follows, after padding).

    Why separate from ``_gguf_facts``: the converted-copy cache hashes these bytes on every load, so
    this walks them in a mapped buffer and skips strings without decoding them: about 30 ms for the
    embedded SmolLM2 (its vocabulary and merges are ~100k strings), against ~250 ms for the decoding walk.
    """
    try:
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
            if buffer[:4] != b"GGUF":
                raise ValueError("no GGUF magic number")
            _version, tensor_count, kv_count = struct.unpack_from("<IQQ", buffer, 4)
            offset = 24
            for _ in range(kv_count):
                offset = _skip_value(buffer, _skip_string(buffer, offset), None)
            for _ in range(tensor_count):
                offset = _skip_string(buffer, offset)
                (dims,) = struct.unpack_from("<I", buffer, offset)
                offset += 4 + 8 * dims + 12  # shape, then type and data offset
            size = len(buffer)
    except (ValueError, struct.error, OverflowError, OSError) as exc:
        raise ModelFileError(f"{path} is not a valid GGUF file ({exc}): re-download it or pass another model") from None
    if offset > size:
        raise ModelFileError(f"{path} is truncated: its tensor table ends at byte {offset}: re-download it")
    return offset


def _skip_string(buffer: mmap.mmap, offset: int) -> int:
    (length,) = struct.unpack_from("<Q", buffer, offset)
    return offset + 8 + length


def _skip_value(buffer: mmap.mmap, offset: int, kind: int | None) -> int:
    """The offset after one metadata value (``kind`` None: the value starts with its type)."""
    if kind is None:
        (kind,) = struct.unpack_from("<I", buffer, offset)
        offset += 4
    if kind in _GGUF_SCALARS:
        return offset + struct.calcsize("<" + _GGUF_SCALARS[kind])
    if kind == _GGUF_STRING:
        return _skip_string(buffer, offset)
    if kind != _GGUF_ARRAY:
        raise ValueError(f"unknown metadata type {kind}")
    item_kind, count = struct.unpack_from("<IQ", buffer, offset)
    offset += 12
    if item_kind in _GGUF_SCALARS:
        return offset + count * struct.calcsize("<" + _GGUF_SCALARS[item_kind])
    if item_kind == _GGUF_STRING:  # a vocabulary or merges: the long case, kept out of the recursion
        for _ in range(count):
            offset = _skip_string(buffer, offset)
        return offset
    for _ in range(count):  # arrays of arrays
        offset = _skip_value(buffer, offset, item_kind)
    return offset
