"""Text corpora behind one small interface (embedded Python docs, local files, hub datasets)."""

from lizard_bench.data.corpus import Corpus, CorpusError, load_corpus

__all__ = ["Corpus", "CorpusError", "load_corpus"]
