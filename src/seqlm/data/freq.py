"""The n-gram frequency tables of the train split (``data/freq/{unigrams,bigrams,trigrams}.csv``).

Each table lists the n-grams of the token stream with their counts (columns ``rank, ngram,
count``), by descending count, ties in first-occurrence order, rank from 1; an n-gram's tokens are
joined as text (words with a space, characters glued). Counting is over integer ids, chunk by
chunk, so memory does not grow with the corpus: every distinct token gets an id in first-occurrence
order (its own, not the vocabulary's, so tokens the vocabulary maps to ``<unk>`` stay apart), each
chunk's n-grams are keyed ``((a·B) + b)·B + c`` (``B`` a power of two above every id so far, grown
as new tokens come) and counted by sorting (:func:`unique_first`), or, while ``B ** n`` is at most
:data:`DENSE_KEYS` (characters), in a table of every key with its first position; the chunk
tables are merged keeping each n-gram's count and first position. A chunk starts with the last
``n − 1`` ids of the one before, so an n-gram across a chunk border is counted once, in the chunk
where it ends.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from seqlm.core.errors import DataError

FREQ_TABLES = {1: "unigrams", 2: "bigrams", 3: "trigrams"}
KEY_BASE = 1 << 21  # distinct tokens at most, so that a trigram key fits in int64
DENSE_KEYS = 1 << 22  # key spaces counted in a table of every key (16 bytes a key)


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


def unique_first(keys: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted unique keys of ``keys`` (all below ``space``), each one's first index and count.

    When key and index fit in 63 bits together they are packed into one integer and sorted with
    ``np.sort`` (much faster than the stable argsort ``np.unique(return_index=True)`` needs)."""
    bits = max(keys.size - 1, 1).bit_length()
    if space > 1 << (62 - bits):
        uniq, first, counts = np.unique(keys, return_index=True, return_counts=True)
        return uniq, first.astype(np.int64), counts.astype(np.int64)
    packed = np.sort((keys << bits) | np.arange(keys.size, dtype=np.int64))
    sorted_keys = packed >> bits
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    counts = np.diff(np.r_[starts, keys.size])
    return sorted_keys[starts], packed[starts] & ((1 << bits) - 1), counts.astype(np.int64)


@dataclass
class NgramTally:
    """The running count of the n-grams of one order over consecutive chunks of ids."""

    n: int
    merge_at: int = 1 << 22  # pending rows that trigger a merge (doubles with the table)
    seen: int = 0  # ids consumed so far
    _tail: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    base: int = 2  # keys are written in this base: a power of two above every id seen
    _counts: np.ndarray | None = None  # the table of every key, while the key space is small
    _first: np.ndarray | None = None

    def _rebase(self, ids: int) -> None:
        """Grow :attr:`base` to hold ``ids`` ids, rewriting the keys counted so far."""
        new = 1 << max(ids - 1, 1).bit_length()
        if new > KEY_BASE:
            raise DataError(
                f"the train split has more than {KEY_BASE} distinct tokens: too many to key "
                "its trigrams in 64 bits"
            )
        self._fold_dense()
        for i, (keys, counts, first) in enumerate(self._parts):
            self._parts[i] = (self.encode(self.decode(keys), new), counts, first)
        self.base = new

    def encode(self, grams: np.ndarray, base: int) -> np.ndarray:
        """Keys in ``base`` of ``(rows, n)`` token ids (order preserving)."""
        key = grams[:, 0].copy()
        for j in range(1, self.n):
            key = key * base + grams[:, j]
        return key

    def add(self, ids: np.ndarray) -> None:
        """Count the n-grams ending in ``ids`` (the ids after all those added before)."""
        window = np.r_[self._tail, np.asarray(ids, dtype=np.int64)]
        offset = self.seen - self._tail.size  # stream position of window[0]
        self.seen += ids.size
        self._tail = window[max(window.size - (self.n - 1), 0) :] if self.n > 1 else window[:0]
        size = window.size - self.n + 1
        if size <= 0:
            return
        if window.size and int(window.max()) >= self.base:
            self._rebase(int(window.max()) + 1)
        key = window[:size].copy()
        for j in range(1, self.n):
            key = key * self.base + window[j : j + size]
        if self.base**self.n <= DENSE_KEYS:
            self._add_dense(key, offset)
            return
        uniq, first, counts = unique_first(key, self.base**self.n)
        self._parts.append((uniq, counts, first + offset))
        if sum(p[0].size for p in self._parts) > self.merge_at:
            self._merge()
            self.merge_at = max(self.merge_at, 2 * self._parts[0][0].size)

    def _add_dense(self, key: np.ndarray, offset: int) -> None:
        """Count a chunk's keys in the table of every key; a key's first position is set when
        the chunk first holds it."""
        if self._counts is None or self._first is None:
            self._counts = np.zeros(self.base**self.n, dtype=np.int64)
            self._first = np.full(self.base**self.n, -1, dtype=np.int64)
        new = self._counts[key] == 0
        if new.any():
            uniq, first = np.unique(key[new], return_index=True)
            self._first[uniq] = np.flatnonzero(new)[first] + offset
        np.add.at(self._counts, key, 1)  # numpy 2's fast path for int64

    def _fold_dense(self) -> None:
        """The table of every key becomes a part like a chunk's (sorted unique keys)."""
        if self._counts is not None and self._first is not None:
            keys = np.flatnonzero(self._counts).astype(np.int64)
            self._parts.append((keys, self._counts[keys], self._first[keys]))
        self._counts = self._first = None

    def _merge(self) -> None:
        self._fold_dense()
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
            out[:, j] = rest % self.base
            rest //= self.base
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


