"""Count pruning, as KenLM's ``lmplz --prune`` does it.

``ngram.prune`` gives a threshold per order (the last one holds for the orders above it): an n-gram
of order ``k >= 2`` seen at most ``t_k`` times in training is dropped from the model; unigrams never
are. Thresholds are non-decreasing, so every part of a kept n-gram (its context, its suffix) is kept
too: a raw count is never above the count of an n-gram inside it.

Pruning changes no statistic of the estimate but the back-off weights: the adjusted counts, the
discounts and each context's denominator are those of the whole model, and the mass a context's
dropped continuations held goes to its back-off weight, so that every distribution still sums to 1::

    γ(h) = (Σ_{kept w} D(a(h w)) + Σ_{dropped w} a(h w)) / Σ_w a(h w)

(:mod:`seqlm.ngram.kneser_ney`). A kept n-gram keeps its discounted count; its interpolation with
the lower orders takes the larger γ; an n-gram that was dropped backs off like one never seen.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seqlm.ngram.counts import NgramCounts


def thresholds(prune: Sequence[int], order: int) -> tuple[int, ...]:
    """One threshold per order ``1 .. order``: ``prune`` padded with its last value (all 0 when
    it is empty: no pruning)."""
    if not prune:
        return (0,) * order
    values = [int(t) for t in prune][:order]
    return tuple(values + [values[-1]] * (order - len(values)))


def dropped_rows(counts: NgramCounts, limits: Sequence[int]) -> list[np.ndarray]:
    """Per order ``k = 1 .. len(limits)``: which stored n-grams are dropped (raw count at most
    ``limits[k − 1]``; never a unigram)."""
    out = [np.zeros(counts.rows(1), dtype=bool)]
    for k in range(2, len(limits) + 1):
        out.append(counts.raw[k - 1] <= limits[k - 1])
    return out


def renumber(keep: np.ndarray) -> np.ndarray:
    """Each old row's new row once the rows not kept are gone (``-1`` for those)."""
    new = np.cumsum(keep, dtype=np.int64) - 1
    return np.where(keep, new, -1)


def kept_counts(counts: NgramCounts, keep: Sequence[np.ndarray]) -> NgramCounts:
    """The count tables of orders ``1 .. len(keep)`` with only the kept rows, renumbered.

    Rows stay in key order (a kept n-gram's prefix row keeps its rank among the kept), so the
    tables are valid :class:`~seqlm.ngram.counts.NgramCounts`: ``lookup`` finds exactly the kept
    n-grams."""
    V = counts.vocab_size
    new_rows = [renumber(k) for k in keep]
    keys, suffix = [counts.keys[0]], [counts.suffix[0]]
    for k in range(2, len(keep) + 1):
        sel = keep[k - 1]
        prefix = new_rows[k - 2][counts.keys[k - 1][sel] // V]
        last = counts.keys[k - 1][sel] % V
        if np.any(prefix < 0):  # thresholds are non-decreasing: cannot happen
            raise AssertionError(f"a kept {k}-gram's context was dropped")
        keys.append(prefix * V + last)
        suffix.append(new_rows[k - 2][counts.suffix[k - 1][sel]])
    return NgramCounts(
        vocab_size=V,
        bos_id=counts.bos_id,
        max_order=len(keep),
        keys=tuple(keys),
        suffix=tuple(suffix),
        raw=tuple(r[s] for r, s in zip(counts.raw, keep, strict=False)),
        starts_with_bos=tuple(b[s] for b, s in zip(counts.starts_with_bos, keep, strict=False)),
        sequences=counts.sequences,
        tokens=counts.tokens,
        lookup_limit=counts.lookup_limit,
    )
