"""Every n-gram of a training set as integer tables, counted with numpy (no per-token Python loop).

An n-gram of order ``k`` is stored as one int64 *key*: ``prefix * V + last``, where ``prefix`` is
the row of its first ``k - 1`` tokens in the order ``k - 1`` table and ``V`` the vocabulary size.
The order-1 table is the whole vocabulary (row = token id), so keys stay below
``rows(k - 1) * V`` whatever the order: no ``V**k`` overflow, even for words::

    order 1 rows: token ids 0 .. V-1
    order 2 key:  id(a) · V + b                  -> row r2 of "a b" (rows sorted by key)
    order 3 key:  r2("a b") · V + c              -> row r3 of "a b c"

Training data is a list of *sequences*, each starting with the begin marker (``<bos>`` / ``<s>``).
An n-gram never spans two sequences; the begin marker is context only, never a counted target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from seqlm.core.errors import DataError
from seqlm.data.ids import read_range
from seqlm.ngram.counting import CHUNK, KEY_LIMIT, Reader, Tables, count_flat
from seqlm.ngram.memory import MemoryPlan

DENSE_LOOKUP_LIMIT = 1 << 24  # keys of an order below which lookups use a table of every key
DENSE_QUERIES = 1 << 14  # lookups at once that make the table worth building

__all__ = ["KEY_LIMIT", "NgramCounts", "count_ngrams", "count_stream_ids", "flatten_sequences"]


@dataclass(frozen=True, eq=False)
class NgramCounts:
    """The n-gram tables of orders ``1 .. max_order`` of a training set.

    Row ``r`` of order ``k`` (index ``k - 1`` in each tuple) is the n-gram with key
    ``keys[k-1][r]``; ``prefix`` and ``last`` decode the key, ``suffix`` is the row of its last
    ``k - 1`` tokens in the order ``k - 1`` table (``-1`` for order 1), ``raw`` its number of
    occurrences, ``starts_with_bos`` whether its first token is the begin marker.
    """

    vocab_size: int
    bos_id: int
    max_order: int
    keys: tuple[np.ndarray, ...]  # (rows_k,) int64, sorted
    suffix: tuple[np.ndarray, ...]  # (rows_k,) int64
    raw: tuple[np.ndarray, ...]  # (rows_k,) int64
    starts_with_bos: tuple[np.ndarray, ...]  # (rows_k,) bool
    sequences: int
    tokens: int  # counted targets (begin markers excluded)
    lookup_limit: int = DENSE_LOOKUP_LIMIT  # see dense_ranks (seqlm.ngram.memory sets it)
    _ranks: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # see dense_ranks

    def rows(self, order: int) -> int:
        """How many distinct n-grams of ``order`` (the vocabulary size for order 1)."""
        return int(self.keys[order - 1].size)

    def prefix(self, order: int) -> np.ndarray:
        """Row of each n-gram's first ``order − 1`` tokens in the table below (0 for order 1)."""
        return self.keys[order - 1] // self.vocab_size

    def last(self, order: int) -> np.ndarray:
        """Each n-gram's last token id."""
        return self.keys[order - 1] % self.vocab_size

    def lookup(self, order: int, prefix_rows: np.ndarray, last_ids: np.ndarray) -> np.ndarray:
        """Row of ``(prefix, last)`` in the order table; ``-1`` where absent or ``prefix_rows < 0``.

        ``prefix_rows`` and ``last_ids`` are arrays of the same shape (or broadcastable)."""
        keys = self.keys[order - 1]
        prefix_rows = np.asarray(prefix_rows, dtype=np.int64)
        if keys.size == 0:  # no n-gram of this order fits in any training sequence
            return np.full(np.broadcast_shapes(prefix_rows.shape, np.shape(last_ids)), -1)
        wanted = prefix_rows * self.vocab_size + np.asarray(last_ids, dtype=np.int64)
        ranks = self.dense_ranks(order) if wanted.size >= DENSE_QUERIES else None
        if ranks is not None:
            return np.where(prefix_rows >= 0, ranks[np.where(prefix_rows >= 0, wanted, 0)], -1)
        pos = np.searchsorted(keys, wanted)
        pos_c = np.minimum(pos, keys.size - 1)
        found = (prefix_rows >= 0) & (pos < keys.size) & (keys[pos_c] == wanted)
        return np.where(found, pos_c, -1)

    def dense_ranks(self, order: int) -> np.ndarray | None:
        """For large lookups when the key space of ``order`` is small (characters): the row of
        every possible key (``-1`` if absent), built once; None when the space is too large."""
        space = self.rows(order - 1) * self.vocab_size if order > 1 else 0
        if order < 2 or space > min(self.lookup_limit, DENSE_LOOKUP_LIMIT):
            return None
        if order not in self._ranks:
            ranks = np.full(space, -1, dtype=np.int64 if space >= 2**31 else np.int32)
            ranks[self.keys[order - 1]] = np.arange(self.rows(order), dtype=ranks.dtype)
            self._ranks[order] = ranks
        return self._ranks[order]

    def ending_rows(self, flat: np.ndarray, starts: np.ndarray, orders: int) -> list[np.ndarray]:
        """For each position ``j`` of ``flat``, the row of the n-gram of each order ending at ``j``.

        ``starts[j]`` is where the sequence holding ``j`` begins; an n-gram reaching before it is
        ``-1``, as is one never seen in training. Returns ``orders`` arrays (orders 1, 2, ...).
        """
        flat = np.asarray(flat, dtype=np.int64)
        pos = np.arange(flat.size)
        rows = [np.where(flat < self.vocab_size, flat, -1)]  # order 1: the id itself
        for k in range(2, orders + 1):
            prev = np.full(flat.size, -1, dtype=np.int64)
            prev[1:] = rows[-1][:-1]  # (k-1)-gram ending just before j
            prev[pos - (k - 1) < starts] = -1  # would reach before the sequence starts
            rows.append(self.lookup(k, prev, flat))
        return rows[:orders]


