"""The textbook's own functions, with the textbook's results.

These reproduce the "Dive into Deep Learning" text-preprocessing code exactly — the corpus read as
lines, tokens, the ``Vocab`` class, ``load_corpus_time_machine`` — so a reader can check the book
against seqlm. With the d2l copy of *The Time Machine*::

    >>> lines = read_time_machine()
    >>> len(lines), lines[0]
    (3221, 'the time machine by h g wells')
    >>> corpus, vocab = load_corpus_time_machine()
    >>> len(corpus), len(vocab)
    (170580, 28)

Unlike the pipeline, the textbook glues lines together at character level (``"wells" + "i"``), has
no train/val/test split and builds its vocabulary from all of the text. The pipeline's versions of
these steps live in :mod:`seqlm.data.clean`, :mod:`seqlm.data.tokens` and :mod:`seqlm.data.vocab`.
The textbook's minibatch iterators are in :mod:`seqlm.neural.batching`.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

from seqlm.data.clean import clean_line
from seqlm.neural.batching import seq_data_iter_random, seq_data_iter_sequential

__all__ = [
    "TIME_MACHINE_URL",
    "TIME_MACHINE_SHA1",
    "Vocab",
    "count_corpus",
    "load_corpus_time_machine",
    "read_time_machine",
    "seq_data_iter_random",
    "seq_data_iter_sequential",
    "time_machine_path",
    "tokenize",
]

TIME_MACHINE_URL = "https://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"
TIME_MACHINE_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"
CACHE_ENV = "SEQLM_CACHE"


def time_machine_path() -> Path:
    """A verified local copy of the d2l Time Machine: fetched once (mirror first) into the cache.

    The cache folder is ``$SEQLM_CACHE`` or ``~/.cache/seqlm``.
    """
    from seqlm.data.download import fetch, sha1_of
    from seqlm.params import DownloadParams

    cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "seqlm")
    target = cache / "timemachine.txt"
    if target.is_file() and sha1_of(target) == TIME_MACHINE_SHA1:
        return target
    return fetch(DownloadParams(url=TIME_MACHINE_URL, sha1=TIME_MACHINE_SHA1), target)


def read_time_machine(path: str | os.PathLike[str] | None = None) -> list[str]:
    """The corpus as a list of cleaned lines (the textbook's ``read_time_machine``)."""
    p = Path(path) if path is not None else time_machine_path()
    with open(p, encoding="utf-8") as f:
        lines = f.readlines()
    return [clean_line(line) for line in lines]


def tokenize(lines: list[str], token: str = "word") -> list[list[str]]:
    """Split each line into word or character tokens (the textbook's ``tokenize``)."""
    if token == "word":
        return [line.split() for line in lines]
    if token == "char":
        return [list(line) for line in lines]
    raise ValueError(f"unknown token type {token!r}; choose 'word' or 'char'")


def count_corpus(tokens: list[str] | list[list[str]]) -> collections.Counter[str]:
    """Token frequencies of a 1-D or 2-D token list."""
    if len(tokens) == 0 or isinstance(tokens[0], list):
        tokens = [tok for line in tokens for tok in line]
    return collections.Counter(tokens)  # type: ignore[arg-type]


class Vocab:
    """The textbook's vocabulary: ``<unk>`` first, reserved tokens, then by descending frequency."""

    def __init__(
        self,
        tokens: list[str] | list[list[str]] | None = None,
        min_freq: int = 0,
        reserved_tokens: list[str] | None = None,
    ) -> None:
        tokens = tokens if tokens is not None else []
        reserved_tokens = reserved_tokens if reserved_tokens is not None else []
        counter = count_corpus(tokens)
        self._token_freqs = sorted(counter.items(), key=lambda x: x[1], reverse=True)
        self.idx_to_token = ["<unk>"] + reserved_tokens
        self.token_to_idx = {tok: idx for idx, tok in enumerate(self.idx_to_token)}
        for tok, freq in self._token_freqs:
            if freq < min_freq:
                break
            if tok not in self.token_to_idx:
                self.idx_to_token.append(tok)
                self.token_to_idx[tok] = len(self.idx_to_token) - 1

    def __len__(self) -> int:
        return len(self.idx_to_token)

    def __getitem__(self, tokens):  # type: ignore[no-untyped-def]
        if not isinstance(tokens, (list, tuple)):
            return self.token_to_idx.get(tokens, self.unk)
        return [self.__getitem__(tok) for tok in tokens]

    def to_tokens(self, indices):  # type: ignore[no-untyped-def]
        if hasattr(indices, "__len__") and len(indices) > 1:
            return [self.idx_to_token[int(i)] for i in indices]
        return self.idx_to_token[indices]

    @property
    def unk(self) -> int:
        return 0

    @property
    def token_freqs(self) -> list[tuple[str, int]]:
        return self._token_freqs


def load_corpus_time_machine(
    max_tokens: int = -1, path: str | os.PathLike[str] | None = None, token: str = "char"
) -> tuple[list[int], Vocab]:
    """Token indices of the whole book and its vocabulary (the textbook's function; characters)."""
    lines = read_time_machine(path)
    tokens = tokenize(lines, token)
    vocab = Vocab(tokens)
    corpus = [vocab[tok] for line in tokens for tok in line]
    if max_tokens > 0:
        corpus = corpus[:max_tokens]
    return corpus, vocab
