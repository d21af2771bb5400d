"""Interpolated modified Kneser-Ney estimated and scored shard by shard (:mod:`seqlm.ngram.shards`),
for a model whose tables do not fit in memory: the same probabilities, to the last bit, as
:class:`~seqlm.ngram.kneser_ney.KneserNeyModel` of the whole tables (stream mode, unpruned).

The n-grams of orders up to a *depth* ``j`` are the *bottom* tables, counted and held in memory
(:func:`seqlm.ngram.counts.count_stream_ids`); the higher orders are sharded by their last ``j``
context tokens, each shard a range of the bottom's j-gram rows. Counting (:func:`count_sharded`)
counts each shard, keeps it in a file and adds up what the bottom and the discounts need from every
shard: each j-gram's left extensions (its continuation count) and each order's counts-of-counts.
When one j-gram's shard alone does not fit, the depth grows by one and counting starts again.
Scoring (:func:`seqlm.ngram.sharded_scoring.score_sharded`) estimates the bottom for each model order asked (a
:class:`~seqlm.ngram.kneser_ney.KneserNeyModel` of the bottom tables given the shards' continuation
counts and the whole model's discounts: the same floats as the whole model's lower orders), then
reads one shard at a time, estimates its n-grams exactly as the whole model does (the same arrays in
the same order: a context's continuations are all in its shard, sorted by their last token there as
in the whole table) and scores the targets whose context's last ``j`` tokens are in the shard,
after the bottom's orders, writing their log-probabilities at their positions in a file per split
and order (:class:`~seqlm.ngram.sharded_scoring.ScoreFile`). What is held is the bottom, one shard
with its estimates and one chunk of targets. A pruned model (``ngram.prune``) is estimated as
:class:`~seqlm.ngram.kneser_ney.KneserNeyModel` prunes: the dropped n-grams' counts go to their
contexts' back-off weights, and the shards keep every context (one whose continuations were all
dropped backs off with a weight of exactly 1, as if it were gone).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from seqlm.core.logs import progress_disabled
from seqlm.ngram.archive import npz_bytes
from seqlm.ngram.counting import Reader, RowStore, chunks
from seqlm.ngram.counts import NgramCounts, count_stream_ids, stream_reader
from seqlm.ngram.kneser_ney import (
    KneserNeyModel,
    adjusted_counts,
    count_histogram,
    discounts_of_histogram,
)
from seqlm.ngram.memory import MemoryPlan, TablesTooLarge
from seqlm.ngram.pruning import thresholds
from seqlm.ngram.shards import Shard, ShardCounter, ShardTooLarge, count_shards, lookup

log = logging.getLogger(__name__)


@dataclass
class ShardedCounts:
    """What counting gives: the bottom tables, the shards' files (in row order, with the first
    bottom row of each) and the sums over the shards."""

    bottom: NgramCounts
    max_order: int
    files: list[Path]
    starts: list[int]  # each shard's first bottom row
    low_cont: np.ndarray  # each bottom j-gram's continuation count
    raw_hist: np.ndarray  # (max_order + 1, 6): counts-of-counts of each order's raw counts
    cont_hist: np.ndarray  # (max_order + 1, 6): the same of the continuation-adjusted counts
    rows: list[int]  # distinct n-grams of each order

    @property
    def depth(self) -> int:
        return self.bottom.max_order

    @property
    def vocab_size(self) -> int:
        return self.bottom.vocab_size

    @property
    def bos_id(self) -> int:
        return self.bottom.bos_id

    def shards(self) -> Iterator[Shard]:
        for path in self.files:
            with np.load(path, allow_pickle=False) as a:
                yield Shard.of_arrays(dict(a), self.vocab_size, self.bos_id)

    def bottom_adjusted(self) -> list[np.ndarray]:
        """The bottom's adjusted counts in a model of an order above the depth."""
        j, bottom = self.depth, self.bottom
        out = adjusted_counts(bottom, j)[: j - 1]
        a = self.low_cont.copy()
        if j == 1:
            a[self.bos_id] = 0
        else:
            swb = bottom.starts_with_bos[j - 1]
            a[swb] = bottom.raw[j - 1][swb]
        return [*out, a]

    def discounts(self, order: int) -> np.ndarray:
        """``(order, 4)``: ``[0, D1, D2, D3+]`` of each order of a model of ``order`` (above the
        depth), as :func:`seqlm.ngram.kneser_ney.modified_kn_discounts` of the whole tables."""
        hists = [count_histogram(a) for a in self.bottom_adjusted()]
        hists += [self.cont_hist[k] for k in range(self.depth + 1, order)]
        hists += [self.raw_hist[order]]
        return np.stack([discounts_of_histogram(h)[0] for h in hists])

    def bottom_model(self, order: int, prune: Sequence[int] = ()) -> KneserNeyModel:
        """The model of ``order``'s orders up to the depth (all of it, at or below the depth),
        pruned with ``prune`` (keeping every row's estimate: the shards' lower orders)."""
        if order <= self.depth:
            return KneserNeyModel(self.bottom, order, prune=prune)
        d, j = self.discounts(order)[: self.depth, 1:], self.depth
        limits = thresholds(prune, order)[:j] if any(prune) else ()
        return KneserNeyModel(self.bottom, j, prune=limits, discounts=d,
                              adjusted=self.bottom_adjusted(), keep_estimates=True)  # fmt: skip


