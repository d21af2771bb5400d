"""Interpolated modified Kneser-Ney smoothing (Chen & Goodman 1998), estimated as KenLM does.

For a model of order ``N``, each stored n-gram gets an *adjusted count* ``a``:

* order ``N``: its raw count;
* lower orders: the number of distinct tokens seen just before it (its continuation count), except
  n-grams that begin with the begin marker, which have nothing before them and keep their raw count;
* the begin marker's own unigram count is 0 (it is context, never a target).

Per order, three discounts come from the counts-of-counts ``n1 .. n4`` of the adjusted counts::

    Y = n1 / (n1 + 2 n2)      D1 = 1 − 2Y n2/n1      D2 = 2 − 3Y n3/n2      D3+ = 3 − 4Y n4/n3

and when one is undefined (some ``n_j = 0``, ``j <= 3``) or outside ``[0, j]`` the order falls back
to ``D1, D2, D3+ = 0.5, 1, 1.5`` (``lmplz --discount_fallback``). Then, for a context ``h`` with
``d(h) = sum_w a(h w)`` and ``N_j(h)`` continuations of adjusted count ``j`` (3 meaning 3 or more)::

    p(w | h) = (a(h w) − D(a(h w))) / d(h)  +  γ(h) · p(w | h without its first token)
    γ(h)     = (D1 N1(h) + D2 N2(h) + D3+ N3+(h)) / d(h)

down to the unigrams, which interpolate with the uniform distribution over the predictable ids
(``1/V`` in stream mode; KenLM's sentence mode leaves ``<s>`` out). A context never followed by
anything at an order (``d(h) = 0``) backs off fully: ``γ = 1``. The interpolated probability of each
stored n-gram and the γ of each context are exactly what an ARPA file holds.

With count pruning (``prune``, :mod:`seqlm.ngram.pruning`) the dropped continuations' adjusted counts
join γ's numerator in place of their discounts, and the model keeps only the n-grams not dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seqlm.ngram.counts import NgramCounts
from seqlm.ngram.model import NgramModel
from seqlm.ngram.pruning import dropped_rows, kept_counts, thresholds

FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


def modified_kn_discounts(adjusted: np.ndarray) -> tuple[np.ndarray, bool]:
    """``[0, D1, D2, D3+]`` from one order's adjusted counts, and whether the fallback was used."""
    return discounts_of_histogram(count_histogram(adjusted))


def count_histogram(adjusted: np.ndarray) -> np.ndarray:
    """How many adjusted counts are 0, 1, .. 4 and 5 or more (the counts-of-counts; those of
    several tables add up)."""
    return np.bincount(np.minimum(np.asarray(adjusted, dtype=np.int64), 5), minlength=6)


def discounts_of_histogram(n: np.ndarray) -> tuple[np.ndarray, bool]:
    """:func:`modified_kn_discounts` from the counts-of-counts ``n`` (:func:`count_histogram`)."""
    n1, n2, n3, n4 = (float(n[j]) for j in range(1, 5))
    if n1 > 0 and n2 > 0 and n3 > 0:
        y = n1 / (n1 + 2.0 * n2)
        d = np.array([0.0, 1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3])
        if np.all(d[1:] >= 0.0) and np.all(d[1:] <= np.arange(1, 4)):
            return d, False
    return np.array([0.0, *FALLBACK_DISCOUNTS]), True


def adjusted_counts(counts: NgramCounts, order: int) -> list[np.ndarray]:
    """The adjusted count of each stored n-gram of orders ``1 .. order`` in a model of ``order``."""
    out = []
    for k in range(1, order + 1):
        if k == order:
            a = counts.raw[k - 1].copy()
        else:
            # distinct left extensions = the (k+1)-grams whose suffix is this k-gram
            a = np.bincount(counts.suffix[k], minlength=counts.rows(k)).astype(np.int64)
            if k > 1:
                swb = counts.starts_with_bos[k - 1]
                a[swb] = counts.raw[k - 1][swb]
        if k == 1:
            a[counts.bos_id] = 0
        out.append(a)
    return out


