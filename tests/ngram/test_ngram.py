"""The n-gram models: Kneser-Ney and Laplace by hand, normalisation, counting, params, sampling."""

import collections
import math

import numpy as np
import pytest

from seqlm.core.errors import DataError, ParamError
from seqlm.data.corpus import prepare_text
from seqlm.ngram import (
    FALLBACK_DISCOUNTS,
    KneserNeyModel,
    LaplaceModel,
    NgramParams,
    count_ngrams,
    count_stream,
    fit_ngram,
    generate,
    modified_kn_discounts,
)
from seqlm.params import GenerateParams, TokenizeParams, build
from seqlm.perplexity import oov_count, score_split

# A tiny vocabulary: 0 = <unk>, 1 = <bos>, 2 = a, 3 = b.
UNK, BOS, A, B = 0, 1, 2, 3
V = 4


def stream_model(tokens, order, smoothing="kneser_ney", max_order=None):
    counts = count_stream(np.array(tokens), V, max_order or order, BOS)
    return fit_ngram(counts, order, smoothing)


def random_corpus(rng, vocab_size, length, bos):
    """Ids drawn from a skewed distribution (so some n-grams repeat), never the begin marker."""
    ids = rng.zipf(1.6, size=length) % vocab_size
    return np.where(ids == bos, (bos + 1) % vocab_size, ids)


# --- Kneser-Ney by hand ------------------------------------------------------------------------


def test_kneser_ney_bigram_matches_the_hand_computed_model():
    # Train "<bos> a b a a b", order 2.
    # Bigrams (highest order: raw counts): <bos>a 1, ab 2, ba 1, aa 1 -> n1=3 n2=1 n3=0: fallback
    #   discounts D1=.5 D2=1 D3+=1.5.
    # Unigrams (continuation counts): a is preceded by {<bos>, b, a} -> 3, b by {a} -> 1;
    #   <unk> and <bos> 0.
    #   n1=1 n2=0: fallback. total 4; gamma0 = (1.5 + .5)/4 = .5; uniform 1/4.
    #   p1(a) = (3-1.5)/4 + .5/4 = 1/2, p1(b) = (1-.5)/4 + 1/8 = 1/4, p1(<unk>) = p1(<bos>) = 1/8.
    # Context a: ab (2, D=1), aa (1, D=.5); d = 3, gamma = 1.5/3 = 1/2.
    #   p(b|a) = 1/3 + 1/2 * 1/4 = 11/24, p(a|a) = .5/3 + 1/2 * 1/2 = 5/12, p(<unk>|a) = 1/16.
    # Context b: ba (1); d = 1, gamma = 1/2: p(a|b) = 1/2 + 1/4 = 3/4, p(b|b) = 1/8.
    # Context <bos>: <bos>a (1): p(a|<bos>) = 3/4, p(b|<bos>) = 1/8.
    model = stream_model([A, B, A, A, B], order=2)
    np.testing.assert_allclose(model.distribution([]), [1 / 8, 1 / 8, 1 / 2, 1 / 4], atol=1e-12)
    np.testing.assert_allclose(
        model.distribution([A]), [1 / 16, 1 / 16, 5 / 12, 11 / 24], atol=1e-12
    )
    np.testing.assert_allclose(model.distribution([B]), [1 / 16, 1 / 16, 3 / 4, 1 / 8], atol=1e-12)
    np.testing.assert_allclose(
        model.distribution([BOS]), [1 / 16, 1 / 16, 3 / 4, 1 / 8], atol=1e-12
    )
    # a context never seen backs off to the unigrams entirely
    np.testing.assert_allclose(model.distribution([UNK]), model.distribution([]), atol=1e-12)
    # a split "b a a" is scored from <bos>: p(b|<bos>) p(a|b) p(a|a)
    np.testing.assert_allclose(
        np.exp(model.target_logprobs(np.array([B, A, A]))), [1 / 8, 3 / 4, 5 / 12], atol=1e-12
    )


