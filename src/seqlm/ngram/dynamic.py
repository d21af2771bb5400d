"""Dynamic evaluation of the n-gram: the model takes in the text it has scored, a segment at a time.

As the neural models' dynamic evaluation (:mod:`seqlm.neural.dynamic`) adapts the weights to each
segment after scoring it, the n-gram adds each scored segment's n-grams to its training counts and
is fitted again, so a name or a phrase the text repeats is predicted from its earlier occurrences::

    targets   x1 .. xS | xS+1 .. x2S | ...
    model     train    | train + <bos> x1 .. xS | train + <bos> x1 .. x2S | ...

Each target is still scored before the model has seen it, with the split's own stream as its
context (:meth:`seqlm.ngram.model.NgramModel.target_logprob_parts`: the project's convention), so
the scores are held-out scores. The text read so far counts as a second training sequence, begun
by the begin marker (:func:`added_counts`: the tables of both, exactly as counting the two
sequences together gives them); the model is fitted again with the same smoothing and order.

Its cost is bounded by a refit count: a split of ``n`` targets is read in segments of
``max(segment, ceil(n / (refits + 1)))`` targets (:meth:`NgramAdaptation.segment_for`), so a long split
takes longer segments instead of more fits. A pruned model cannot adapt (its tables no longer hold
the counts a refit needs); the params refuse the two together.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from seqlm.core.errors import DataError
from seqlm.core.logs import progress_disabled
from seqlm.data.corpus import SplitData
from seqlm.ngram import fit_ngram
from seqlm.ngram.archive import read_meta
from seqlm.ngram.counting import suffix_rows
from seqlm.ngram.counts import NgramCounts, count_ngrams
from seqlm.ngram.kneser_ney import KneserNeyModel
from seqlm.ngram.laplace import LaplaceModel
from seqlm.ngram.model import NgramModel
from seqlm.ngram.runs import merge_counts
from seqlm.params import NgramParams
from seqlm.perplexity import LogprobsWriter, SplitScore, score_model, score_split_parts

log = logging.getLogger(__name__)

DYNAMIC_DIR = "dynamic"  # inside the ngram stage's folder: the adapting model and its scores


def dynamic_dir(ngram_dir: str | Path) -> Path:
    """Where the ngram stage keeps the dynamically evaluated model (``model.npz``) and its
    ``{split}_logprobs.npy``."""
    return Path(ngram_dir) / DYNAMIC_DIR


@dataclass(frozen=True)
class NgramAdaptation:
    """How the n-gram adapts: segments of at least ``segment`` targets, at most ``refits`` fits
    after the first per text."""

    segment: int
    refits: int

    def __post_init__(self) -> None:
        for name in ("segment", "refits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DataError(f"n-gram adaptation: {name} = {value!r} must be an integer >= 1")

    def segment_for(self, n: int) -> int:
        """The segment length for a text of ``n`` targets."""
        return max(self.segment, math.ceil(n / (self.refits + 1)))

    def record(self) -> dict[str, int]:
        """As ``ensemble.json`` and ``metrics/ngram.json`` record it."""
        return {"segment": self.segment, "refits": self.refits}


def read_adaptation(path: str | os.PathLike[str]) -> NgramAdaptation | None:
    """How the model saved at ``path`` adapts (its ``meta["adapt"]``), None when it does not or
    there is no file."""
    if not Path(path).is_file():
        return None
    with np.load(path, allow_pickle=False) as archive:
        adapt = read_meta(archive, repr(str(path))).get("adapt")
    return None if adapt is None else NgramAdaptation(int(adapt["segment"]), int(adapt["refits"]))


def added_counts(base: NgramCounts, extra: NgramCounts) -> NgramCounts:
    """The tables of two training sets together: every n-gram of either, its counts summed, rows
    numbered as counting both sets' sequences at once numbers them (up to the lower of the two
    ``max_order``)."""
    if (base.vocab_size, base.bos_id) != (extra.vocab_size, extra.bos_id):
        raise DataError("n-gram counts of different vocabularies or begin markers cannot be added")
    V, orders = base.vocab_size, min(base.max_order, extra.max_order)
    keys, suffix = [base.keys[0]], [base.suffix[0]]
    raw, swb = [base.raw[0] + extra.raw[0]], [base.starts_with_bos[0]]
    rows_of = [(None, None)]  # each table's rows in the sum, per order (order 1: the ids)
    for k in range(2, orders + 1):
        moved = [_renumbered(t.keys[k - 1], rows_of[-1][i], V) for i, t in enumerate((base, extra))]
        union, total = merge_counts(np.concatenate(moved), np.r_[base.raw[k - 1], extra.raw[k - 1]])
        rows_of.append(tuple(np.searchsorted(union, m) for m in moved))
        suffix.append(suffix_rows(union, k, keys, suffix, V))
        keys.append(union)
        raw.append(total)
        swb.append(swb[k - 2][union // V])
    return NgramCounts(
        vocab_size=V,
        bos_id=base.bos_id,
        max_order=orders,
        keys=tuple(keys),
        suffix=tuple(suffix),
        raw=tuple(raw),
        starts_with_bos=tuple(swb),
        sequences=base.sequences + extra.sequences,
        tokens=base.tokens + extra.tokens,
        lookup_limit=base.lookup_limit,
    )


def _renumbered(keys: np.ndarray, prefix_rows: np.ndarray | None, vocab_size: int) -> np.ndarray:
    """A table's keys with their prefixes' rows replaced by their rows in the sum."""
    if prefix_rows is None:  # order 2: the prefix is a unigram, whose row is its id
        return keys
    return prefix_rows[keys // vocab_size] * vocab_size + keys % vocab_size


def check_adaptable(model: NgramModel) -> None:
    """Refuse a model :func:`refitted` cannot fit again (a pruned one, another kind)."""
    if not isinstance(model, KneserNeyModel | LaplaceModel):
        raise DataError(f"a {type(model).__name__} cannot adapt")
    if isinstance(model, KneserNeyModel) and any(model.prune):
        raise DataError("a pruned n-gram cannot adapt: its tables lack the pruned counts")


def refitted(model: NgramModel, counts: NgramCounts) -> NgramModel:
    """A model of ``model``'s kind, order and settings fitted on ``counts``
    (:func:`check_adaptable` first)."""
    if isinstance(model, KneserNeyModel):
        return KneserNeyModel(counts, model.order)
    assert isinstance(model, LaplaceModel)
    return LaplaceModel(counts, model.order, model.alpha)


def dynamic_logprobs(
    model: NgramModel, ids: np.ndarray, adapt: NgramAdaptation, name: str = ""
) -> np.ndarray:
    """``log p(x_t | <bos> x1 .. x(t-1))`` of every target of ``ids``, the model fitted again on
    its training counts and ``<bos> x1 .. x(t')`` at the start of each segment (``t'`` the
    segment's start: see the module docstring); a progress bar named ``name``."""
    return np.concatenate(list(dynamic_logprob_parts(model, ids, adapt, name)))


def dynamic_logprob_parts(
    model: NgramModel, ids: np.ndarray, adapt: NgramAdaptation, name: str = ""
) -> Iterator[np.ndarray]:
    """:func:`dynamic_logprobs` a segment at a time, in order."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1 or ids.size == 0:
        raise DataError(f"need a non-empty 1-d stream of token ids, got shape {ids.shape}")
    check_adaptable(model)  # before the first segment, however short the text
    seg = adapt.segment_for(int(ids.size))
    current = model
    bar = tqdm(total=int(ids.size), desc=f"ngram dynamic {name}".rstrip(), unit="tok",
               unit_scale=True, disable=progress_disabled())  # fmt: skip
    for a in range(0, int(ids.size), seg):
        b = min(a + seg, int(ids.size))
        if a > 0:
            read = count_ngrams([np.r_[model.bos_id, ids[:a]]], model.vocab_size, model.order,
                                model.bos_id)  # fmt: skip
            current = refitted(model, added_counts(model.counts, read))
        yield np.concatenate(list(current.target_logprob_parts(ids, b - a, a, b)))
        bar.update(b - a)
    bar.close()


@dataclass
class DynamicResult:
    """The dynamically evaluated model (:mod:`seqlm.ngram.dynamic`): its static model, how it
    adapts, its val and test scores, and their log-probabilities unless they were written."""

    model: NgramModel
    adapt: NgramAdaptation
    scores: dict[str, SplitScore]
    logprobs: dict[str, np.ndarray]
    seconds: float

    def record(self) -> dict[str, object]:
        """``metrics/ngram.json``'s ``dynamic``."""
        return {
            "order": self.model.order,
            **self.adapt.record(),
            "seconds": round(self.seconds, 4),
            **{split: s.to_record() for split, s in self.scores.items()},
        }


def score_dynamic(
    params: NgramParams,
    counts: NgramCounts,
    splits: dict[str, SplitData],
    logprobs_dir: str | os.PathLike[str] | None = None,
) -> DynamicResult:
    """Val and test scored by the model of ``ngram.dynamic_order`` that takes in each split as it
    reads it (:mod:`seqlm.ngram.dynamic`); the log-probabilities written to ``logprobs_dir`` (a
    segment at a time), else kept in the result."""
    start = time.perf_counter()
    model = fit_ngram(counts, params.dynamic_order, params.smoothing, params.laplace_alpha)
    adapt = NgramAdaptation(params.dynamic_segment, params.dynamic_refits)
    scores, logprobs = {}, {}
    for name in ("val", "test"):
        split = splits[name]
        if logprobs_dir is None:
            adapted = partial(dynamic_logprobs, model, adapt=adapt, name=name)
            scores[name], logprobs[name] = score_model(adapted, split)
            continue
        parts = dynamic_logprob_parts(model, split.ids, adapt, name)
        with LogprobsWriter(logprobs_dir, name, int(split.ids.size)) as writer:
            s = split
            scores[name] = score_split_parts(writer.passing(parts), s.characters, s.oov, s.bytes,
                                             s.words)  # fmt: skip
    seconds = time.perf_counter() - start
    log.info(
        "dynamic %d-gram (segments of %d+ targets, at most %d refits a split): val %.4f, "
        "test %.4f (%.1f s)",
        model.order,
        adapt.segment,
        adapt.refits,
        scores["val"].perplexity,
        scores["test"].perplexity,
        seconds,
    )
    return DynamicResult(model, adapt, scores, logprobs, seconds)


def run_dynamic(
    params: NgramParams,
    counts: NgramCounts,
    splits: dict[str, SplitData],
    out_dir: str | os.PathLike[str] | None = None,
) -> DynamicResult | None:
    """The stage's dynamic evaluation when ``ngram.dynamic`` is on (:func:`score_dynamic`, its
    log-probabilities written to ``out_dir``'s :func:`dynamic_dir` when given), else None."""
    if not params.dynamic:
        return None
    folder = None if out_dir is None else dynamic_dir(out_dir)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    return score_dynamic(params, counts, splits, folder)
