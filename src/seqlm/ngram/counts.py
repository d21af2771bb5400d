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
from dataclasses import dataclass

import numpy as np

from seqlm.core.errors import DataError

KEY_LIMIT = 2**62  # keys must stay well inside int64


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
        pos = np.searchsorted(keys, wanted)
        pos_c = np.minimum(pos, keys.size - 1)
        found = (prefix_rows >= 0) & (pos < keys.size) & (keys[pos_c] == wanted)
        return np.where(found, pos_c, -1)

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
    sequences: Sequence[np.ndarray], vocab_size: int, max_order: int, bos_id: int
) -> NgramCounts:
    """Count the n-grams of orders ``1 .. max_order`` of ``sequences``, each begun by ``bos_id``."""
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

    pos = np.arange(flat.size)
    raw1 = np.bincount(flat, minlength=vocab_size).astype(np.int64)
    raw1[bos_id] = 0  # the begin marker is context, never a target
    keys = [np.arange(vocab_size, dtype=np.int64)]
    suffix = [np.full(vocab_size, -1, dtype=np.int64)]
    raw = [raw1]
    swb = [keys[0] == bos_id]
    start_rows = flat  # row of the (k-1)-gram starting at each position (-1: runs off its sequence)
    seq_starts = np.flatnonzero(is_start)
    seq_ends = np.r_[seq_starts[1:], flat.size]
    seq_end = np.repeat(seq_ends, seq_ends - seq_starts)  # (N,) where each position's sequence ends
    for k in range(2, max_order + 1):
        if keys[-1].size * vocab_size >= KEY_LIMIT:
            raise DataError(f"too many distinct {k - 1}-grams to key {k}-grams in int64")
        first = pos[: flat.size - k + 1]
        valid = first[first + k <= seq_end[first]]  # k-grams starting here stay in their sequence
        key = start_rows[valid] * vocab_size + flat[valid + k - 1]
        uniq, inverse = np.unique(key, return_inverse=True)
        rows_k = np.full(flat.size, -1, dtype=np.int64)
        rows_k[valid] = inverse
        suf = np.empty(uniq.size, dtype=np.int64)
        suf[inverse] = start_rows[valid + 1]  # the (k-1)-gram starting one later is the suffix
        keys.append(uniq)
        suffix.append(suf)
        raw.append(np.bincount(inverse, minlength=uniq.size).astype(np.int64))
        swb.append(swb[-1][uniq // vocab_size])
        start_rows = rows_k
    return NgramCounts(
        vocab_size=vocab_size,
        bos_id=bos_id,
        max_order=max_order,
        keys=tuple(keys),
        suffix=tuple(suffix),
        raw=tuple(raw),
        starts_with_bos=tuple(swb),
        sequences=int(np.count_nonzero(is_start)),
        tokens=n_targets,
    )
