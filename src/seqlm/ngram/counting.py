"""Counting the n-grams of a long stream of ids chunk by chunk, over several processes.

The input is one flat stream of ids where the begin marker opens each sequence (and appears nowhere
else): an n-gram may start with the marker but never holds it further in, so it never spans two
sequences. It is read through ``read(start, stop)`` (an ``int64`` copy of that slice), so a
memory-mapped split is never loaded whole.

Orders are counted one after the other. For order ``k`` every position ``i`` has the row
``r[k-1][i]`` of the (k−1)-gram starting there (``-1`` if none: it would run past the stream or over
a marker); the k-gram at ``i`` is keyed ``r[k-1][i] · V + x[i+k-1]``. One pass per order does both:

1. *index* order ``k``: each chunk's keys → rows in the order's sorted table (``searchsorted``),
   which give ``r[k][i]``, written to a row file;
2. *count* order ``k + 1``: the keys of the (k+1)-grams starting in the chunk (from ``r[k]``),
   counted with ``np.unique`` into a :class:`~seqlm.ngram.runs.SpillTable`, which writes its pending
   pairs to a sorted run on disk past :data:`SPILL_BYTES`; the runs are merged as a stream into the
   next order's table (:func:`seqlm.ngram.runs.merged_table`).

A k-gram's *suffix* (the row of its last ``k − 1`` tokens) comes from the tables alone: the suffix
of its prefix, then its last id. Chunks are position ranges: the k-gram starting at ``i`` belongs
to the chunk holding ``i`` and reads ``x`` up to ``i + k − 1`` past the chunk's end, so an n-gram
across a chunk border is counted exactly once. When an order's key space ``rows(k − 1) · V`` is
small (characters: a few million) both steps use a table over the whole space instead
(``np.add.at``, then a gather). A pass is a function of a span of positions
(:class:`OrderPass`), so the spans of a pass run in forked processes
(:func:`seqlm.core.workers.run_spans`), each writing its rows and its runs; the counts are summed
exactly, so the tables do not depend on the number of processes, the chunk size or the spill
budget. Everything lives in memory when the stream fits in one chunk (counted in a moment, with no
progress bar); otherwise the row files and the runs are plain files in a temporary folder, read back
by ranges (never mapped, so they never count towards resident memory).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from seqlm.core.errors import DataError
from seqlm.core.logs import progress_disabled
from seqlm.core.workers import run_spans, split_spans
from seqlm.ngram.memory import BYTES_PER_NGRAM, MemoryPlan, check_tables
from seqlm.ngram.runs import Run, SpillTable, TableTooLarge, merge_counts, merged_table

KEY_LIMIT = 2**62  # keys must stay well inside int64
CHUNK = 1 << 21  # positions per chunk
DENSE_LIMIT = 1 << 25  # key spaces counted and indexed with a table of every key
SPILL_BYTES = 1 << 26  # pending (key, count) pairs a process holds before writing them to a run
Reader = Callable[[int, int], np.ndarray]


@dataclass(frozen=True)
class Tables:
    """What counting gives, per order (index ``k − 1``): see :class:`seqlm.ngram.NgramCounts`."""

    keys: tuple[np.ndarray, ...]
    suffix: tuple[np.ndarray, ...]
    raw: tuple[np.ndarray, ...]
    starts_with_bos: tuple[np.ndarray, ...]
    sequences: int
    tokens: int


class RowStore:
    """``r[k][i]`` for every position, written by ranges (by any process, in file mode) and read
    back by ranges."""

    def __init__(self, size: int, folder: Path | None, name: str) -> None:
        self.dtype = np.dtype(np.int32 if size < 2**31 - 1 else np.int64)
        self.path = folder / name if folder is not None else None
        self.memory: list[np.ndarray] = []
        self._array: np.ndarray | None = None
        if self.path is not None:  # every position's slot, so that ranges can be written anywhere
            with open(self.path, "wb") as f:
                f.truncate(size * self.dtype.itemsize)

    def write(self, start: int, rows: np.ndarray) -> None:
        """Rows of positions ``start ..``; in memory they must come in order."""
        if self.path is None:
            self.memory.append(rows.astype(self.dtype))
            return
        with open(self.path, "r+b") as f:
            f.seek(start * self.dtype.itemsize)
            f.write(rows.astype(self.dtype).tobytes())

    def close(self) -> None:
        if self.path is None:
            self._array = np.concatenate(self.memory) if self.memory else np.zeros(0, self.dtype)

    def read(self, start: int, stop: int) -> np.ndarray:
        if self._array is not None:
            return self._array[start:stop].astype(np.int64)
        assert self.path is not None
        out = np.fromfile(
            self.path, dtype=self.dtype, count=stop - start, offset=start * self.dtype.itemsize
        )
        return out.astype(np.int64)

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def chunks(size: int, chunk: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive position ranges covering ``0 .. size``."""
    for a in range(0, size, chunk):
        yield a, min(a + chunk, size)


