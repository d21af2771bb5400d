"""What every n-gram model shares: scoring sequences and next-token distributions, vectorised.

A model answers one question, ``p(w | context)`` over the full vocabulary ``0 .. V−1``. Scoring a
sequence works order by order over all its targets at once (never token by token)::

    sequence:  <bos>  x1  x2  x3  x4          targets: x1 .. x4
    order-m context of x3:  the m tokens before it (x1 x2 for m = 2), cut at <bos>
    contexts[m-1][t] = row of that m-gram in the count tables, -1 if unseen or reaching past <bos>

Subclasses (:class:`~seqlm.ngram.kneser_ney.KneserNeyModel`,
:class:`~seqlm.ngram.laplace.LaplaceModel`) implement :meth:`NgramModel.probabilities` from those
context rows.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence

import numpy as np

from seqlm.core.errors import DataError
from seqlm.data.ids import read_range
from seqlm.ngram.counts import NgramCounts, flatten_sequences

SCORE_CHUNK = 1 << 20  # targets scored at a time in stream mode


class NgramModel(abc.ABC):
    """An n-gram language model over token ids ``0 .. vocab_size − 1``."""

    smoothing: str = ""

    def __init__(self, counts: NgramCounts, order: int, allowed: np.ndarray) -> None:
        if not 1 <= order <= counts.max_order:
            raise DataError(
                f"order {order} needs counts up to order {order}; have {counts.max_order}"
            )
        allowed = np.asarray(allowed, dtype=bool)
        if allowed.shape != (counts.vocab_size,) or not allowed.any():
            raise DataError("'allowed' must mark at least one of the vocabulary ids as predictable")
        self.counts = counts
        self.order = order
        # (V,) ids the smoothing floor covers; an id outside it that training never saw as a
        # target (<s> in sentence mode) gets probability 0
        self.allowed = allowed

    @property
    def vocab_size(self) -> int:
        return self.counts.vocab_size

    @property
    def bos_id(self) -> int:
        return self.counts.bos_id

    def table_rows(self) -> list[int]:
        """How many distinct n-grams of each order ``1 .. order`` the model holds."""
        return [self.counts.rows(k) for k in range(1, self.order + 1)]

    @abc.abstractmethod
    def probabilities(
        self, contexts: Sequence[np.ndarray], context_len: np.ndarray, words: np.ndarray
    ) -> np.ndarray:
        """``p(words[t] | context t)`` for every t.

        ``contexts[m − 1][t]`` is the row of the ``m`` tokens before target ``t`` in the order-``m``
        table (``-1`` when unseen or unavailable), for ``m = 1 .. order − 1``; ``context_len[t]`` is
        how many tokens precede ``t`` in its sequence, at most ``order − 1``.
        """

    def probabilities_given_rows(
        self,
        contexts: Sequence[np.ndarray],
        context_len: np.ndarray,
        words: np.ndarray,
        grams: Sequence[np.ndarray],
    ) -> np.ndarray:
        """:meth:`probabilities`, where ``grams[k − 2][t]`` is already the row of the k-gram
        (context, word) of order ``k`` (``-1`` if unseen), for ``k = 2 .. len(grams) + 1``: a
        model that looks them up can skip that (the same values either way)."""
        return self.probabilities(contexts, context_len, words)

    # --- scoring -------------------------------------------------------------------------------

    def sequence_probabilities(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """Probability of every token of every sequence but its first (the begin marker), in order.

        Each sequence must begin with the begin marker; its context never reaches another sequence.
        """
        flat, starts = flatten_sequences(sequences)
        if flat.min() < 0 or flat.max() >= self.vocab_size:
            bad = int(flat[(flat < 0) | (flat >= self.vocab_size)][0])
            raise DataError(f"token id {bad} is outside the vocabulary 0..{self.vocab_size - 1}")
        rows = self.counts.ending_rows(flat, starts, self.order - 1)
        targets = np.flatnonzero(np.arange(flat.size) != starts)  # (T,) every position but starts
        contexts = [r[targets - 1] for r in rows]  # the m-gram ending just before each target
        context_len = np.minimum(targets - starts[targets], self.order - 1)
        return self.probabilities(contexts, context_len, flat[targets])

    def sequence_logprobs(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """Natural-log probabilities of :meth:`sequence_probabilities` (float64)."""
        with np.errstate(divide="ignore"):
            return np.log(self.sequence_probabilities(sequences))

    def target_logprobs(self, ids: np.ndarray, chunk: int = SCORE_CHUNK) -> np.ndarray:
        """Stream mode, the project's convention: ``log p(x_t | <bos>, x_1 .. x_{t-1})``, all t.

        Scored ``chunk`` targets at a time, each chunk read with the ``order − 1`` ids before it as
        context, so ``ids`` (maybe memory-mapped) is never copied whole; the values do not depend
        on ``chunk``."""
        ids = ids if isinstance(ids, np.memmap) else np.asarray(ids)
        out = np.empty(ids.size, dtype=np.float64)
        a = 0
        for part in self.target_logprob_parts(ids, chunk):
            out[a : a + part.size] = part
            a += part.size
        return out

    def target_logprob_parts(
        self, ids: np.ndarray, chunk: int = SCORE_CHUNK, start: int = 0, stop: int | None = None
    ) -> Iterator[np.ndarray]:
        """:meth:`target_logprobs` ``chunk`` targets at a time, in order (the same values), so that
        scoring a long split holds one chunk of them
        (:func:`seqlm.perplexity.score_model_parts`); ``start .. stop``: only those targets (each
        scored with the whole stream before it as context)."""
        ids = ids if isinstance(ids, np.memmap) else np.asarray(ids)
        if ids.ndim != 1 or ids.size == 0:
            raise DataError(f"need a non-empty 1-d stream of token ids, got shape {ids.shape}")
        stop = ids.size if stop is None else min(stop, ids.size)
        for a in range(start, stop, chunk):
            yield self._stream_chunk_logprobs(ids, a, min(a + chunk, stop))

    def _stream_chunk_logprobs(self, ids: np.ndarray, a: int, b: int) -> np.ndarray:
        """Log-probabilities of ``ids[a:b]`` within the stream ``<bos> ids``."""
        with np.errstate(divide="ignore"):
            return np.log(self.stream_chunk_probabilities(ids, a, b)[0])

    def stream_chunk_probabilities(
        self, ids: np.ndarray, a: int, b: int, context_order: int = 0
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities of ``ids[a:b]`` within the stream ``<bos> ids``; with ``context_order``
        ``j >= 1`` (at most the counts' order) also the row of each target's context of ``j``
        tokens among the j-grams (``-1`` if unseen or reaching before the stream)."""
        lo = max(a - max(self.order - 1, context_order), 0)
        window = read_range(ids, lo, b)  # a mapped split by a file read
        if lo == 0:  # the window starts at the begin marker
            window, start = np.r_[self.bos_id, window], 0
        else:  # the begin marker lies lo + 1 positions before the window
            start = -(lo + 1)
        if window.min() < 0 or window.max() >= self.vocab_size:
            bad = int(window[(window < 0) | (window >= self.vocab_size)][0])
            raise DataError(f"token id {bad} is outside the vocabulary 0..{self.vocab_size - 1}")
        starts = np.full(window.size, start, dtype=np.int64)
        # the n-grams ending at each j
        rows = self.counts.ending_rows(window, starts, max(self.order, context_order))
        targets = np.arange(window.size - (b - a), window.size)
        contexts = [r[targets - 1] for r in rows[: self.order - 1]]
        grams = [r[targets] for r in rows[1 : self.order]]  # each target's n-gram of orders 2 ..
        context_len = np.minimum(targets - start, self.order - 1)
        p = self.probabilities_given_rows(contexts, context_len, window[targets], grams)
        return p, (rows[context_order - 1][targets - 1] if context_order else None)

    # --- next-token distributions --------------------------------------------------------------

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        """``p(· | context)`` over the whole vocabulary, shape ``(V,)``; it sums to 1.

        ``context`` is the sequence so far, oldest first; begin it with the begin marker to predict
        from the start of a sequence (only its last ``order − 1`` tokens matter).
        """
        ctx = np.asarray(context, dtype=np.int64)[max(0, len(context) - (self.order - 1)) :]
        if self.order == 1:
            ctx = ctx[:0]
        if ctx.size and (ctx.min() < 0 or ctx.max() >= self.vocab_size):
            raise DataError(f"context ids must lie in 0..{self.vocab_size - 1}, got {ctx.tolist()}")
        words = np.arange(self.vocab_size)
        contexts = [np.full(self.vocab_size, -1, dtype=np.int64) for _ in range(self.order - 1)]
        if ctx.size:
            rows = self.counts.ending_rows(ctx, np.zeros(ctx.size, dtype=np.int64), ctx.size)
            for m in range(1, ctx.size + 1):
                contexts[m - 1][:] = rows[m - 1][-1]
        context_len = np.full(self.vocab_size, ctx.size, dtype=np.int64)
        return self.probabilities(contexts, context_len, words)
