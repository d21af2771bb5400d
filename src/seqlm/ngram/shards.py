"""Counting a stream's n-grams in *shards*, each small enough for memory, for models that are not.

The n-grams of orders up to a *depth* ``j`` are the *bottom* tables (:class:`NgramCounts`, held
in memory). Every n-gram of a higher order that ends at target ``t`` (``s[t − k + 1 .. t]``) is put
in the shard of its context's last ``j`` tokens ``s[t − j .. t − 1]``, a j-gram of the bottom; a
shard is a range of the bottom's j-gram rows. All that interpolated Kneser-Ney needs of an n-gram
is in its shard or in the bottom: its context's other continuations share its context, so its last
``j`` tokens; its suffix ``s[t − k + 2 .. t]`` shares them too (or, at order ``j + 1``, is a
bottom j-gram); and so do its left extensions. Only the bottom's continuation counts and the
discounts' counts-of-counts gather from every shard, as sums (:mod:`seqlm.ngram.sharded`). A target
too is scored in the shard of its context's last ``j`` tokens, after the bottom's orders.

In a shard the contexts are keyed from the right, as a trie grown to the left: a context of length
``j`` is its j-gram's row in the shard's range (its row in the bottom, less the range's first); one
of length ``m > j`` is keyed ``row(its last m − 1 tokens) · V + its first token``; an n-gram
``h w`` is keyed ``row(h) · V + w``. So a context's parent (itself without its first token) is
``key // V``, and an n-gram's suffix is the n-gram of its context's parent and the same ``w``.

Counting a shard takes one pass over the stream per context length, as
:mod:`seqlm.ngram.counting` does per order: each pass finds the rows of the shard's contexts at
every position of the shard (written to a row file for the next pass) and counts the next n-grams
and contexts with :class:`~seqlm.ngram.runs.SpillTable` runs merged as a stream. What a pass holds
is a chunk of positions and the spill budget; the tables are checked against the shard's limit as
they are merged (:class:`ShardTooLarge`), and :func:`count_shards` cuts a shard that does not fit
into smaller ranges and counts them. A single j-gram whose n-grams do not fit is the caller's to
handle (:func:`seqlm.ngram.sharded.count_sharded` counts again one token deeper). The tables do not
depend on the chunk, the budget or the shards.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from seqlm.core.logs import progress_disabled
from seqlm.ngram.counting import Reader, RowStore, chunks
from seqlm.ngram.counts import NgramCounts
from seqlm.ngram.runs import SpillTable, TableTooLarge, merged_table


class ShardTooLarge(Exception):
    """The shard's tables reached more than its limit of entries (``entries``: how many so far)."""

    def __init__(self, entries: int) -> None:
        super().__init__(f"{entries:,} entries")
        self.entries = entries