def last_ids(read: Reader, size: int, a: int, b: int, k: int, bos_id: int) -> np.ndarray:
    """``x[i + k − 1]`` for ``i`` in ``a .. b``; the begin marker past the stream's end (invalid)."""
    lo, hi = a + k - 1, min(b + k - 1, size)
    got = read(lo, hi) if hi > lo else np.zeros(0, dtype=np.int64)
    return np.r_[got, np.full(b - a - got.size, bos_id, dtype=np.int64)]


def unigram_counts(x: np.ndarray, vocab_size: int) -> np.ndarray:
    """Raw counts of each id in ``x``; checks every id is in the vocabulary."""
    bad = (x < 0) | (x >= vocab_size)
    if bad.any():
        raise DataError(f"token id {int(x[bad][0])} is outside the vocabulary 0..{vocab_size - 1}")
    return np.bincount(x, minlength=vocab_size)


class KeyCounter:
    """Counts keys that lie in ``0 .. space``: below :data:`DENSE_LIMIT` into a table over the whole
    space (``np.add.at``: numpy 2's is fast for int64 counts and int64 keys), else
    with ``np.unique`` per chunk into a :class:`~seqlm.ngram.runs.SpillTable` whose runs go to
    ``folder`` beyond :data:`SPILL_BYTES` (kept in memory when there is no folder)."""

    def __init__(
        self, space: int, folder: Path | None = None, spill_bytes: int | None = None,
        dense_limit: int | None = None,
    ) -> None:  # fmt: skip
        """``spill_bytes``, ``dense_limit``: in place of :data:`SPILL_BYTES`, :data:`DENSE_LIMIT`
        (:class:`seqlm.ngram.memory.MemoryPlan`)."""
        limit = DENSE_LIMIT if dense_limit is None else dense_limit
        self.dense = np.zeros(space, dtype=np.int64) if space <= limit else None
        self.folder = folder
        budget = SPILL_BYTES if spill_bytes is None else spill_bytes
        self.table = SpillTable(folder, budget if folder else None)

    def add(self, keys: np.ndarray) -> None:
        """Count one chunk of keys."""
        if self.dense is None:
            self.table.add(keys)
        else:  # unbuffered: repeated keys all count; no temporary as large as the space
            np.add.at(self.dense, keys, 1)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """The sorted unique keys and their counts."""
        if self.dense is None:
            return self.table.held()
        uniq = np.flatnonzero(self.dense).astype(np.int64)
        return uniq, self.dense[uniq]

    def runs(self) -> list[Run]:
        """What was counted, as runs in ``folder`` (to be merged with other processes' runs)."""
        assert self.folder is not None
        if self.dense is not None:
            return [Run.write(self.folder, *self.result())]
        return self.table.finish()


def next_keys(
    rows: np.ndarray, read: Reader, size: int, a: int, b: int, k: int, vocab_size: int,
    bos_id: int,
) -> np.ndarray:  # fmt: skip
    """Keys of the (k+1)-grams starting at ``a .. b`` from ``rows = r[k][a:b]``: the valid ones."""
    x = last_ids(read, size, a, b, k + 1, bos_id)
    valid = (rows >= 0) & (x != bos_id)
    return rows[valid] * vocab_size + x[valid]


@dataclass(frozen=True)
class SpanCounts:
    """What one pass gives for a span of positions: the unigram counts (order 1's pass) and the
    sorted unique keys of the next order's n-grams starting there, with their counts."""

    unigrams: np.ndarray | None
    next_keys: np.ndarray | None
    next_counts: np.ndarray | None
    next_runs: tuple[Run, ...] = ()  # instead of the keys and counts, when there is a folder