def adjusted(shard: Shard, k: int, order: int) -> np.ndarray:
    """The adjusted counts of the shard's n-grams of order ``k`` in a model of ``order``: raw at
    the top order and for those that begin with the begin marker, else continuation counts."""
    raw = shard.raw[k - shard.depth - 1]
    if k == order:
        return raw.copy()
    a = shard.continuations(k)
    keys = shard.grams[k - shard.depth - 1]
    bos = shard.context_starts_with_bos(k - 1)[keys // shard.vocab_size]
    a[bos] = raw[bos]
    return a


def context_rows(
    read: Reader, size: int, bottom: NgramCounts, chunk: int, folder: Path
) -> RowStore:
    """Each stream position's row among the bottom's j-grams of the ``j`` tokens before it
    (``-1`` where they reach before the stream)."""
    j = bottom.max_order
    store = RowStore(size, folder, "context-rows")
    bar = tqdm(total=size, desc=f"ngram contexts of {j}", unit="tok", unit_scale=True,
               disable=progress_disabled() or size <= chunk)  # fmt: skip
    for a, b in chunks(size, chunk):
        lo = max(a - j, 0)
        window = read(lo, b)
        starts = np.full(window.size, -lo, dtype=np.int64)
        rows = bottom.ending_rows(window, starts, j)[j - 1]
        t = np.arange(a, b)
        store.write(a, np.where(t >= j, rows[np.maximum(t - 1 - lo, 0)], -1))
        bar.update(b - a)
    bar.close()
    return store


def sharded_counts(bottom: NgramCounts, max_order: int) -> ShardedCounts:
    """Empty sums over the shards of a model of ``max_order`` above ``bottom``."""
    zeros = np.zeros((max_order + 1, 6), dtype=np.int64)
    rows = [bottom.rows(k) for k in range(1, bottom.max_order + 1)]
    return ShardedCounts(bottom, max_order, [], [], np.zeros(rows[-1], dtype=np.int64), zeros,
                         zeros.copy(), rows + [0] * (max_order - bottom.max_order))  # fmt: skip


def add_shard(out: ShardedCounts, shard: Shard, start: int, folder: Path) -> None:
    """Keep ``shard`` (its first bottom row ``start``) in a file and add it to the sums."""
    j = out.depth
    out.low_cont += np.bincount(shard.low_suffix, minlength=out.low_cont.size)
    for k in range(j + 1, out.max_order + 1):
        out.raw_hist[k] += count_histogram(shard.raw[k - j - 1])
        if k < out.max_order:
            out.cont_hist[k] += count_histogram(adjusted(shard, k, out.max_order))
        out.rows[k - 1] += shard.grams[k - j - 1].size
    path = folder / f"shard-{len(out.files):05d}.npz"
    path.write_bytes(npz_bytes(shard.arrays()))
    out.files.append(path)
    out.starts.append(start)


def count_sharded(
    ids: np.ndarray, vocab_size: int, max_order: int, bos_id: int, folder: Path, chunk: int,
    spill_bytes: int, limit: int, workers: int = 1, plan: MemoryPlan | None = None,
    known: Sequence[int] = (),
) -> ShardedCounts:  # fmt: skip
    """Count ``<bos> ids`` up to ``max_order`` (``>= 2``) in shards of at most ``limit`` entries
    with the bottom tables (kept in ``folder``), at the least depth whose shards fit: the bottom
    is counted over ``workers`` processes within ``plan``
    (:func:`seqlm.ngram.counts.count_stream_ids`) and may take half the ``limit``. ``known``:
    the n-grams of each order already counted (a lower bound on the model), to size the first
    shards."""
    read, size = stream_reader(ids, bos_id), int(ids.size) + 1
    why = "no depth was tried"
    for depth in range(1, max_order):
        bottom = count_stream_ids(ids, vocab_size, depth, bos_id, workers=workers,
                                  spill_dir=folder, plan=plan)  # fmt: skip
        held = sum(bottom.rows(k) for k in range(1, depth + 1))
        if held > limit // 2:
            why = f"at depth {depth} the bottom tables alone hold {held:,}"
            break
        contexts = context_rows(read, size, bottom, chunk, folder)
        counter = ShardCounter(read, size, bottom, contexts, max_order, chunk, folder,
                               spill_bytes, limit - held)  # fmt: skip
        out = sharded_counts(bottom, max_order)
        try:
            for start, shard in count_shards(counter, sum(known[depth:])):
                add_shard(out, shard, start, folder)
        except ShardTooLarge as e:
            log.info("depth %d: one context's n-grams alone (%d entries and more) exceed a "
                     "shard; counting again one token deeper", depth, e.entries)  # fmt: skip
            for path in out.files:
                path.unlink()
            why = f"at depth {depth} one context's n-grams alone need {e.entries:,} and more"
            continue
        finally:
            contexts.remove()
        return out
    raise TablesTooLarge(
        f"the n-grams of this corpus do not fit even in shards: the tables may hold {limit:,} "
        f"entries, and {why}; raise ngram.memory_mb or lower ngram.max_order (ngram.order)"
    )


@dataclass(frozen=True)
class ShardModel:
    """One shard's n-grams estimated for a model of ``order``: ``complete[i]`` the interpolated
    probability of each n-gram of order ``depth + 1 + i``, ``gamma[i]`` the back-off weight of each
    context of length ``depth + i``."""

    shard: Shard
    order: int
    complete: tuple[np.ndarray, ...]
    gamma: tuple[np.ndarray, ...]

    @classmethod
    def estimate(
        cls, shard: Shard, order: int, discounts: np.ndarray, bottom: KneserNeyModel,
        prune: Sequence[int] = (),
    ) -> ShardModel:  # fmt: skip
        """As :class:`~seqlm.ngram.kneser_ney.KneserNeyModel` does, on the shard's rows, pruned
        with ``prune`` (the n-grams dropped: :meth:`kept`)."""
        limits = thresholds(prune, order)
        v, j = shard.vocab_size, shard.depth
        complete: list[np.ndarray] = []
        gammas: list[np.ndarray] = []
        for k in range(j + 1, order + 1):
            i = k - j - 1
            keys, a = shard.grams[i], adjusted(shard, k, order)
            prefix, contexts = keys // v, shard.contexts[i].size
            dk = discounts[k - 1][np.minimum(a, 3)]
            denom = np.bincount(prefix, weights=a, minlength=contexts).astype(float)
            left = np.where(shard.raw[i] <= limits[k - 1], a, dk)  # a dropped one's whole count
            gamma = np.bincount(prefix, weights=left, minlength=contexts).astype(float)
            gamma = np.divide(gamma, denom, out=np.ones_like(gamma), where=denom > 0)
            gammas.append(gamma)
            low = bottom.estimated[j - 1] if i == 0 else complete[i - 1]
            lower = low[shard.suffix(k)]
            complete.append((a - dk) / denom[prefix] + gamma[prefix] * lower)
        model = cls(shard, order, tuple(complete), tuple(gammas))
        return model.kept(limits) if any(limits) else model

    def kept(self, limits: Sequence[int]) -> ShardModel:
        """Without the n-grams seen at most ``limits[k − 1]`` times (their contexts stay: a
        context whose continuations were all dropped has a back-off weight of exactly 1)."""
        s, j = self.shard, self.shard.depth
        keep = [r > limits[k - 1] for k, r in enumerate(s.raw, start=j + 1)]
        shard = Shard(s.vocab_size, s.bos_id, j, s.contexts,
                      tuple(g[m] for g, m in zip(s.grams, keep, strict=True)),
                      tuple(r[m] for r, m in zip(s.raw, keep, strict=True)), s.first_bos,
                      s.low_suffix[keep[0]])  # fmt: skip
        complete = tuple(c[m] for c, m in zip(self.complete, keep, strict=True))
        return ShardModel(shard, self.order, complete, self.gamma)

    def probabilities(
        self, p: np.ndarray, ctx: np.ndarray, window: np.ndarray, t: np.ndarray, lo: int
    ) -> np.ndarray:
        """The targets ``t`` of a stream whose positions ``lo ..`` are ``window``, given ``p``
        after the bottom's orders and ``ctx``, their contexts' rows in the shard: the steps of
        :meth:`~seqlm.ngram.kneser_ney.KneserNeyModel.probabilities_given_rows` above the depth."""
        v, shard = self.shard.vocab_size, self.shard
        words = window[t - lo]
        for k in range(shard.depth + 1, self.order + 1):
            i = k - shard.depth - 1
            if shard.grams[i].size == 0:
                break  # nothing follows these contexts: their back-off weights are 1
            gram = np.where(ctx >= 0, lookup(shard.grams[i], ctx * v + words), -1)
            seen = gram >= 0
            p = np.where(seen, self.complete[i][np.maximum(gram, 0)], p)
            backs_off = ~seen & (ctx >= 0)
            p = np.where(backs_off, p * self.gamma[i][np.maximum(ctx, 0)], p)
            if k < self.order:  # the context one token longer
                ok = (ctx >= 0) & (t - k >= 0)
                first = window[np.where(ok, t - k - lo, 0)]
                longer = lookup(shard.contexts[i + 1], np.maximum(ctx, 0) * v + first)
                ctx = np.where(ok, longer, -1)
        return p

    def next_probabilities(self, p: np.ndarray, ctx: int, context: np.ndarray) -> np.ndarray:
        """``p(· | context)`` over the vocabulary given ``p`` after the bottom's orders and
        ``ctx``, the row in the shard of ``context``'s last ``depth`` ids: the steps of
        :meth:`~seqlm.ngram.model.NgramModel.distribution` above the depth."""
        v, shard = self.shard.vocab_size, self.shard
        words = np.arange(v)
        for k in range(shard.depth + 1, self.order + 1):
            i = k - shard.depth - 1
            if ctx < 0 or shard.grams[i].size == 0:
                break  # no longer context was seen either
            gram = lookup(shard.grams[i], ctx * v + words)
            p = np.where(gram >= 0, self.complete[i][np.maximum(gram, 0)], p * self.gamma[i][ctx])
            if k < self.order:
                longer = np.array([ctx * v + int(context[-k])]) if k <= context.size else None
                ctx = -1 if longer is None else int(lookup(shard.contexts[i + 1], longer)[0])
        return p

    def training_nll(self) -> float:
        """This shard's part of the training stream's negative log-likelihood (as
        :meth:`~seqlm.ngram.kneser_ney.KneserNeyModel.training_stream_nll`): its top-order
        n-grams' and its n-grams that are prefixes of the stream."""
        m, shard = self.order, self.shard
        nll = -float(np.dot(shard.raw[-1], np.log(self.complete[-1])))
        for k in range(shard.depth + 1, m):
            i = k - shard.depth - 1
            prefix = shard.grams[i] // shard.vocab_size
            rows = np.flatnonzero(shard.context_starts_with_bos(k - 1)[prefix])
            nll -= float(np.log(self.complete[i][rows]).sum())
        return nll


def bottom_training_nll(bottom: KneserNeyModel, order: int) -> float:
    """The bottom's part of the training stream's negative log-likelihood in a model of
    ``order``: the stream's prefixes of orders ``2 .. depth`` (below the model's order)."""
    nll = 0.0
    for k in range(2, min(bottom.order, order - 1) + 1):
        rows = np.flatnonzero(bottom.counts.starts_with_bos[k - 1])
        nll -= float(np.log(bottom.complete[k - 1][rows]).sum())
    return nll


def unpruned_rows(bottom: KneserNeyModel) -> np.ndarray | None:
    """A pruned bottom's top-order rows as rows of the whole bottom (None: not pruned)."""
    if bottom.kept is None:
        return None
    return np.flatnonzero(bottom.kept[-1])


def as_whole_rows(rows: np.ndarray, whole: np.ndarray | None) -> np.ndarray:
    """The bottom's top-order ``rows`` (``-1``: none) as the shards number them: a pruned
    bottom's rows mapped through ``whole`` (:func:`unpruned_rows`; None: as they are)."""
    if whole is None:
        return rows
    return np.where(rows >= 0, whole[np.maximum(rows, 0)], -1)
