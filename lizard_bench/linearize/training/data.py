"""Training data: a corpus's train split as fixed-length token windows in a seeded, resumable order.

Documents are tokenized once and packed into one stream (an end-of-sequence token between
documents), then cut into non-overlapping windows of ``seq_len``: no padding, so every
position is a real token and the attention mask stays plain causal, which the linearized
layers require. The order in which windows are visited comes from :class:`WindowSampler`:
a function of (seed, position in the stream) only, so a resumed run reads exactly the
windows an uninterrupted run would have read, on any number of processes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Dataset, Sampler

from lizard_bench.data.corpus import Corpus, CorpusError, Document, load_corpus

_ALPACA_FIELDS = ("instruction", "output")


def format_alpaca(row: dict) -> str:
    """One instruction-tuning example as a single training text (instruction, optional input, response).

    Distillation on instruction data sees prompts and answers alike; keeping the fields'
    roles visible with headers matches how instruction-tuned teachers were trained.
    """
    parts = [f"### Instruction:\n{str(row['instruction']).strip()}"]
    if str(row.get("input") or "").strip():
        parts.append(f"### Input:\n{str(row['input']).strip()}")
    parts.append(f"### Response:\n{str(row['output']).strip()}")
    return "\n\n".join(parts)


def documents_from_rows(rows: Sequence[dict], columns: Sequence[str]) -> list[Document]:
    """Rows of a table as documents: Alpaca-style rows are formatted, others read ``text`` or the first column."""
    if all(name in columns for name in _ALPACA_FIELDS):
        texts = [format_alpaca(row) for row in rows]
    else:
        field = "text" if "text" in columns else columns[0]
        texts = [str(row[field]) for row in rows]
    return [Document(doc_id=str(i), text=text) for i, text in enumerate(texts) if text.strip()]


def load_training_corpus(corpus: Corpus | str) -> Corpus:
    """A corpus for distillation. ``hf:`` datasets with instruction/input/output columns (cleaned
    Alpaca) are formatted as whole examples; the general loader would keep only one column."""
    if isinstance(corpus, Corpus):
        return corpus
    if not corpus.startswith("hf:"):
        return load_corpus(corpus)
    from datasets import load_dataset

    dataset_id, _, config = corpus[3:].partition(":")
    try:
        rows = load_dataset(dataset_id, config or None, split="train")
    except Exception as exc:  # datasets raises many types for "not reachable"; report one line
        raise CorpusError(f"cannot load dataset {dataset_id!r}: {str(exc).splitlines()[0]}") from None
    return Corpus(name=corpus, documents=documents_from_rows(rows, rows.column_names))


def tokenize_documents(documents: Sequence[Document], tokenizer) -> torch.Tensor:
    """All documents as one 1-D token stream (int32 to halve memory), EOS between documents."""
    ids = tokenizer([d.text for d in documents], add_special_tokens=False)["input_ids"]
    separator = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    stream: list[int] = []
    for piece in ids:
        stream.extend(piece)
        stream.extend(separator)
    return torch.tensor(stream, dtype=torch.int32)


class TokenWindows(Dataset):
    """Non-overlapping ``seq_len`` windows of a token stream; the tail shorter than a window is dropped."""

    def __init__(self, tokens: torch.Tensor, seq_len: int) -> None:
        count = tokens.numel() // seq_len
        if count == 0:
            raise CorpusError(f"the corpus has {tokens.numel()} tokens, fewer than one window of {seq_len}")
        self.windows = tokens[: count * seq_len].view(count, seq_len)
        self.seq_len = seq_len

    @classmethod
    def from_corpus(cls, corpus: Corpus, tokenizer, seq_len: int, split: str = "train") -> TokenWindows:
        documents = corpus.split(split)
        if not documents:
            raise CorpusError(f"corpus {corpus.name!r} has no {split} documents")
        return cls(tokenize_documents(documents, tokenizer), seq_len)

    def __len__(self) -> int:
        return self.windows.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.windows[index].long()

    @property
    def num_tokens(self) -> int:
        return self.windows.numel()


class WindowSampler(Sampler[int]):
    """Window indices for stream positions ``start .. start + length - 1``.

    Position t reads window ``permutation(seed, epoch)[t mod N]`` with epoch = t // N: a fresh
    shuffle per pass over the data, and no state besides (seed, t), which is what makes
    resuming exact. Under accelerate the batches of this one stream are dealt to the
    processes in turn, so every process count reads the same windows in the same steps.
    """

    def __init__(self, num_windows: int, seed: int, start: int, length: int) -> None:
        self.num_windows, self.seed, self.start, self.length = num_windows, seed, start, length

    def permutation(self, epoch: int) -> torch.Tensor:
        rng = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_windows, generator=rng)

    def __iter__(self) -> Iterator[int]:
        epoch, order = -1, None
        for position in range(self.start, self.start + self.length):
            if position // self.num_windows != epoch:
                epoch = position // self.num_windows
                order = self.permutation(epoch)
            yield int(order[position % self.num_windows])

    def __len__(self) -> int:
        return self.length
