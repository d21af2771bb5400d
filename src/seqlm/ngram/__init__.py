"""The n-gram baseline: count tables, Kneser-Ney and Laplace models, sentence mode, ARPA, sampling.

Everything is vectorised over tokens (numpy): counting and scoring never loop over tokens in Python.

* :func:`count_ngrams` → :class:`NgramCounts` (all orders up to ``max_order``, counted once);
* :func:`fit_ngram` → a :class:`KneserNeyModel` or :class:`LaplaceModel` of one order;
* ``model.target_logprobs(ids)`` scores a split under the convention of :mod:`seqlm.perplexity`;
* ``model.distribution(context)`` gives ``p(· | context)`` over all ids; :func:`generate` samples
  (the way every model does, :mod:`seqlm.sampling`);
* sentence mode (:mod:`seqlm.ngram.sentences`) and ARPA export (:mod:`seqlm.ngram.arpa`) match
  KenLM.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seqlm.core.errors import ParamError
from seqlm.ngram.arpa import ArpaModel, read_arpa, write_arpa
from seqlm.ngram.counts import NgramCounts, count_ngrams, count_stream_ids
from seqlm.ngram.kneser_ney import FALLBACK_DISCOUNTS, KneserNeyModel, modified_kn_discounts
from seqlm.ngram.laplace import LaplaceModel
from seqlm.ngram.memory import MemoryPlan
from seqlm.ngram.model import NgramModel
from seqlm.ngram.sampling import generate
from seqlm.ngram.sentences import SentenceVocab, fit_sentence_model, sentence_logprobs
from seqlm.params import AUTO, SMOOTHINGS, NgramParams


def count_stream(
    train_ids: np.ndarray,
    vocab_size: int,
    max_order: int,
    bos_id: int,
    workers: int = 1,
    spill_dir: Path | None = None,
    plan: MemoryPlan | None = None,
) -> NgramCounts:
    """Stream mode: count the train split's stream as one sequence ``<bos> x1 .. xN``, chunk by
    chunk over ``workers`` processes (``train_ids`` may be memory-mapped: it is never copied
    whole, and read by file reads; the counts do not depend on ``workers``), spilling to
    ``spill_dir``, within ``plan``'s memory (:mod:`seqlm.ngram.memory`) when given."""
    ids = train_ids if isinstance(train_ids, np.memmap) else np.asarray(train_ids)
    return count_stream_ids(
        ids, vocab_size, max_order, bos_id, workers=workers, spill_dir=spill_dir, plan=plan
    )


def fit_ngram(
    counts: NgramCounts,
    order: int,
    smoothing: str = "kneser_ney",
    laplace_alpha: float = 1.0,
    prune: Sequence[int] = (),
) -> NgramModel:
    """A model of ``order`` with ``smoothing`` from counts, pruned by ``prune`` (count thresholds
    per order, :mod:`seqlm.ngram.pruning`); bad values raise :class:`ParamError`."""
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ParamError(f"ngram.order = {order!r} must be an integer >= 1")
    if order > counts.max_order:
        raise ParamError(
            f"ngram.order = {order} is above the {counts.max_order} orders counted; "
            f"count up to at least {order}"
        )
    if smoothing == "kneser_ney":
        return KneserNeyModel(counts, order, prune=prune)
    if any(prune):
        raise ParamError(
            f"ngram.prune = {list(prune)} needs kneser_ney smoothing, not {smoothing!r}"
        )
    if smoothing == "laplace":
        return LaplaceModel(counts, order, laplace_alpha)
    raise ParamError(
        f"ngram.smoothing = {smoothing!r} is not a smoothing; "
        f"choose one of: {', '.join(SMOOTHINGS)}"
    )


__all__ = [
    "AUTO",
    "ArpaModel",
    "FALLBACK_DISCOUNTS",
    "KneserNeyModel",
    "LaplaceModel",
    "NgramCounts",
    "NgramModel",
    "NgramParams",
    "SMOOTHINGS",
    "SentenceVocab",
    "count_ngrams",
    "count_stream",
    "fit_ngram",
    "fit_sentence_model",
    "generate",
    "modified_kn_discounts",
    "read_arpa",
    "sentence_logprobs",
    "write_arpa",
]
