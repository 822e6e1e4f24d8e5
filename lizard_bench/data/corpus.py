"""Corpora: named document collections with a deterministic train / held-out split.

The embedded corpus is CPython's own reference documentation (``pydoc_data.topics``), present
on every machine with no download, so distillation and perplexity run offline. Users with the
hub plug in real corpora (cleaned Alpaca, WikiText) through ``hf:`` specs; local ``.txt`` and
``.jsonl`` files work too. Every source splits at document level so no held-out text leaks
into training.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lizard_bench.errors import InputError

SPLITS = ("train", "heldout")


class CorpusError(InputError, ValueError):
    """A corpus spec that cannot be read; the message says what to pass instead."""


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str


@dataclass
class Corpus:
    """A named list of documents; ``split`` assigns each to train or held-out deterministically."""

    name: str
    documents: list[Document]
    heldout_fraction: float = 0.1

    def split(self, which: str) -> list[Document]:
        """Documents of ``which`` split, in a stable order.

        Documents are ranked by a hash of their id and taken into held-out until it holds
        ``heldout_fraction`` of the characters: stable across machines and Python versions
        (unlike ``hash()``), independent of the documents' order, and balanced by size rather
        than count (the Python docs' topics range from a few lines to 40K characters).
        """
        if which not in SPLITS:
            raise CorpusError(f"unknown split {which!r}: choose one of {', '.join(SPLITS)}")
        ranked = sorted(self.documents, key=lambda d: hashlib.sha256(d.doc_id.encode()).hexdigest())
        budget = self.heldout_fraction * sum(len(d.text) for d in self.documents)
        heldout_ids: set[str] = set()
        taken = 0
        for doc in ranked:
            if taken >= budget:
                break
            heldout_ids.add(doc.doc_id)
            taken += len(doc.text)
        keep = (lambda d: d.doc_id in heldout_ids) if which == "heldout" else (lambda d: d.doc_id not in heldout_ids)
        return sorted((d for d in self.documents if keep(d)), key=lambda d: d.doc_id)

    def text(self, which: str, separator: str = "\n\n") -> str:
        return separator.join(d.text for d in self.split(which))


def load_corpus(spec: str) -> Corpus:
    """``pydoc`` | a ``.txt`` file or folder of them | a ``.jsonl`` file with a ``text`` field | ``hf:ID[:CONFIG]``."""
    if spec == "pydoc":
        return pydoc_corpus()
    if spec.startswith("hf:"):
        return hub_corpus(spec[3:])
    path = Path(spec).expanduser()
    if path.suffix in (".txt", ".jsonl") and not path.exists():
        raise CorpusError(f"corpus file {spec} does not exist: check the path, or pass 'pydoc' (the embedded corpus)")
    if path.is_dir():
        return Corpus(name=spec, documents=[_text_document(p, root=path) for p in sorted(path.rglob("*.txt"))])
    if path.suffix == ".txt" and path.is_file():
        return Corpus(name=spec, documents=[_text_document(path, root=path.parent)])
    if path.suffix == ".jsonl" and path.is_file():
        return Corpus(name=spec, documents=list(_jsonl_documents(path)))
    raise CorpusError(
        f"cannot read corpus {spec!r}: pass 'pydoc', a .txt file or folder, a .jsonl file with a 'text' field, "
        "or hf:DATASET_ID[:CONFIG]"
    )


def pydoc_corpus() -> Corpus:
    """CPython's reference documentation, one document per help topic."""
    from pydoc_data.topics import topics

    return Corpus(name="pydoc", documents=[Document(doc_id=key, text=text) for key, text in sorted(topics.items())])


def _text_document(path: Path, root: Path) -> Document:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path} is not UTF-8 text (byte {exc.start}): pass plain text files") from None
    return Document(doc_id=str(path.relative_to(root)), text=text)


def _jsonl_documents(path: Path) -> Iterable[Document]:
    with open(path, encoding="utf-8") as handle:
        for number in itertools.count(1):
            try:
                line = handle.readline()
            except UnicodeDecodeError:
                raise CorpusError(f"{path}:{number}: not UTF-8 text: pass a JSON Lines file") from None
            if not line:
                return
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text = row["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise CorpusError(f"{path}:{number}: expected a JSON object with a 'text' field") from None
            if not isinstance(text, str):
                raise CorpusError(f"{path}:{number}: 'text' must be a string, got {type(text).__name__}")
            yield Document(doc_id=str(row.get("id", number)), text=text)


def hub_corpus(dataset: str) -> Corpus:
    """A ``datasets`` id such as ``wikitext:wikitext-2-raw-v1``; needs the hub or a local cache."""
    from datasets import load_dataset

    dataset_id, _, config = dataset.partition(":")
    try:
        rows = load_dataset(dataset_id, config or None, split="train")
    except Exception as exc:  # datasets raises many types for "not reachable"; report one line
        raise CorpusError(f"cannot load dataset {dataset_id!r}: {str(exc).splitlines()[0]}") from None
    field = "text" if "text" in rows.column_names else rows.column_names[0]
    docs = [Document(doc_id=str(i), text=str(row[field])) for i, row in enumerate(rows) if str(row[field]).strip()]
    return Corpus(name=f"hf:{dataset}", documents=docs)