class KneserNeyModel(NgramModel):
    """Interpolated modified Kneser-Ney; see the module docstring."""

    smoothing = "kneser_ney"

    def __init__(
        self,
        counts: NgramCounts,
        order: int,
        allowed: np.ndarray | None = None,
        prune: Sequence[int] = (),
        discounts: np.ndarray | None = None,
        adjusted: Sequence[np.ndarray] | None = None,
        keep_estimates: bool = False,
    ) -> None:
        """``discounts``: ``(order, 3)`` fixed ``D1, D2, D3+`` per order (as a toolkit printed
        them), in place of the estimate from the counts-of-counts; ``adjusted``: each order's
        adjusted counts in place of :func:`adjusted_counts` (the lower orders of a larger model,
        :mod:`seqlm.ngram.sharded`); ``keep_estimates``: a pruned model also keeps every row's
        probability from before the pruning (``estimated``) and which rows it kept (``kept``)."""
        if allowed is None:
            allowed = np.ones(counts.vocab_size, dtype=bool)
        super().__init__(counts, order, allowed)
        self.prune = thresholds(prune, order)
        dropped = dropped_rows(counts, self.prune) if any(self.prune) else None
        self.adjusted = list(adjusted) if adjusted is not None else adjusted_counts(counts, order)
        found = [modified_kn_discounts(a) for a in self.adjusted]
        self.discounts = np.stack([d for d, _ in found])  # (order, 4): [0, D1, D2, D3+] per order
        self.fallback = tuple(fb for _, fb in found)
        if discounts is not None:
            self.discounts = np.c_[np.zeros(order), np.asarray(discounts, dtype=np.float64)]
            self.fallback = (False,) * order
        self.uniform = self.allowed / np.count_nonzero(self.allowed)  # (V,)

        # complete[k-1]: interpolated p of each stored k-gram
        # backoff[k-1]: gamma of each k-gram as a context (1 where nothing follows it)
        a1 = self.adjusted[0].astype(np.float64)
        d1 = self.discounts[0][np.minimum(self.adjusted[0], 3)]
        total = a1.sum()
        self.unigram_gamma = float(d1.sum() / total)
        complete = [(a1 - d1) / total + self.unigram_gamma * self.uniform]
        backoff: list[np.ndarray] = []
        for k in range(2, order + 1):
            a = self.adjusted[k - 1]
            prefix = counts.prefix(k)
            dk = self.discounts[k - 1][np.minimum(a, 3)]
            denom = np.bincount(prefix, weights=a, minlength=counts.rows(k - 1)).astype(float)
            # a dropped continuation gives its whole adjusted count to the back-off
            left = dk if dropped is None else np.where(dropped[k - 1], a, dk)
            gamma = np.bincount(prefix, weights=left, minlength=counts.rows(k - 1)).astype(float)
            has_ext = denom > 0
            gamma = np.divide(gamma, denom, out=np.ones_like(gamma), where=has_ext)
            backoff.append(gamma)
            lower = complete[k - 2][counts.suffix[k - 1]]
            complete.append((a - dk) / denom[prefix] + gamma[prefix] * lower)
        self.complete = tuple(complete)
        self.backoff = tuple(backoff)
        self.estimated, self.kept = self.complete, None
        if dropped is not None:
            self.kept = [~d for d in dropped]
            self._keep_only(self.kept)
            self.estimated = self.estimated if keep_estimates else self.complete

    def _keep_only(self, keep: list[np.ndarray]) -> None:
        """Drop the pruned n-grams from the tables and every per-row array."""
        self.counts = kept_counts(self.counts, keep)
        self.adjusted = [a[k] for a, k in zip(self.adjusted, keep, strict=True)]
        self.complete = tuple(c[k] for c, k in zip(self.complete, keep, strict=True))
        self.backoff = tuple(b[k] for b, k in zip(self.backoff, keep, strict=False))

    @classmethod
    def restored(
        cls,
        counts: NgramCounts,
        order: int,
        complete: Sequence[np.ndarray],
        backoff: Sequence[np.ndarray],
        prune: Sequence[int],
    ) -> KneserNeyModel:
        """A pruned model as saved (:mod:`seqlm.ngram.store`): its kept tables with the
        probabilities and back-off weights estimated before the pruning, which the kept counts
        alone no longer give."""
        model = cls.__new__(cls)
        NgramModel.__init__(model, counts, order, np.ones(counts.vocab_size, dtype=bool))
        if len(complete) != order or len(backoff) != order - 1:
            raise ValueError(f"a model of order {order} needs {order} and {order - 1} arrays")
        model.prune = thresholds(prune, order)
        model.complete = tuple(np.asarray(c, dtype=np.float64) for c in complete)
        model.backoff = tuple(np.asarray(b, dtype=np.float64) for b in backoff)
        return model

    def training_stream_nll(self) -> float | None:
        """The negative log-likelihood of the training stream itself (stream mode, one sequence
        ``<bos> x1 .. xN``, unpruned), from the tables alone: every target with a full context
        ends one occurrence of a stored top-order n-gram, which is seen, so its probability is
        that n-gram's ``complete`` value and the sum is ``Σ raw · log complete`` over the top
        order; the ``order − 2`` targets before them end the stream's prefixes ``<bos> x1 .. xt``,
        one n-gram each of orders ``2 .. order − 1``. The same terms :meth:`target_logprobs` adds
        (summed in another order). None when the tables are not of one stream or were pruned."""
        counts, m = self.counts, self.order
        if counts.sequences != 1 or any(self.prune) or counts.tokens < m:
            return None
        top = np.log(self.complete[m - 1])
        nll = -float(np.dot(counts.raw[m - 1], top))
        for k in range(2, m):  # the prefix <bos> x1 .. x(k-1): the one k-gram starting at <bos>
            rows = np.flatnonzero(counts.starts_with_bos[k - 1])
            if rows.size != 1:
                return None
            nll -= float(np.log(self.complete[k - 1][rows[0]]))
        return nll

    def probabilities(
        self, contexts: Sequence[np.ndarray], context_len: np.ndarray, words: np.ndarray
    ) -> np.ndarray:
        return self.probabilities_given_rows(contexts, context_len, words, ())

    def probabilities_given_rows(
        self,
        contexts: Sequence[np.ndarray],
        context_len: np.ndarray,
        words: np.ndarray,
        grams: Sequence[np.ndarray],
    ) -> np.ndarray:
        p = self.complete[0][words]
        for k in range(2, self.order + 1):
            if self.counts.rows(k) == 0:  # no k-gram fits in training: nothing to interpolate
                continue
            ctx = contexts[k - 2]  # row of the (k-1)-token context, -1 if unseen
            gram = grams[k - 2] if k - 2 < len(grams) else self.counts.lookup(k, ctx, words)
            seen_gram = gram >= 0
            p = np.where(seen_gram, self.complete[k - 1][np.maximum(gram, 0)], p)
            # seen context, unseen n-gram: back off with the context's gamma
            backs_off = ~seen_gram & (ctx >= 0)
            p = np.where(backs_off, p * self.backoff[k - 2][np.maximum(ctx, 0)], p)
        return p
