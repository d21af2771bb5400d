"""The n-gram frequency tables of the train split (``data/freq/{unigrams,bigrams,trigrams}.csv``).

Each table lists the n-grams of the token stream with their counts (columns ``rank, ngram,
count``), by descending count, ties in first-occurrence order, rank from 1; an n-gram's tokens are
joined as text (words with a space, characters glued). Counting is over integer ids, chunk by
chunk, so memory does not grow with the corpus: every distinct token gets an id in first-occurrence
order (its own, not the vocabulary's, so tokens the vocabulary maps to ``<unk>`` stay apart), each
chunk's n-grams are keyed ``((a·B) + b)·B + c`` and counted with ``np.unique``, and the chunk
tables are merged keeping each n-gram's count and first position. A chunk starts with the last
``n − 1`` ids of the one before, so an n-gram across a chunk border is counted once, in the chunk
where it ends.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from seqlm.core.errors import DataError

FREQ_TABLES = {1: "unigrams", 2: "bigrams", 3: "trigrams"}
KEY_BASE = 1 << 21  # distinct tokens at most, so that a trigram key fits in int64


def merge_tables(
    keys: np.ndarray, counts: np.ndarray, first: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum the counts of equal keys and keep their earliest position: sorted unique keys."""
    if keys.size == 0:
        return keys, counts, first
    order = np.lexsort((first, keys))  # by key, then by position
    keys, counts, first = keys[order], counts[order], first[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.add.reduceat(counts, starts), first[starts]


@dataclass
class NgramTally:
    """The running count of the n-grams of one order over consecutive chunks of ids."""

    n: int
    merge_at: int = 1 << 22  # pending rows that trigger a merge (doubles with the table)
    seen: int = 0  # ids consumed so far
    _tail: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def add(self, ids: np.ndarray) -> None:
        """Count the n-grams ending in ``ids`` (the ids after all those added before)."""
        window = np.r_[self._tail, np.asarray(ids, dtype=np.int64)]
        offset = self.seen - self._tail.size  # stream position of window[0]
        self.seen += ids.size
        self._tail = window[max(window.size - (self.n - 1), 0) :] if self.n > 1 else window[:0]
        size = window.size - self.n + 1
        if size <= 0:
            return
        key = window[:size].copy()
        for j in range(1, self.n):
            key = key * KEY_BASE + window[j : j + size]
        uniq, first, counts = np.unique(key, return_index=True, return_counts=True)
        self._parts.append((uniq, counts.astype(np.int64), first.astype(np.int64) + offset))
        if sum(p[0].size for p in self._parts) > self.merge_at:
            self._merge()
            self.merge_at = max(self.merge_at, 2 * self._parts[0][0].size)

    def _merge(self) -> None:
        if len(self._parts) > 1:
            cat = [np.concatenate([p[i] for p in self._parts]) for i in range(3)]
            self._parts = [merge_tables(*cat)]

    def table(self) -> tuple[np.ndarray, np.ndarray]:
        """Keys and counts, by descending count, ties in first-occurrence order."""
        self._merge()
        if not self._parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        keys, counts, first = self._parts[0]
        order = np.lexsort((first, -counts))
        return keys[order], counts[order]

    def decode(self, keys: np.ndarray) -> np.ndarray:
        """``(rows, n)`` token ids of each key."""
        out = np.empty((keys.size, self.n), dtype=np.int64)
        rest = keys.copy()
        for j in range(self.n - 1, -1, -1):
            out[:, j] = rest % KEY_BASE
            rest //= KEY_BASE
        return out


class TokenIndex:
    """Ids for every distinct token, in first-occurrence order."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.tokens: list[str] = []

    def encode(self, toks: Sequence[str]) -> np.ndarray:
        """The ids of ``toks``, giving new tokens the next ids."""
        index = self.index
        for t in dict.fromkeys(toks):  # new tokens in first-occurrence order
            if t not in index:
                index[t] = len(self.tokens)
                self.tokens.append(t)
        if len(self.tokens) > KEY_BASE:
            raise DataError(
                f"the train split has more than {KEY_BASE} distinct tokens: too many to key "
                "its trigrams in 64 bits"
            )
        return np.fromiter(map(index.__getitem__, toks), dtype=np.int64, count=len(toks))


def freq_tables_csv(
    chunks: Iterable[Sequence[str]], token: str, orders: Sequence[int] = tuple(FREQ_TABLES)
) -> dict[int, str]:
    """The frequency table (CSV with a header row) of each order, from a token stream in pieces."""
    index = TokenIndex()
    tallies = {n: NgramTally(n) for n in orders}
    for toks in chunks:
        ids = index.encode(toks)
        for tally in tallies.values():
            tally.add(ids)
    sep = " " if token == "word" else ""
    out = {}
    for n, tally in tallies.items():
        keys, counts = tally.table()
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(("rank", "ngram", "count"))
        names = index.tokens
        for rank, (row, c) in enumerate(zip(tally.decode(keys).tolist(), counts.tolist()), 1):
            w.writerow((rank, sep.join([names[i] for i in row]), c))
        out[n] = buf.getvalue()
    return out


def freq_table_csv(toks: Sequence[str], n: int, token: str) -> str:
    """The frequency table of n-grams of an in-memory token stream, as CSV with a header row."""
    return freq_tables_csv([toks], token, (n,))[n]