@dataclass(frozen=True)
class OrderPass:
    """The pass of order ``k`` over a span of positions, chunk by chunk: ``r[k]`` of each position
    into ``store`` (``k >= 2``; the unigram counts for ``k = 1``) and the keys of the (k+1)-grams
    counted when ``next_space`` (their key space) is given. A function of the span alone, so
    spans can run in any process (:func:`seqlm.core.workers.run_spans`)."""

    read: Reader
    size: int
    k: int
    vocab_size: int
    bos_id: int
    chunk: int
    prev: Reader | None = None  # r[k − 1]
    keys: np.ndarray | None = None  # the k-grams' keys, sorted
    ranks: np.ndarray | None = None  # the row of every possible key, when the space is small
    store: RowStore | None = None
    next_space: int | None = None  # None: no next order
    folder: Path | None = None  # where the next order's counts go as runs
    plan: MemoryPlan | None = None  # the working sets' sizes (default: the module's constants)

    def rows(self, a: int, b: int) -> np.ndarray:
        """``r[k][a:b]``: the row of the k-gram starting at each position (``-1`` if none)."""
        if self.k == 1:
            return self.read(a, b)  # r[1][i] is the id itself
        assert self.prev is not None and self.keys is not None
        p = self.prev(a, b)
        x = last_ids(self.read, self.size, a, b, self.k, self.bos_id)
        valid = (p >= 0) & (x != self.bos_id)
        rows = np.full(b - a, -1, dtype=np.int64)
        if valid.any():
            wanted = p[valid] * self.vocab_size + x[valid]
            found = self.ranks[wanted] if self.ranks is not None else None
            rows[valid] = found if found is not None else np.searchsorted(self.keys, wanted)
        return rows

    def __call__(self, start: int, stop: int) -> SpanCounts:
        counter = None
        if self.next_space is not None:
            plan = self.plan
            spill, dense = (None, None) if plan is None else (plan.spill_bytes, plan.dense_limit)
            counter = KeyCounter(self.next_space, self.folder, spill, dense)
        unigrams = np.zeros(self.vocab_size, dtype=np.int64) if self.k == 1 else None
        for a, b in chunks(stop - start, self.chunk):
            a, b = a + start, b + start
            rows = self.rows(a, b)
            if unigrams is not None:
                unigrams += unigram_counts(rows, self.vocab_size)
            if self.store is not None:
                self.store.write(a, rows)
            if counter is not None:
                next_ids = (self.read, self.size, a, b, self.k, self.vocab_size, self.bos_id)
                counter.add(next_keys(rows, *next_ids))
        if counter is not None and self.folder is not None:
            return SpanCounts(unigrams, None, None, tuple(counter.runs()))
        uniq, counts = counter.result() if counter is not None else (None, None)
        return SpanCounts(unigrams, uniq, counts)


def dense_ranks(keys: np.ndarray, limit: int | None = None) -> np.ndarray | None:
    """The row of every possible key below the largest (``-1`` if absent), when that space is at
    most ``limit`` (default :data:`DENSE_LIMIT`): one gather per position instead of a binary
    search."""
    space = int(keys[-1]) + 1 if keys.size else 0
    if space > (DENSE_LIMIT if limit is None else limit):
        return None
    ranks = np.full(space, -1, dtype=np.int32 if keys.size < 2**31 else np.int64)
    ranks[keys] = np.arange(keys.size, dtype=ranks.dtype)
    return ranks


