"""Additive (Laplace, add-alpha) smoothing: the textbook's baseline, for comparison.

``p(w | h) = (c(h w) + α) / (c(h ·) + α V)`` with raw counts at the model's order, where ``c(h ·)``
is how often ``h`` was followed by anything and ``V`` counts the predictable ids. Near the start
of a sequence the context is shorter (it stops at the begin marker) and the matching lower order
is used. A context never seen gives the uniform distribution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seqlm.core.errors import ParamError
from seqlm.ngram.counts import NgramCounts
from seqlm.ngram.model import NgramModel


def take(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values[rows]``, with 0 where ``rows`` is -1 (also when ``values`` is empty)."""
    if values.size == 0:
        return np.zeros(rows.shape)
    return np.where(rows >= 0, values[np.maximum(rows, 0)], 0.0)


class LaplaceModel(NgramModel):
    """Add-``alpha`` smoothing at a fixed order; see the module docstring."""

    smoothing = "laplace"

    def __init__(
        self, counts: NgramCounts, order: int, alpha: float = 1.0, allowed: np.ndarray | None = None
    ) -> None:
        if not alpha > 0:
            raise ParamError(f"ngram.laplace_alpha = {alpha} must be > 0")
        if allowed is None:
            allowed = np.ones(counts.vocab_size, dtype=bool)
        super().__init__(counts, order, allowed)
        self.alpha = float(alpha)
        self.n_allowed = int(np.count_nonzero(self.allowed))
        # context_totals[m]: c(h ·) for every m-gram h (m = 0: the number of counted targets)
        totals = [np.array([counts.raw[0].sum()], dtype=np.float64)]
        for k in range(2, order + 1):
            prefix, raw = counts.prefix(k), counts.raw[k - 1]
            totals.append(np.bincount(prefix, weights=raw, minlength=counts.rows(k - 1)) * 1.0)
        self.context_totals = tuple(totals)

    def probabilities(
        self, contexts: Sequence[np.ndarray], context_len: np.ndarray, words: np.ndarray
    ) -> np.ndarray:
        p = np.empty(words.size, dtype=np.float64)
        for m in np.unique(context_len):  # at most `order` passes, each vectorised
            sel = np.flatnonzero(context_len == m)
            w = words[sel]
            if m == 0:
                c_hw = self.counts.raw[0][w].astype(np.float64)
                c_h = np.full(sel.size, self.context_totals[0][0])
            else:
                h = contexts[m - 1][sel]
                gram = self.counts.lookup(m + 1, h, w)
                c_hw = take(self.counts.raw[m].astype(np.float64), gram)
                c_h = take(self.context_totals[m], h)
            p[sel] = (c_hw + self.alpha * self.allowed[w]) / (c_h + self.alpha * self.n_allowed)
        return p