def test_kneser_ney_trigram_keeps_raw_counts_for_ngrams_that_start_with_bos():
    # Train "<bos> a b a b a b", order 3.
    # Trigrams (raw): <bos>ab 1, aba 2, bab 2 -> n1=1 n2=2 n3=0: fallback D1=.5 D2=1.
    # Bigrams (adjusted): <bos>a keeps its raw count 1 (nothing precedes <bos>; its continuation
    #   count would be 0); ab is preceded by {<bos>, b} -> 2; ba by {a} -> 1. Fallback again.
    # Unigrams: a preceded by {<bos>, b} -> 2, b by {a} -> 1; total 3, gamma0 = (1 + .5)/3 = 1/2.
    #   p1(a) = 1/3 + 1/8 = 11/24, p1(b) = 1/6 + 1/8 = 7/24.
    # Bigrams: p2(b|a) = (2-1)/2 + 1/2 * 7/24 = 31/48; p2(a|b) = .5/1 + 1/2 * 11/24 = 35/48;
    #   p2(b|b) = 1/2 * 7/24 = 7/48; p2(a|<bos>) = .5/1 + 1/2 * 11/24 = 35/48.
    # Trigrams: p3(b|<bos> a) = .5/1 + 1/2 * 31/48 = 79/96; context "a b" has gamma (1)/2 = 1/2.
    # Split "a b b": p(a|<bos>) = 35/48 (only one token of context exists), p(b|<bos> a) = 79/96,
    #   p(b|a b) = unseen trigram -> gamma(a b) * p2(b|b) = 1/2 * 7/48 = 7/96.
    model = stream_model([A, B, A, B, A, B], order=3)
    assert isinstance(model, KneserNeyModel)
    assert [a.tolist() for a in model.adjusted[1:2]] == [[1, 2, 1]]  # <bos>a, ab, ba (key order)
    assert model.fallback == (True, True, True)
    np.testing.assert_allclose(
        np.exp(model.target_logprobs(np.array([A, B, B]))), [35 / 48, 79 / 96, 7 / 96], atol=1e-12
    )
    np.testing.assert_allclose(model.distribution([B, A])[B], 1 / 2 + 1 / 2 * 31 / 48, atol=1e-12)


def test_discounts_follow_chen_and_goodman_when_counts_of_counts_allow():
    # n1=4 n2=2 n3=1 n4=1: Y = 4/8 = .5; D1 = 1 - 2(.5)(2/4) = .5; D2 = 2 - 3(.5)(1/2) = 1.25;
    # D3+ = 3 - 4(.5)(1/1) = 1.
    d, fallback = modified_kn_discounts(np.array([1, 1, 1, 1, 2, 2, 3, 4, 9]))
    assert not fallback
    np.testing.assert_allclose(d, [0, 0.5, 1.25, 1.0])


@pytest.mark.parametrize(
    "adjusted",
    [
        [2, 2, 3, 4],  # no n-gram seen once (common with characters): D1 undefined
        [1, 1, 3, 4],  # none seen twice
        [1, 1, 2, 4],  # none seen three times
        [1, 1, 2, 3] + [4] * 10,  # D3+ = 3 - 4 * .5 * 10 < 0: out of range
    ],
)
def test_discounts_fall_back_like_lmplz_discount_fallback(adjusted):
    d, fallback = modified_kn_discounts(np.array(adjusted))
    assert fallback
    np.testing.assert_allclose(d, [0, *FALLBACK_DISCOUNTS])


@pytest.mark.parametrize(
    "adjusted, discounts",
    [
        # n1=2 n2=2 n3=4 n4=1: Y = 1/3; D1 = 1/3, D2 = 2 - 3(1/3)(4/2) = 0, D3+ = 3 - 4(1/3)(1/4)
        ([1, 1, 2, 2, 3, 3, 3, 3, 4], [0, 1 / 3, 0, 8 / 3]),
        # n1=2 n2=1 n3=1 n4=0: Y = 1/2; D1 = 1/2, D2 = 2 - 3(1/2)(1/1) = 1/2, D3+ = 3 - 0 = 3
        ([1, 1, 2, 3], [0, 0.5, 0.5, 3]),
        # n1=n2=n3=n4=1: Y = 1/3; D1 = 1/3, D2 = 2 - 3(1/3) = 1, D3+ = 3 - 4(1/3) = 5/3
        ([1, 2, 3, 4], [0, 1 / 3, 1, 5 / 3]),
    ],
)
def test_discounts_in_their_range_ends_included_are_kept_like_lmplz_keeps_them(adjusted, discounts):
    d, fallback = modified_kn_discounts(np.array(adjusted))
    assert not fallback
    np.testing.assert_allclose(d, discounts, atol=1e-12)