def suffix_rows(
    keys: np.ndarray, k: int, lower_keys: Sequence[np.ndarray],
    lower_suffix: Sequence[np.ndarray], vocab_size: int,
) -> np.ndarray:  # fmt: skip
    """Each k-gram's suffix: the row of its last ``k − 1`` tokens among the (k−1)-grams, from the
    tables of the orders below (``lower_keys[j − 1]``, ``lower_suffix[j − 1]`` of order ``j``). For
    ``w1 .. wk`` that is the (k−1)-gram keyed by (the suffix row of ``w1 .. w(k−1)``, ``wk``)."""
    last = keys % vocab_size
    if k == 2:
        return last  # a unigram's row is its id
    wanted = lower_suffix[k - 2][keys // vocab_size] * vocab_size + last
    return np.searchsorted(lower_keys[k - 2], wanted)


def combined(
    parts: list[SpanCounts], folder: Path | None, merge_bytes: int | None = None,
    limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The next order's keys and counts over all spans (exact sums: any split gives the same):
    the spans' runs merged as a stream (``merge_bytes`` of blocks; more than ``limit`` keys
    raises :class:`~seqlm.ngram.runs.TableTooLarge` before they are read), or their tables in
    memory."""
    runs = [run for p in parts for run in p.next_runs]
    if runs:
        assert folder is not None
        block = None if merge_bytes is None else max(1 << 12, merge_bytes // (16 * len(runs)))
        return merged_table(runs, folder, block, limit)
    keys = [p.next_keys for p in parts if p.next_keys is not None]
    counts = [p.next_counts for p in parts if p.next_counts is not None]
    if len(keys) == 1:
        return keys[0], counts[0]
    return merge_counts(np.concatenate(keys), np.concatenate(counts))


def next_order(
    parts: list[SpanCounts], folder: Path | None, plan: MemoryPlan | None, rows: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`combined`, checked against ``plan``'s tables (``rows``: each order's so far) before
    the merged table is read, so that a table too large for memory is never held."""
    if plan is None:
        return combined(parts, folder)
    limit = max(plan.table_bytes // BYTES_PER_NGRAM - sum(rows), 0)
    try:
        uniq, counts = combined(parts, folder, plan.merge_bytes, limit)
    except TableTooLarge as e:
        check_tables(plan, [*rows, e.size])  # raises: the table passes the tables' share
        raise
    check_tables(plan, [*rows, uniq.size])
    return uniq, counts


def count_flat(
    read: Reader, size: int, vocab_size: int, max_order: int, bos_id: int,
    chunk: int = CHUNK, workers: int = 1, spill_dir: Path | None = None,
    plan: MemoryPlan | None = None,
) -> Tables:  # fmt: skip
    """Count orders ``1 .. max_order`` of a flat stream (see the module docstring), each pass
    split over ``workers`` processes (the same tables whatever their number); the row files and
    runs go to a temporary folder in ``spill_dir`` (default: the system's temporary folder, which
    may be in memory: a stage spills beside its outputs). ``plan``: the working sets sized from a
    memory cap (its chunk in place of ``chunk``), and the tables checked against it after each
    order (:mod:`seqlm.ngram.memory`)."""
    if spill_dir is not None:
        Path(spill_dir).mkdir(parents=True, exist_ok=True)
    if plan is not None:
        chunk = plan.chunk
    with tempfile.TemporaryDirectory(prefix=".seqlm-ngram-", dir=spill_dir) as tmp:
        folder = Path(tmp) if size > chunk else None  # one chunk: everything in memory
        return count_orders(read, size, vocab_size, max_order, bos_id, chunk, workers, folder,
                            plan)  # fmt: skip


def count_orders(
    read: Reader, size: int, vocab_size: int, max_order: int, bos_id: int, chunk: int,
    workers: int, folder: Path | None, plan: MemoryPlan | None = None,
) -> Tables:  # fmt: skip
    """:func:`count_flat`, its row stores and runs in ``folder``."""
    spans = split_spans(size, chunk, workers)
    space = vocab_size * vocab_size if max_order > 1 else None
    job = OrderPass(read, size, 1, vocab_size, bos_id, chunk, next_space=space, folder=folder,
                    plan=plan)  # fmt: skip
    parts = run_spans(job, spans, workers)
    raw1 = np.sum([p.unigrams for p in parts], axis=0).astype(np.int64)
    sequences = int(raw1[bos_id])
    raw1[bos_id] = 0  # the begin marker is context, never a target
    ids = np.arange(vocab_size, dtype=np.int64)
    tables = Tables((ids,), (np.full(vocab_size, -1, dtype=np.int64),), (raw1,), (ids == bos_id,),
                    sequences, size - sequences)  # fmt: skip
    prev: Reader = read
    store_prev: RowStore | None = None
    bar = tqdm(range(2, max_order + 1), desc="ngram counting", unit="order",
               initial=1, total=max_order,
               disable=progress_disabled() or max_order < 2 or size <= chunk)  # fmt: skip
    for k in bar:
        bar.set_postfix(order=k, processes=len(spans))
        uniq, counts = next_order(parts, folder, plan, [t.size for t in tables.keys])
        space = uniq.size * vocab_size if k < max_order else None
        if space is not None and space >= KEY_LIMIT:
            raise DataError(f"too many distinct {k}-grams to key {k + 1}-grams in int64")
        store = RowStore(size, folder, f"rows{k}") if k < max_order else None
        if k < max_order:
            ranks = dense_ranks(uniq, None if plan is None else plan.rank_limit)
            job = OrderPass(read, size, k, vocab_size, bos_id, chunk, prev, uniq, ranks, store,
                            space, folder, plan)  # fmt: skip
            parts = run_spans(job, spans, workers)
        tables = Tables(
            (*tables.keys, uniq),
            (*tables.suffix, suffix_rows(uniq, k, tables.keys, tables.suffix, vocab_size)),
            (*tables.raw, counts),
            (*tables.starts_with_bos, tables.starts_with_bos[-1][uniq // vocab_size]),
            sequences,
            size - sequences,
        )
        if store_prev is not None:
            store_prev.remove()
        if store is not None:
            store.close()
            prev, store_prev = store.read, store
    bar.close()
    return tables
