"""Count pruning (``ngram.prune``), as KenLM's ``lmplz --prune``.

The reference is lmplz's own model of the Time Machine's train lines, kept by
``tools/kenlm_prune_reference.py`` (its command inside): the same n-grams kept, and their
probabilities and back-offs to four digits. Needs the corpus through ``SEQLM_MIRROR``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from seqlm.core.errors import ParamError
from seqlm.data.corpus import prepare_text
from seqlm.ngram import (
    KneserNeyModel,
    SentenceVocab,
    count_ngrams,
    count_stream,
    fit_ngram,
    fit_sentence_model,
    read_arpa,
    write_arpa,
)
from seqlm.ngram.pruning import thresholds
from seqlm.ngram.store import load_ngram, save_ngram
from seqlm.params import NgramParams

REFERENCE = Path(__file__).parent / "reference" / "timemachine_lmplz_prune.json"


V, BOS = 9, 1  # ids: <unk>, <bos>, then 7 symbols


def random_stream(seed: int, size: int = 4000) -> np.ndarray:
    """A stream of the ids 2..8 with some structure (a Markov chain), so that every order has
    rare n-grams."""
    rng = np.random.default_rng(seed)
    table = rng.dirichlet(np.full(V - 2, 0.3), size=V)
    ids = [2]
    for _ in range(size - 1):
        ids.append(2 + int(rng.choice(V - 2, p=table[ids[-1]])))
    return np.array(ids)


def counted(ids: np.ndarray, max_order: int):
    return count_stream(ids, V, max_order, BOS)


def words_of(counts, order: int, row: int) -> list[int]:
    """The ids of the n-gram in ``row`` of the ``order`` table."""
    words = []
    for k in range(order, 1, -1):
        key = int(counts.keys[k - 1][row])
        words.insert(0, key % counts.vocab_size)
        row = key // counts.vocab_size
    return [row, *words]


def row_of(counts, words: list[int]) -> int:
    """The row of the n-gram ``words`` in its order's table, -1 if it is not stored."""
    rows = counts.ending_rows(np.array(words), np.zeros(len(words), dtype=np.int64), len(words))
    return int(rows[-1][-1])


def test_thresholds_pad_with_the_last_value_and_default_to_none():
    assert thresholds([], 4) == (0, 0, 0, 0)
    assert thresholds([0, 1], 4) == (0, 1, 1, 1)
    assert thresholds([0, 1, 2, 3], 2) == (0, 1)


@pytest.mark.parametrize(
    ("prune", "words"),
    [
        ([1, 1], "unigrams are never pruned"),
        ([0, 2, 1], "non-decreasing"),
        ([0] * 12, "at most one per order"),
    ],
)
def test_bad_thresholds_are_refused_with_what_is_allowed(prune, words):
    with pytest.raises(ParamError, match=words):
        NgramParams(prune=prune)


def test_pruning_needs_kneser_ney():
    with pytest.raises(ParamError, match="needs ngram.smoothing = kneser_ney"):
        NgramParams(prune=[0, 1], smoothing="laplace")
    counts = counted(random_stream(0), 3)
    with pytest.raises(ParamError, match="needs kneser_ney"):
        fit_ngram(counts, 3, "laplace", 1.0, (0, 1))


def test_zero_thresholds_give_the_unpruned_model_to_the_last_bit():
    ids = random_stream(1)
    counts = counted(ids, 4)
    plain = fit_ngram(counts, 4)
    zeros = fit_ngram(counts, 4, prune=(0, 0))
    assert np.array_equal(plain.target_logprobs(ids[:500]), zeros.target_logprobs(ids[:500]))


def test_pruned_model_keeps_exactly_the_ngrams_seen_more_often_than_the_threshold():
    counts = counted(random_stream(2), 4)
    full = KneserNeyModel(counts, 4)
    pruned = KneserNeyModel(counts, 4, prune=(0, 1, 2))
    for k, limit in zip(range(1, 5), (0, 1, 2, 2), strict=True):
        kept = counts.raw[k - 1] > limit if k > 1 else np.ones(counts.rows(1), dtype=bool)
        assert pruned.counts.rows(k) == int(kept.sum())
        assert k == 1 or kept.sum() < counts.rows(k)
        if k == 1:  # no unigram is dropped and no mass moves at the unigrams
            np.testing.assert_array_equal(pruned.complete[0], full.complete[0])
        # a dropped n-gram is not found any more; a kept one is, with its count
        for row in range(0, counts.rows(k), 7):
            words = words_of(counts, k, row)
            found = row_of(pruned.counts, words)
            assert (found >= 0) == bool(kept[row]), words
            if found >= 0:
                assert pruned.counts.raw[k - 1][found] == counts.raw[k - 1][row]