def test_an_order_with_a_single_ngram_is_still_used():
    # Train "<bos> a b", order 3: one trigram, <bos>ab; every order falls back to D1 = .5.
    # Unigrams: a 1 (after <bos>), b 1 (after a); total 2, gamma0 = 1/2: p1(a) = p1(b) = 3/8.
    # p2(a|<bos>) = .5/1 + 1/2 * 3/8 = 11/16, p2(b|a) = 11/16; p3(b|<bos> a) = .5 + 1/2 * 11/16.
    model = stream_model([A, B], order=3)
    assert model.counts.rows(3) == 1
    np.testing.assert_allclose(
        np.exp(model.target_logprobs(np.array([A, B]))), [11 / 16, 27 / 32], atol=1e-12
    )


# --- Laplace by hand ---------------------------------------------------------------------------


def test_laplace_bigram_matches_the_hand_computed_model():
    # Train "<bos> a b a a b", alpha 1, V = 4: p(w|h) = (c(hw) + 1) / (c(h.) + 4).
    model = stream_model([A, B, A, A, B], order=2, smoothing="laplace")
    assert isinstance(model, LaplaceModel)
    np.testing.assert_allclose(model.distribution([A]), [1 / 7, 1 / 7, 2 / 7, 3 / 7])  # c(a.) = 3
    np.testing.assert_allclose(model.distribution([UNK]), [1 / 4] * 4)  # never seen: uniform
    # p(a|<bos>) = (1 + 1)/(1 + 4); p(b|a) = 3/7
    np.testing.assert_allclose(np.exp(model.target_logprobs(np.array([A, B]))), [2 / 5, 3 / 7])


def test_laplace_uses_the_shorter_context_at_the_start_of_a_split():
    model = stream_model([A, B, A, A, B], order=3, smoothing="laplace")
    # first target: only <bos> before it -> the bigram estimate (1 + 1)/(1 + 4)
    assert math.isclose(math.exp(model.target_logprobs(np.array([A]))[0]), 2 / 5)


# --- normalisation and consistency -------------------------------------------------------------


@pytest.mark.parametrize("smoothing", ["kneser_ney", "laplace"])
@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_distribution_sums_to_one_for_random_contexts(smoothing, order):
    rng = np.random.default_rng(order)
    vocab_size, bos = 12, 1
    train = random_corpus(rng, vocab_size, 3000, bos)
    model = fit_ngram(count_stream(train, vocab_size, order, bos), order, smoothing)
    for _ in range(40):
        n = int(rng.integers(0, order + 2))
        context = list(rng.integers(0, vocab_size, size=n))  # seen and unseen contexts
        if rng.random() < 0.3:
            context = [bos, *context]
        p = model.distribution(context)
        assert p.shape == (vocab_size,)
        assert np.all(p > 0)  # every id, reserved ones included, keeps some mass
        assert abs(p.sum() - 1.0) < 1e-9


def test_sentence_style_models_give_the_begin_marker_no_mass_and_still_sum_to_one():
    rng = np.random.default_rng(0)
    seqs = [np.r_[BOS, rng.integers(2, V, size=int(rng.integers(1, 6)))] for _ in range(30)]
    counts = count_ngrams(seqs, V, 3, BOS)
    allowed = np.arange(V) != BOS
    model = KneserNeyModel(counts, 3, allowed=allowed)
    for context in ([BOS], [BOS, A], [A, B], [B, B, B], [UNK]):
        p = model.distribution(context)
        assert p[BOS] == 0.0 and abs(p.sum() - 1.0) < 1e-9


@pytest.mark.parametrize("smoothing", ["kneser_ney", "laplace"])
def test_sequences_shorter_than_the_order_leave_high_orders_empty_but_still_work(smoothing):
    seqs = [np.array([BOS, A]), np.array([BOS, B, A]), np.array([BOS, A])]
    counts = count_ngrams(seqs, V, 5, BOS)
    assert [counts.rows(k) for k in range(1, 6)] == [V, 3, 1, 0, 0]  # <bos>a <bos>b ba; <bos>ba
    model = fit_ngram(counts, 5, smoothing)
    for context in ([BOS], [BOS, A, B, A], [A, A, A, A, A]):
        assert abs(model.distribution(context).sum() - 1.0) < 1e-9
    lp = model.sequence_logprobs([np.array([BOS, A, B, A, B, A])])
    assert lp.shape == (5,) and np.all(np.isfinite(lp))


