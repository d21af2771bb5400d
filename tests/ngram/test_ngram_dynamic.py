"""The n-gram's dynamic evaluation: the counts of two training sets added, scores equal to a fit
from scratch at every segment's start, the cost bounded by the refit count, the saved settings."""

from __future__ import annotations

import math

import numpy as np
import pytest

import seqlm.ngram.dynamic as dynamic_module
from seqlm.core.errors import DataError, ParamError
from seqlm.data.vocab import Vocab
from seqlm.ngram import count_ngrams, count_stream, fit_ngram
from seqlm.ngram.dynamic import (
    NgramAdaptation,
    added_counts,
    dynamic_logprobs,
    read_adaptation,
)
from seqlm.ngram.store import load_ngram, save_ngram
from seqlm.params import NgramParams

V, BOS = 9, 0
TABLES = ("keys", "suffix", "raw", "starts_with_bos")


def stream(seed: int, n: int) -> np.ndarray:
    """Ids 1 .. V-1 with some structure: a random walk, so that n-grams repeat."""
    rng = np.random.default_rng(seed)
    return (np.cumsum(rng.integers(-1, 2, n)) % (V - 1) + 1).astype(np.int64)


@pytest.mark.parametrize("orders", [(1, 1), (2, 2), (3, 3), (5, 5), (6, 4)])
def test_added_counts_are_the_counts_of_both_sets_sequences(orders):
    a, b = np.r_[BOS, stream(0, 400)], np.r_[BOS, stream(1, 90)]
    base, extra = count_ngrams([a], V, orders[0], BOS), count_ngrams([b], V, orders[1], BOS)
    both = count_ngrams([a, b], V, min(orders), BOS)
    got = added_counts(base, extra)
    assert got.max_order == min(orders)
    for name in TABLES:
        for mine, want in zip(getattr(got, name), getattr(both, name), strict=True):
            assert mine.dtype.kind == want.dtype.kind and np.array_equal(mine, want), name
    assert (got.sequences, got.tokens) == (both.sequences, both.tokens) == (2, 490)


def test_counts_of_another_vocabulary_are_refused():
    a = count_ngrams([np.r_[BOS, stream(0, 50)]], V, 2, BOS)
    b = count_ngrams([np.r_[BOS, stream(1, 50)]], V + 1, 2, BOS)
    with pytest.raises(DataError, match="different vocabularies"):
        added_counts(a, b)


def from_scratch(train: np.ndarray, ids: np.ndarray, order: int, segment: int, **fit) -> np.ndarray:
    """The reference: at each segment's start, count train and the text so far anew and fit."""
    out = []
    for start in range(0, ids.size, segment):
        seqs = [np.r_[BOS, train]] + ([np.r_[BOS, ids[:start]]] if start else [])
        model = fit_ngram(count_ngrams(seqs, V, order, BOS), order, **fit)
        out.append(model.target_logprobs(ids)[start : start + segment])
    return np.concatenate(out)


@pytest.mark.parametrize(
    "fit", [{"smoothing": "kneser_ney"}, {"smoothing": "laplace", "laplace_alpha": 0.5}]
)
def test_each_segment_is_scored_by_the_model_fitted_on_train_and_the_text_before_it(fit):
    train, ids = stream(2, 600), stream(3, 230)
    model = fit_ngram(count_stream(train, V, 5, BOS), 4, **fit)  # counted higher than its order
    got = dynamic_logprobs(model, ids, NgramAdaptation(segment=50, refits=100))
    assert np.array_equal(got, from_scratch(train, ids, 4, 50, **fit))  # to the last bit
    # the first segment is the static model's: nothing has been read yet
    assert np.array_equal(got[:50], model.target_logprobs(ids)[:50])
    assert not np.array_equal(got[50:], model.target_logprobs(ids)[50:])


