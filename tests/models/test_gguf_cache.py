"""The converted copy of a GGUF model: used only when complete and current, never a reason to fail a load.

A tiny random Llama and the character tokenizer stand in for a converted model, and a small file of
bytes for the GGUF file (the cache only reads its path, size and modification time). The real
conversion of the embedded SmolLM2 is checked in tests/test_embedded_model.py.
"""

from __future__ import annotations

import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lizard_bench.models import gguf_cache
from tests.tiny_models import character_tokenizer, tiny_llama


@pytest.fixture
def gguf_file(tmp_path):
    path = tmp_path / "models" / "tiny.Q4_0.gguf"
    path.parent.mkdir()
    path.write_bytes(b"GGUF fixture bytes: never parsed")
    return path


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


def test_a_changed_file_is_converted_afresh(gguf_file, root):
    gguf_cache.store(tiny_llama(), character_tokenizer(), gguf_file, root)
    stat = gguf_file.stat()
    os.utime(gguf_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert gguf_cache.find(gguf_file, root) is None
    gguf_file.write_bytes(b"a different file")
    assert gguf_cache.find(gguf_file, root) is None


def test_a_directory_without_its_completion_marker_is_not_used(gguf_file, root):
    copy = gguf_cache.store(tiny_llama(), character_tokenizer(), gguf_file, root)
    (copy / gguf_cache.COMPLETE_MARKER).unlink()  # as if a conversion had stopped half-way
    assert gguf_cache.find(gguf_file, root) is None


def test_switched_off_it_neither_finds_nor_writes(gguf_file, root, monkeypatch):
    gguf_cache.store(tiny_llama(), character_tokenizer(), gguf_file, root)
    monkeypatch.setenv(gguf_cache.DISABLE_ENV_VAR, "0")
    assert gguf_cache.find(gguf_file, root) is None
    other = gguf_file.with_name("other.gguf")
    other.write_bytes(b"another fixture")
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