@pytest.mark.parametrize("prune", [(0, 1), (0, 1, 2), (0, 0, 3)])
def test_every_distribution_of_a_pruned_model_sums_to_one(prune):
    ids = random_stream(3)
    model = fit_ngram(counted(ids, 4), 4, prune=prune)
    rng = np.random.default_rng(0)
    for start in rng.integers(0, ids.size - 4, 40):
        p = model.distribution([0, *ids[start : start + 3]])
        assert p.min() > 0
        assert p.sum() == pytest.approx(1.0, abs=1e-12)


def test_pruning_shrinks_the_model_and_moves_held_out_nll_little():
    ids = random_stream(4, size=20_000)
    counts = counted(ids[:18_000], 5)
    held = ids[18_000:]
    full, pruned = fit_ngram(counts, 5), fit_ngram(counts, 5, prune=(0, 1))
    kept = sum(pruned.counts.rows(k) for k in range(1, 6))
    assert kept < 0.7 * sum(full.counts.rows(k) for k in range(1, 6))
    nll_full = -full.target_logprobs(held).mean()
    nll_pruned = -pruned.target_logprobs(held).mean()
    assert abs(nll_pruned - nll_full) < 0.03 * nll_full


def test_a_saved_pruned_model_loads_with_the_same_probabilities_to_the_last_bit(tmp_path):
    from seqlm.data.vocab import Vocab

    ids = random_stream(5)
    model = fit_ngram(counted(ids, 4), 4, prune=(0, 1, 2))
    vocab = Vocab(tokens=("<unk>", "<bos>", *"abcdefg"), counts=(0,) * V)
    save_ngram(model, vocab, {"token": "char"}, tmp_path / "model.npz")
    loaded, _, _ = load_ngram(tmp_path)
    assert loaded.counts.rows(4) == model.counts.rows(4)
    assert np.array_equal(loaded.target_logprobs(ids), model.target_logprobs(ids))


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def tm_lines(real_corpus):
    data = prepare_text(real_corpus.read_bytes())
    return data.vocab, data.token_lines["train"]


def arpa_of(model, vocab, path):
    return read_arpa(write_arpa(model, SentenceVocab(vocab).arpa_names(), path))


def listing_sha1(grams) -> str:
    return hashlib.sha1("\n".join(" ".join(g) for g in sorted(grams)).encode()).hexdigest()


def test_pruned_arpa_equals_lmplz_prune_to_four_digits(reference, tm_lines, tmp_path):
    vocab, lines = tm_lines
    assert reference["command"] == "lmplz -o 5 --discount_fallback --prune 0 1 2 3"
    sv = SentenceVocab(vocab)
    counts = count_ngrams(sv.encode(lines), sv.size, 5, sv.bos_id)
    lmplz_discounts = [o["discounts"] for o in reference["orders"]]
    model = KneserNeyModel(
        counts, 5, allowed=sv.predictable(), prune=(0, 1, 2, 3), discounts=lmplz_discounts
    )
    ours = arpa_of(model, vocab, tmp_path / "pruned.arpa")
    for o in reference["orders"]:
        grams = ours.grams[o["order"] - 1]
        assert len(grams) == o["ngrams"]
        assert listing_sha1(grams) == o["sha1"]  # the very same n-grams kept
        for words, logp, backoff in o["sample"]:
            got = grams[tuple(words.split())]
            if words != "<s>":  # lmplz writes 0 for <s>, seqlm -99: neither is ever used
                assert got[0] == pytest.approx(logp, abs=1e-4), words
            assert got[1] == pytest.approx(backoff, abs=1e-4), words


def test_with_its_own_discounts_the_pruned_arpa_keeps_lmplz_ngrams(reference, tm_lines, tmp_path):
    """seqlm's own discounts differ from lmplz's in one statistic (README, "Pruning"): the kept
    n-grams are the same, the figures within 1 %."""
    vocab, lines = tm_lines
    model = fit_sentence_model(lines, vocab, 5, prune=(0, 1, 2, 3))
    ours = arpa_of(model, vocab, tmp_path / "own.arpa")
    for o in reference["orders"]:
        grams = ours.grams[o["order"] - 1]
        assert listing_sha1(grams) == o["sha1"]
        for words, logp, _ in o["sample"]:
            if words != "<s>":
                assert grams[tuple(words.split())][0] == pytest.approx(logp, abs=0.01), words