def flatten_sequences(sequences: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate sequences; also return, for each position, where its sequence starts."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    if lengths.size == 0:
        raise DataError("need at least one sequence of token ids")
    if np.any(lengths == 0):
        raise DataError(f"sequence {int(np.flatnonzero(lengths == 0)[0])} is empty")
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return flat, starts


def count_ngrams(
    sequences: Sequence[np.ndarray],
    vocab_size: int,
    max_order: int,
    bos_id: int,
    chunk: int = CHUNK,
    workers: int = 1,
) -> NgramCounts:
    """Count the n-grams of orders ``1 .. max_order`` of ``sequences``, each begun by ``bos_id``
    (``chunk`` positions at a time, over ``workers`` processes: the result depends on neither)."""
    if max_order < 1:
        raise DataError(f"max_order = {max_order} must be >= 1")
    if not 0 <= bos_id < vocab_size:
        raise DataError(f"begin-marker id {bos_id} is outside the vocabulary 0..{vocab_size - 1}")
    flat, starts = flatten_sequences(sequences)
    if flat.min() < 0 or flat.max() >= vocab_size:
        bad = int(flat[(flat < 0) | (flat >= vocab_size)][0])
        raise DataError(f"token id {bad} is outside the vocabulary 0..{vocab_size - 1}")
    is_start = np.zeros(flat.size, dtype=bool)
    is_start[np.unique(starts)] = True
    if not np.all(flat[is_start] == bos_id) or np.any(flat[~is_start] == bos_id):
        raise DataError(f"every sequence must start with the begin marker (id {bos_id}), once")
    n_targets = int(np.count_nonzero(~is_start))
    if n_targets == 0:
        raise DataError("the training sequences hold no tokens after their begin markers")

    tables = count_flat(in_memory(flat), flat.size, vocab_size, max_order, bos_id, chunk, workers)
    return from_tables(tables, bos_id)


def in_memory(flat: np.ndarray) -> Reader:
    """A reader (:mod:`seqlm.ngram.counting`) of an array already in memory."""
    return lambda start, stop: flat[start:stop]


def stream_reader(ids: np.ndarray, bos_id: int) -> Reader:
    """A reader of ``<bos> ids`` that copies only the slice asked for (``ids`` may be mapped)."""

    def read(start: int, stop: int) -> np.ndarray:
        if start == 0:
            return np.r_[bos_id, read_range(ids, 0, max(stop - 1, 0))]
        return read_range(ids, start - 1, stop - 1)

    return read


def count_stream_ids(
    ids: np.ndarray,
    vocab_size: int,
    max_order: int,
    bos_id: int,
    chunk: int = CHUNK,
    workers: int = 1,
    spill_dir: Path | None = None,
    plan: MemoryPlan | None = None,
) -> NgramCounts:
    """Stream mode: the n-grams of ``<bos> ids`` as one sequence, chunk by chunk over ``workers``
    processes (``ids`` may be memory-mapped; it is never copied whole), spilling to ``spill_dir``
    (:func:`seqlm.ngram.counting.count_flat`), within ``plan``'s memory when given (which then
    also sizes the lookups' tables: :mod:`seqlm.ngram.memory`)."""
    if max_order < 1:
        raise DataError(f"max_order = {max_order} must be >= 1")
    if not 0 <= bos_id < vocab_size:
        raise DataError(f"begin-marker id {bos_id} is outside the vocabulary 0..{vocab_size - 1}")
    if ids.ndim != 1 or ids.size == 0:
        raise DataError("the training sequences hold no tokens after their begin markers")
    read = stream_reader(ids, bos_id)
    tables = count_flat(
        read, ids.size + 1, vocab_size, max_order, bos_id, chunk, workers, spill_dir, plan
    )
    if tables.sequences != 1:
        raise DataError(f"every sequence must start with the begin marker (id {bos_id}), once")
    counts = from_tables(tables, bos_id)
    if plan is None:
        return counts
    return replace(counts, lookup_limit=plan.lookup_limit)


def from_tables(tables: Tables, bos_id: int) -> NgramCounts:
    """The counts object of what :func:`seqlm.ngram.counting.count_flat` counted."""
    return NgramCounts(
        vocab_size=tables.keys[0].size,
        bos_id=bos_id,
        max_order=len(tables.keys),
        keys=tables.keys,
        suffix=tables.suffix,
        raw=tables.raw,
        starts_with_bos=tables.starts_with_bos,
        sequences=tables.sequences,
        tokens=tables.tokens,
    )
