"""The corpus stage's logic: token ids per split, data statistics, n-gram frequency tables.

This module also owns reading a split back (:func:`load_split`): every evaluator gets the stream ids,
the character count and the OOV count from here, so they all score the same targets.
"""

from __future__ import annotations

import collections
import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqlm.core.errors import DataError
from seqlm.data.split import SPLITS
from seqlm.data.tokens import count_characters, read_token_file, stream
from seqlm.data.vocab import Vocab

FREQ_TABLES = {1: "unigrams", 2: "bigrams", 3: "trigrams"}


@dataclass(frozen=True)
class SplitData:
    """One split as every model sees it."""

    name: str
    ids: np.ndarray  # (N,) int32 token ids of the stream
    lines: int  # non-empty lines
    characters: int  # length of the running text
    oov: int  # tokens mapped to <unk>

    def stats(self) -> dict[str, float | int]:
        """The split's record in ``metrics/data.json``."""
        tokens = int(self.ids.size)
        return {
            "lines": self.lines,
            "tokens": tokens,
            "characters": self.characters,
            "oov": self.oov,
            "oov_rate": self.oov / tokens if tokens else 0.0,
        }


def encode_split(name: str, token_lines: list[list[str]], token: str, vocab: Vocab) -> SplitData:
    """Encode one split's token lines as its stream of ids."""
    toks = stream(token_lines, token)
    if not toks:
        raise DataError(f"the {name} split has no tokens")
    ids = vocab.encode(toks)
    return SplitData(
        name=name,
        ids=ids,
        lines=len(token_lines),
        characters=count_characters(token_lines, token),
        oov=int(np.count_nonzero(ids == 0)),
    )


def ids_path(corpus_dir: str | os.PathLike[str], split: str) -> Path:
    """Where the corpus stage puts a split's ids."""
    return Path(corpus_dir) / f"{split}.npy"


def tokens_path(tokens_dir: str | os.PathLike[str], split: str) -> Path:
    """Where the tokenize stage puts a split's token lines."""
    return Path(tokens_dir) / f"{split}.jsonl"


def freq_path(freq_dir: str | os.PathLike[str], n: int) -> Path:
    """Where the corpus stage puts the train frequency table of n-grams of order ``n``."""
    return Path(freq_dir) / f"{FREQ_TABLES[n]}.csv"


def load_split(
    corpus_dir: str | os.PathLike[str], tokens_dir: str | os.PathLike[str], split: str, token: str
) -> SplitData:
    """Read a split back: ids from the corpus stage, line and character counts from its tokens."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    token_lines = read_token_file(tokens_path(tokens_dir, split))
    ids = np.load(ids_path(corpus_dir, split), allow_pickle=False)
    return SplitData(
        name=split,
        ids=ids,
        lines=len(token_lines),
        characters=count_characters(token_lines, token),
        oov=int(np.count_nonzero(ids == 0)),
    )


def ngram_counts(toks: Sequence[str], n: int) -> list[tuple[tuple[str, ...], int]]:
    """Counts of the n-grams of a token stream, by descending count, ties in first-occurrence order."""
    grams = zip(*(toks[i:] for i in range(n)))
    counter = collections.Counter(grams)
    return sorted(counter.items(), key=lambda kv: kv[1], reverse=True)


def freq_table_csv(toks: Sequence[str], n: int, token: str) -> str:
    """The frequency table of n-grams as CSV: ``rank,ngram,count`` (rank from 1)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "ngram", "count"])
    joiner = " " if token == "word" else ""
    for rank, (gram, count) in enumerate(ngram_counts(toks, n), start=1):
        w.writerow([rank, joiner.join(gram), count])
    return buf.getvalue()