def test_a_text_that_repeats_itself_is_predicted_better_than_by_the_static_model():
    train = stream(4, 2000)
    phrase = stream(5, 80)  # never in training
    ids = np.tile(phrase, 6)
    model = fit_ngram(count_stream(train, V, 6, BOS), 6)
    static = model.target_logprobs(ids)
    adapted = dynamic_logprobs(model, ids, NgramAdaptation(segment=80, refits=10))
    assert np.array_equal(adapted[:80], static[:80])
    # the later copies are read from the earlier ones: far better than the static model, and
    # better the more copies were read
    assert -adapted[80:].mean() < 0.75 * -static[80:].mean()
    assert -adapted[-80:].mean() < -adapted[80:160].mean()


@pytest.mark.parametrize(
    "n, segment, refits, want", [(1000, 128, 64, 128), (10_000, 128, 64, 154), (5, 128, 64, 128)]
)
def test_the_segment_grows_with_the_text_so_that_refits_stay_bounded(n, segment, refits, want):
    adapt = NgramAdaptation(segment, refits)
    assert adapt.segment_for(n) == want
    assert math.ceil(n / want) - 1 <= refits  # the fits after the first


def test_the_number_of_fits_is_bounded_by_the_refits(monkeypatch):
    calls = []
    real = dynamic_module.refitted
    monkeypatch.setattr(dynamic_module, "refitted", lambda m, c: calls.append(1) or real(m, c))
    model = fit_ngram(count_stream(stream(6, 500), V, 3, BOS), 3)
    dynamic_logprobs(model, stream(7, 1000), NgramAdaptation(segment=10, refits=7))
    assert len(calls) == 7  # segments of 125: 8 segments, the first static
    calls.clear()
    dynamic_logprobs(model, stream(7, 30), NgramAdaptation(segment=10, refits=7))
    assert len(calls) == 2  # a short text: segments of 10, refitted after the first two


@pytest.mark.parametrize("bad", [{"segment": 0}, {"refits": -1}, {"segment": 2.5}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(DataError, match="must be an integer >= 1"):
        NgramAdaptation(**{"segment": 8, "refits": 8, **bad})


def test_a_pruned_model_cannot_adapt_and_the_params_refuse_the_two_together():
    model = fit_ngram(count_stream(stream(8, 500), V, 3, BOS), 3, prune=[0, 1])
    with pytest.raises(DataError, match="pruned n-gram cannot adapt"):
        dynamic_logprobs(model, stream(9, 40), NgramAdaptation(segment=10, refits=8))
    with pytest.raises(ParamError, match="ngram.dynamic with ngram.prune"):
        NgramParams(dynamic=True, prune=[0, 1])
    NgramParams(dynamic=False, prune=[0, 1])  # each alone is fine
    assert NgramParams(order=5, dynamic=True, dynamic_order=12).counted_order() == 12
    assert NgramParams(order=5, dynamic=False, dynamic_order=12).counted_order() == 5


def test_the_saved_model_records_how_it_adapts(tmp_path):
    vocab = Vocab(["<unk>", "<bos>", *"abcdefg"], [0, 0, *range(1, 8)])
    model = fit_ngram(count_stream(stream(10, 300), V, 3, BOS), 3)
    save_ngram(model, vocab, {"clean": "none", "token": "char"}, tmp_path / "a.npz", {
        "segment": 32, "refits": 5})  # fmt: skip
    save_ngram(model, vocab, {"clean": "none", "token": "char"}, tmp_path / "b.npz")
    assert read_adaptation(tmp_path / "a.npz") == NgramAdaptation(32, 5)
    assert read_adaptation(tmp_path / "b.npz") is None
    assert read_adaptation(tmp_path / "missing.npz") is None
    loaded, _, _ = load_ngram(tmp_path / "a.npz")
    ids = stream(11, 100)
    adapt = NgramAdaptation(32, 5)
    assert np.array_equal(dynamic_logprobs(loaded, ids, adapt), dynamic_logprobs(model, ids, adapt))