def lookup(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row of each wanted key in the sorted ``keys``, ``-1`` where absent."""
    if keys.size == 0 or wanted.size == 0:
        return np.full(wanted.shape, -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
    return np.where(keys[pos] == wanted, pos, -1)


@dataclass(frozen=True)
class Shard:
    """The n-grams of orders ``depth + 1 .. max_order`` whose last ``depth`` context tokens are
    one of ``contexts[0]`` (rows of the j-grams of the bottom tables, ``j = depth``).

    ``contexts[i]``: the sorted keys of the contexts of length ``depth + i`` (see the module
    docstring; the first, bottom rows); ``grams[i]`` and ``raw[i]``: the sorted keys of the
    n-grams of order ``depth + 1 + i`` and how often each occurs; ``first_bos``: whether each
    context of length ``depth`` begins with the begin marker; ``low_suffix``: each n-gram of order
    ``depth + 1``'s suffix, as a row of the bottom tables' order ``depth``."""

    vocab_size: int
    bos_id: int
    depth: int
    contexts: tuple[np.ndarray, ...]
    grams: tuple[np.ndarray, ...]
    raw: tuple[np.ndarray, ...]
    first_bos: np.ndarray
    low_suffix: np.ndarray

    @property
    def max_order(self) -> int:
        return self.depth + len(self.grams)

    def upto(self, order: int) -> Shard:
        """The shard's n-grams of orders up to ``order`` (and their contexts)."""
        n = order - self.depth
        return Shard(self.vocab_size, self.bos_id, self.depth, self.contexts[:n], self.grams[:n],
                     self.raw[:n], self.first_bos, self.low_suffix)  # fmt: skip

    def context_starts_with_bos(self, m: int) -> np.ndarray:
        """Whether each context of length ``m`` begins with the begin marker."""
        if m == self.depth:
            return self.first_bos
        return self.contexts[m - self.depth] % self.vocab_size == self.bos_id

    def suffix(self, k: int) -> np.ndarray:
        """Each n-gram of order ``k``'s suffix: a bottom row for ``k = depth + 1``, else the row
        of (its context's parent, its last token) among the n-grams of order ``k − 1``."""
        if k == self.depth + 1:
            return self.low_suffix
        v, i = self.vocab_size, k - self.depth - 1
        keys = self.grams[i]
        parent = self.contexts[i][keys // v] // v
        return lookup(self.grams[i - 1], parent * v + keys % v)

    def continuations(self, k: int) -> np.ndarray:
        """How many distinct left extensions each n-gram of order ``k`` (``depth + 1 ..
        max_order − 1``) has: the n-grams of order ``k + 1`` whose suffix it is."""
        size = self.grams[k - self.depth - 1].size
        return np.bincount(self.suffix(k + 1), minlength=size).astype(np.int64)

    def arrays(self) -> dict[str, np.ndarray]:
        """The shard as named arrays (to be kept in a file until it is estimated)."""
        out = {"depth": np.array(self.depth), "orders": np.array(self.max_order),
               "first_bos": self.first_bos, "low_suffix": self.low_suffix}  # fmt: skip
        for m, c in enumerate(self.contexts, start=self.depth):
            out[f"contexts_{m}"] = c
        for k, (g, r) in enumerate(zip(self.grams, self.raw, strict=True), start=self.depth + 1):
            out[f"grams_{k}"], out[f"raw_{k}"] = g, r
        return out

    @classmethod
    def of_arrays(cls, a: dict[str, np.ndarray], vocab_size: int, bos_id: int) -> Shard:
        depth, orders = int(a["depth"]), int(a["orders"])
        return cls(
            vocab_size,
            bos_id,
            depth,
            tuple(np.asarray(a[f"contexts_{m}"]) for m in range(depth, orders)),
            tuple(np.asarray(a[f"grams_{k}"]) for k in range(depth + 1, orders + 1)),
            tuple(np.asarray(a[f"raw_{k}"]) for k in range(depth + 1, orders + 1)),
            np.asarray(a["first_bos"]),
            np.asarray(a["low_suffix"]),
        )


@dataclass(frozen=True)
class ShardCounter:
    """Counts the shards of the stream read by ``read`` (``size`` positions, the begin marker
    first) over the bottom tables ``bottom`` (orders ``1 .. depth``; ``contexts``: each target's
    row among their ``depth``-grams, ``-1`` if none), ``chunk`` positions at a time, spilling runs
    of ``spill_bytes`` to ``folder``; at most ``limit`` entries a shard (else
    :class:`ShardTooLarge`)."""

    read: Reader
    size: int
    bottom: NgramCounts
    contexts: RowStore
    max_order: int
    chunk: int
    folder: Path
    spill_bytes: int
    limit: int

    @property
    def depth(self) -> int:
        return self.bottom.max_order

    def positions(
        self, lo_row: int, hi_row: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray, int, np.ndarray]]:
        """Per chunk: the window it reads, the targets ``t`` whose context is in the shard of
        bottom rows ``lo_row .. hi_row``, the window's start and those contexts' rows."""
        for a, b in chunks(self.size - 1, self.chunk):
            a, b = a + 1, b + 1  # targets 1 .. size − 1
            lo = max(a - self.max_order, 0)
            rows = self.contexts.read(a, b)
            mine = (rows >= lo_row) & (rows < hi_row)
            yield self.read(lo, b), np.arange(a, b)[mine], lo, rows[mine]

    def count(self, lo_row: int, hi_row: int, positions: int) -> Shard:
        """The shard of the bottom rows ``lo_row .. hi_row``, whose contexts precede
        ``positions`` targets in all (its files removed, whether it fits or not)."""
        made: list[RowStore | SpillTable] = []
        try:
            return self._count(lo_row, hi_row, positions, made)
        finally:
            for item in made:
                for run in item.finish() if isinstance(item, SpillTable) else ():
                    run.remove()
                if isinstance(item, RowStore):
                    item.remove()

    def _count(
        self, lo_row: int, hi_row: int, positions: int, made: list[RowStore | SpillTable]
    ) -> Shard:
        v, j = self.bottom.vocab_size, self.depth
        base = np.arange(lo_row, hi_row, dtype=np.int64)
        contexts, grams, raw = [base], [], []
        prev: RowStore | None = None
        for m in range(j, self.max_order):  # contexts of length m: n-grams of order m + 1
            more = m + 1 < self.max_order
            store = RowStore(positions, self.folder, f"shard-rows{m}") if more else None
            gram_table = SpillTable(self.folder, self.spill_bytes)
            context_table = SpillTable(self.folder, self.spill_bytes) if more else None
            made += [x for x in (store, gram_table, context_table) if x is not None]
            offset = 0
            for window, t, lo, bottom_rows in self.positions(lo_row, hi_row):
                if m == j:
                    rows = bottom_rows - lo_row
                else:
                    assert prev is not None
                    rows = prev.read(offset, offset + t.size)
                    ok = (rows >= 0) & (t - m >= 0)
                    first = window[np.where(ok, t - m - lo, 0)]
                    rows = np.where(ok, lookup(contexts[m - j], rows * v + first), -1)
                if store is not None:
                    store.write(offset, rows)
                offset += t.size
                seen = rows >= 0
                gram_table.add(rows[seen] * v + window[t[seen] - lo])
                if context_table is not None:
                    seen &= t - m - 1 >= 0
                    context_table.add(rows[seen] * v + window[t[seen] - m - 1 - lo])
            if prev is not None:
                prev.remove()  # read for the last time
            prev = store
            held = sum(c.size for c in contexts) + sum(g.size for g in grams)
            keys, counts = self.merged(gram_table, held)
            grams.append(keys)
            raw.append(counts)
            if context_table is not None:
                contexts.append(self.merged(context_table, held + keys.size)[0])
        return Shard(v, self.bottom.bos_id, j, tuple(contexts), tuple(grams), tuple(raw),
                     self.bottom.starts_with_bos[j - 1][base], self.low_suffix(base, grams[0]))  # fmt: skip

    def low_suffix(self, base: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """The bottom row of order ``depth`` of each lowest n-gram's suffix."""
        v, j, bottom = self.bottom.vocab_size, self.depth, self.bottom
        last = keys % v
        if j == 1:
            return last
        parent = bottom.suffix[j - 1][base[keys // v]]  # the context without its first token
        return bottom.lookup(j, parent, last)

    def merged(self, table: SpillTable, held: int) -> tuple[np.ndarray, np.ndarray]:
        """The table's runs merged, refused past the shard's limit (``held`` entries already)."""
        try:
            return merged_table(table.finish(), self.folder, limit=max(self.limit - held, 0))
        except TableTooLarge as e:
            raise ShardTooLarge(held + e.size) from None


def split_rows(lo: int, hi: int, weights: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """The rows ``lo .. hi`` cut in up to ``parts`` ranges of about equal sums of ``weights``
    (none empty; at least two)."""
    running = np.cumsum(weights[lo:hi])
    wanted = running[-1] * np.arange(1, parts) / parts
    cuts = np.searchsorted(running, wanted, side="right") + lo
    cuts = np.unique(np.clip(cuts, lo + 1, hi - 1))
    edges = [lo, *cuts.tolist(), hi]
    return list(zip(edges[:-1], edges[1:], strict=True))


def count_shards(counter: ShardCounter, expected: int = 0) -> Iterator[tuple[int, Shard]]:
    """Every shard of the stream with its first bottom row. The first covers every bottom row; a
    shard that does not fit within ``counter.limit`` entries is cut into ranges of about as many
    targets each (twice as many ranges as the entries it had reached would fill), and those are
    counted in turn. A single context's shard that does not fit raises :class:`ShardTooLarge` (a
    deeper bottom would split it). ``expected``: as many n-grams above the depth as are known to
    be there, to cut the first range as finely as they need from the start."""
    rows = counter.bottom.rows(counter.depth)
    before = np.zeros(rows, dtype=np.int64)
    for a, b in chunks(counter.size, counter.chunk):  # the context before each target
        got = counter.contexts.read(a, b)
        before += np.bincount(got[got >= 0], minlength=rows)
    # contexts and n-grams: about twice the n-grams, and a shard is best filled by half
    parts = min(rows, max(1, -(-4 * expected // max(counter.limit, 1))))
    pending = split_rows(0, rows, before, parts) if parts > 1 else [(0, rows)]
    done = 0
    bar = tqdm(total=int(before.sum()), desc="ngram shards", unit="tok", unit_scale=True,
               disable=progress_disabled())  # fmt: skip
    while pending:
        lo, hi = pending.pop(0)
        positions = int(before[lo:hi].sum())
        try:
            shard = counter.count(lo, hi, positions)
        except ShardTooLarge as e:
            if hi - lo == 1:
                bar.close()
                raise
            # what was counted before the limit was passed is a part of the shard's entries
            parts = min(hi - lo, max(2, 2 * -(-e.entries // counter.limit)))
            pending[:0] = split_rows(lo, hi, before, parts)
            bar.set_postfix(depth=counter.depth, shards=done + len(pending))
            continue
        done += 1
        bar.update(positions)
        bar.set_postfix(depth=counter.depth, shards=done + len(pending))
        yield lo, shard
    bar.close()