@pytest.mark.parametrize("smoothing", ["kneser_ney", "laplace"])
def test_vectorised_scoring_equals_the_distribution_at_every_step(smoothing):
    rng = np.random.default_rng(7)
    vocab_size, bos, order = 9, 1, 4
    train = random_corpus(rng, vocab_size, 2000, bos)
    held_out = random_corpus(rng, vocab_size, 60, bos)
    model = fit_ngram(count_stream(train, vocab_size, order, bos), order, smoothing)
    lp = model.target_logprobs(held_out)
    assert lp.shape == held_out.shape  # every token a target exactly once
    context = [bos]
    for t, token in enumerate(held_out):
        assert math.isclose(lp[t], math.log(model.distribution(context)[token]), abs_tol=1e-12)
        context.append(int(token))


def test_counts_equal_a_plain_python_count():
    rng = np.random.default_rng(3)
    vocab_size, bos = 7, 1
    seqs = [
        np.r_[bos, random_corpus(rng, vocab_size, int(rng.integers(0, 9)), bos)] for _ in range(40)
    ]
    counts = count_ngrams(seqs, vocab_size, 4, bos)
    for k in range(2, 5):
        expected = collections.Counter(
            tuple(s[i : i + k]) for s in seqs for i in range(len(s) - k + 1)
        )
        # decode each stored k-gram through its prefix rows
        grams = counts.last(k)[:, None]
        rows = counts.prefix(k)
        for j in range(k - 1, 0, -1):
            grams = np.hstack([counts.last(j)[rows][:, None], grams])
            rows = counts.prefix(j)[rows]
        got = {tuple(g): int(c) for g, c in zip(grams.tolist(), counts.raw[k - 1], strict=True)}
        assert got == {tuple(int(x) for x in g): c for g, c in expected.items()}
        # the suffix row holds the last k-1 tokens
        np.testing.assert_array_equal(counts.last(k - 1)[counts.suffix[k - 1]], counts.last(k))


def test_a_split_is_scored_from_a_fresh_start():
    train = [A, B, A, A, B, B, A]
    model = stream_model(train, order=3)
    lp = model.target_logprobs(np.array([B, A]))
    assert math.isclose(lp[0], math.log(model.distribution([BOS])[B]))
    # the same tokens in the middle of a longer split are scored with their context instead
    lp_mid = model.target_logprobs(np.array([A, A, B, A]))
    assert not math.isclose(lp[0], lp_mid[2])


def char_splits(text):
    """The pipeline's char data in memory (80/10/10 by line): vocab, ids and characters per split."""
    tokenize = TokenizeParams(token="char", train_fraction=0.8, val_fraction=0.1, test_fraction=0.1)
    data = prepare_text(text, tokenize)
    ids = {s: d.ids for s, d in data.splits.items()}
    chars = {s: d.characters for s, d in data.splits.items()}
    return data.vocab, ids, chars


@pytest.mark.parametrize("smoothing, order", [("kneser_ney", 5), ("laplace", 2)])
def test_train_perplexity_is_below_val_perplexity(tiny_text, smoothing, order):
    vocab, ids, chars = char_splits(tiny_text * 3)
    counts = count_stream(ids["train"], len(vocab), order, vocab.id_of("<bos>"))
    model = fit_ngram(counts, order, smoothing)
    ppl = {
        s: score_split(model.target_logprobs(ids[s]), chars[s], oov_count(ids[s])).perplexity
        for s in ("train", "val")
    }
    assert ppl["train"] < ppl["val"]


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, named",
    [
        ({"order": 0}, ["ngram.order = 0", "integer >= 1", "'auto'"]),
        ({"order": -3}, ["ngram.order = -3", "'auto'"]),
        ({"order": "seven"}, ["ngram.order = 'seven'", "'auto'"]),
        ({"smoothing": "good_turing"}, ["'good_turing'", "kneser_ney, laplace"]),
        ({"max_order": 0}, ["ngram.max_order = 0", ">= 1"]),
        ({"laplace_alpha": 0.0}, ["ngram.laplace_alpha = 0.0", "> 0"]),
        ({"smoothig": "laplace"}, ["smoothig", "allowed"]),
    ],
)
def test_bad_ngram_params_raise_param_error_naming_value_and_choices(values, named):
    with pytest.raises(ParamError) as e:
        build(NgramParams, "ngram", values)
    for part in named:
        assert part in str(e.value)


def test_ngram_params_default_to_auto_order_kneser_ney():
    p = build(NgramParams, "ngram", {})
    assert (p.order, p.smoothing) == ("auto", "kneser_ney")
    assert p.orders_to_try() == list(range(1, p.max_order + 1))
    assert build(NgramParams, "ngram", {"order": 4}).orders_to_try() == [4]


