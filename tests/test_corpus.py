"""Corpora: the embedded split is deterministic, disjoint and sized as asked; other sources plug in."""

import json

import pytest

from lizard_bench.data.corpus import Corpus, CorpusError, Document, load_corpus, pydoc_corpus


def test_pydoc_split_is_deterministic_disjoint_and_complete():
    first, second = pydoc_corpus(), pydoc_corpus()
    train, heldout = first.split("train"), first.split("heldout")
    assert [d.doc_id for d in heldout] == [d.doc_id for d in second.split("heldout")]
    train_ids, heldout_ids = {d.doc_id for d in train}, {d.doc_id for d in heldout}
    assert not train_ids & heldout_ids
    assert train_ids | heldout_ids == {d.doc_id for d in first.documents}
    share = sum(len(d.text) for d in heldout) / sum(len(d.text) for d in first.documents)
    assert 0.1 <= share < 0.25, share


def test_split_does_not_depend_on_document_order():
    docs = [Document(f"doc{i}", "x" * (i + 1) * 10) for i in range(40)]
    forward = Corpus("c", docs).split("heldout")
    backward = Corpus("c", list(reversed(docs))).split("heldout")
    assert forward == backward


def test_unknown_split_is_rejected():
    with pytest.raises(CorpusError, match="unknown split"):
        pydoc_corpus().split("test")


def test_local_sources(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("alpha")
    (tmp_path / "docs" / "b.txt").write_text("beta")
    assert {d.text for d in load_corpus(str(tmp_path / "docs")).documents} == {"alpha", "beta"}
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(json.dumps({"text": "one"}) + "\n\n" + json.dumps({"id": "x", "text": "two"}) + "\n")
    assert [(d.doc_id, d.text) for d in load_corpus(str(jsonl)).documents] == [("1", "one"), ("x", "two")]


def test_bad_sources_say_what_to_pass(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "no text field"}\n')
    with pytest.raises(CorpusError, match=r"bad\.jsonl:1: expected a JSON object with a 'text' field"):
        load_corpus(str(bad))
    with pytest.raises(CorpusError, match="pass 'pydoc'"):
        load_corpus(str(tmp_path / "missing.parquet"))