class FreqCounter:
    """The frequency tables of several orders, counted over consecutive chunks of token ids; the
    orders are independent, so with ``threads > 1`` they count side by side (numpy's sorts release
    the GIL), the same tables either way."""

    def __init__(
        self, token: str, orders: Sequence[int] = tuple(FREQ_TABLES), threads: int = 1
    ) -> None:
        self.sep = " " if token == "word" else ""
        self.tallies = {n: NgramTally(n) for n in orders}
        self.pool = ThreadPoolExecutor(min(threads, len(orders))) if threads > 1 else None

    def add(self, ids: np.ndarray) -> None:
        """Count the n-grams ending in the next chunk of ids (:class:`TokenIndex` ids)."""
        if self.pool is None:
            for tally in self.tallies.values():
                tally.add(ids)
            return
        for done in [self.pool.submit(t.add, ids) for t in self.tallies.values()]:
            done.result()  # re-raises a tally's error

    def tables_csv(self, names: Sequence[str]) -> dict[int, str]:
        """Each order's table as CSV with a header row; ``names[i]`` is the token of id ``i``."""
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        out = {}
        table = np.array(names, dtype=object)
        for n, tally in self.tallies.items():
            keys, counts = tally.table()
            grams = tally.decode(keys)
            columns = [table[grams[:, j]].tolist() for j in range(n)]
            texts = [self.sep.join(gram) for gram in zip(*columns)] if n > 1 else columns[0]
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(("rank", "ngram", "count"))
            w.writerows(zip(range(1, keys.size + 1), texts, counts.tolist()))
            out[n] = buf.getvalue()
        return out


def freq_tables_csv(
    chunks: Iterable[Sequence[str]], token: str, orders: Sequence[int] = tuple(FREQ_TABLES)
) -> dict[int, str]:
    """The frequency table (CSV with a header row) of each order, from a token stream in pieces."""
    index, counter = TokenIndex(), FreqCounter(token, orders)
    for toks in chunks:
        counter.add(index.encode(toks))
    return counter.tables_csv(index.tokens)


def freq_table_csv(toks: Sequence[str], n: int, token: str) -> str:
    """The frequency table of n-grams of an in-memory token stream, as CSV with a header row."""
    return freq_tables_csv([toks], token, (n,))[n]