def test_fit_rejects_bad_order_and_smoothing():
    counts = count_stream(np.array([A, B, A]), V, 3, BOS)
    with pytest.raises(ParamError, match=r"ngram.order = 0 must be an integer >= 1"):
        fit_ngram(counts, 0)
    with pytest.raises(ParamError, match=r"above the 3 orders counted"):
        fit_ngram(counts, 4)
    with pytest.raises(ParamError, match=r"'witten_bell'.*kneser_ney, laplace"):
        fit_ngram(counts, 2, "witten_bell")


def test_ids_outside_the_vocabulary_are_refused():
    with pytest.raises(DataError, match="outside the vocabulary"):
        count_stream(np.array([A, 7]), V, 2, BOS)
    model = stream_model([A, B, A], order=2)
    with pytest.raises(DataError, match="outside the vocabulary"):
        model.target_logprobs(np.array([A, 9]))


# --- sampling ----------------------------------------------------------------------------------


def test_generation_is_reproducible_from_the_seed_and_respects_bans():
    rng = np.random.default_rng(1)
    train = random_corpus(rng, 10, 2000, BOS)
    model = fit_ngram(count_stream(train, 10, 4, BOS), 4)
    a = generate(model, [2, 3], 300, np.random.default_rng(5), banned_ids=[BOS, UNK])
    b = generate(model, [2, 3], 300, np.random.default_rng(5), banned_ids=[BOS, UNK])
    c = generate(model, [2, 3], 300, np.random.default_rng(6), banned_ids=[BOS, UNK])
    np.testing.assert_array_equal(a, b)
    assert a.shape == (300,) and not np.array_equal(a, c)
    assert not np.isin(a, [BOS, UNK]).any()


def test_top_k_one_and_low_temperature_are_greedy():
    rng = np.random.default_rng(2)
    train = random_corpus(rng, 10, 2000, BOS)
    model = fit_ngram(count_stream(train, 10, 3, BOS), 3)
    greedy = generate(model, [], 20, np.random.default_rng(0), top_k=1)
    cold = generate(model, [], 20, np.random.default_rng(9), temperature=1e-4)
    np.testing.assert_array_equal(greedy, cold)
    context = [BOS]
    for token in greedy:
        assert token == int(np.argmax(model.distribution(context)))
        context.append(int(token))


@pytest.mark.parametrize(
    "values, named",
    [
        ({"length": 0}, "generate.length = 0"),
        ({"temperature": 0}, "generate.temperature = 0"),
        ({"temperature": -1.0}, "generate.temperature = -1.0"),
        ({"top_k": -1}, "generate.top_k = -1"),
        ({"seed": -2}, "generate.seed = -2"),
        ({"prefixes": []}, "generate.prefixes is empty"),
        ({"prefixes": "time"}, "must be a list"),
        ({"lenght": 10}, "lenght"),
    ],
)
def test_bad_generate_params_raise_param_error(values, named):
    with pytest.raises(ParamError, match=named):
        build(GenerateParams, "generate", values)


def test_generate_params_defaults_and_lists_become_tuples():
    p = build(GenerateParams, "generate", {"prefixes": ["a", ""]})
    assert p.prefixes == ("a", "")
    assert GenerateParams() == GenerateParams(
        prefixes=("time traveller", "the time machine"),
        length=200,
        temperature=1.0,
        top_k=0,
        seed=0,
    )


@pytest.mark.parametrize("order", [3, 4])
def test_kneser_ney_given_the_ngram_rows_looks_none_of_them_up_again(monkeypatch, order):
    # the stream scorer passes each target's n-gram rows, found once: the same probabilities as
    # looking them up, without the lookups
    ids = random_corpus(np.random.default_rng(order), V, 400, BOS)
    model = stream_model(ids, order)
    flat = np.r_[BOS, ids]
    rows = model.counts.ending_rows(flat, np.zeros(flat.size, dtype=np.int64), order)
    targets = np.arange(1, flat.size)
    contexts = [r[targets - 1] for r in rows[: order - 1]]
    grams = [r[targets] for r in rows[1:]]
    context_len = np.minimum(targets, order - 1)
    expected = model.probabilities(contexts, context_len, flat[targets])
    some = model.probabilities_given_rows(contexts, context_len, flat[targets], grams[:1])
    np.testing.assert_array_equal(some, expected)

    def lookup(*args):
        raise AssertionError("an n-gram row that was given was looked up again")

    monkeypatch.setattr(type(model.counts), "lookup", lookup)
    given = model.probabilities_given_rows(contexts, context_len, flat[targets], grams)
    np.testing.assert_array_equal(given, expected)
